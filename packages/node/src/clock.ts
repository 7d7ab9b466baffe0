// Time and background work for the round engine. Every unit takes a Clock, so unit tests drive
// time by hand; every promise a unit starts in the background belongs to a Supervisor, which
// logs its failure and lets stop() wait for it. Nothing floats.

export interface Clock {
  now: () => number
  setTimeout: (fn: () => void, ms: number) => unknown
  clearTimeout: (handle: unknown) => void
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => { clearTimeout(handle as NodeJS.Timeout) }
}

/** The reason of an aborted signal as an Error (AbortSignal.reason may be anything). */
export function abortReason (signal: AbortSignal): Error {
  const reason: unknown = signal.reason
  return reason instanceof Error ? reason : new AbortError(String(reason ?? 'aborted'))
}

export class AbortError extends Error {
  override name = 'AbortError'
}

/** Whether `err` means "stopped on purpose" rather than "failed". */
export function isAbort (err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || err.name === 'TrainingAborted')
}

/** A signal that aborts after `ms` on `clock`, or when `parent` aborts. Call `clear` when done. */
export function deadlineSignal (clock: Clock, ms: number, why: string, parent?: AbortSignal): { signal: AbortSignal, clear: () => void } {
  const controller = new AbortController()
  const timer = clock.setTimeout(() => { controller.abort(new AbortError(why)) }, Math.max(0, ms))
  const onParent = (): void => { controller.abort(abortReason(parent!)) }
  if (parent?.aborted === true) onParent()
  else parent?.addEventListener('abort', onParent, { once: true })
  return {
    signal: controller.signal,
    clear: () => {
      clock.clearTimeout(timer)
      parent?.removeEventListener('abort', onParent)
    }
  }
}

/** Resolves after `ms` on `clock`; rejects with the abort reason when `signal` aborts first. */
export async function sleep (clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted === true) throw abortReason(signal)
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => { clock.clearTimeout(timer); reject(abortReason(signal!)) }
    const timer = clock.setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, Math.max(0, ms))
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * Something the engine waits on changed (membership, an update arrived, a peer holds a model).
 * `wait` resolves on the next change, after `ms`, or when `signal` aborts, whichever is first;
 * waiters then look at the state again, so a missed or spurious wake costs nothing.
 */
export class Changes {
  private readonly waiters = new Set<() => void>()
  private readonly clock: Clock

  constructor (clock: Clock) { this.clock = clock }

  notify (): void {
    const waiters = [...this.waiters]
    this.waiters.clear()
    for (const wake of waiters) wake()
  }

  async wait (ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted === true) return
    await new Promise<void>(resolve => {
      const done = (): void => {
        this.clock.clearTimeout(timer)
        this.waiters.delete(done)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      const timer = this.clock.setTimeout(done, Math.max(0, ms))
      this.waiters.add(done)
      signal?.addEventListener('abort', done, { once: true })
    })
  }
}

/** Owns background tasks: a task's failure is reported with its name, and drain() awaits them all. */
export class Supervisor {
  private readonly tasks = new Set<Promise<void>>()
  private readonly onError: (task: string, err: unknown) => void

  constructor (onError: (task: string, err: unknown) => void) { this.onError = onError }

  run (name: string, task: () => Promise<void>): void {
    const promise: Promise<void> = (async () => { await task() })()
      .catch((err: unknown) => { this.onError(name, err) })
      .finally(() => { this.tasks.delete(promise) })
    this.tasks.add(promise)
  }

  get size (): number { return this.tasks.size }

  async drain (): Promise<void> {
    while (this.tasks.size > 0) await Promise.allSettled([...this.tasks])
  }
}
