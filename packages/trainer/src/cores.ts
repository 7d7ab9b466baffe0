// How many cores a peer trains on: plain arithmetic, which the engine uses wherever it runs (a
// browser tab too), apart from threads.ts and its worker threads.

/**
 * A peer's share of `threads` (its machine's cores) when `others` peers on the same machine train
 * too: whole cores each, at least one. Threads beyond a peer's share give it no speed, and their
 * replicas, averaged at the end of the round, cost it rounds.
 */
export function coreShare (threads: number, others: number): number {
  return Math.max(1, Math.floor(threads / (1 + Math.max(0, others))))
}
