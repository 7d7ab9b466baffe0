// Progress and ETAs for the status API, the dashboard and the monitor, from what peers say in
// their heartbeats (the examples trained of those assigned, and their speed). Display only: a
// peer that lies about its progress moves nothing but these figures.
import type { WorkProgress } from '@dml/protocol'

export interface PeerWork {
  peer: string
  /** samples per second (0: not measured yet) */
  speed: number
  work: WorkProgress | null
}

export interface RoundProgress {
  round: number
  /** examples trained so far this round, and assigned, over the peers that said */
  done: number
  total: number
  fraction: number
  /** until the slowest peer is done training (null: a peer's speed is not known yet) */
  etaSeconds: number | null
  /** until the last round is done, at the pace of the recent rounds (null: no round finished yet) */
  trainingEtaSeconds: number | null
}

/**
 * How far `round` is, from the peers' work reports; null when nobody reports work on it. A peer
 * named twice counts once, by its first report (a peer hears its own heartbeats, and puts its
 * worker's fresher account first).
 */
export function roundProgress (round: number, peers: PeerWork[], roundsLeftAfter: number, recentRoundMs: number[]): RoundProgress | null {
  const once = new Map<string, PeerWork>()
  for (const p of peers) if (!once.has(p.peer)) once.set(p.peer, p)
  const working = [...once.values()].filter(p => p.work !== null && p.work.round === round)
  if (working.length === 0) return null
  let done = 0
  let total = 0
  let eta: number | null = 0
  for (const { work, speed } of working) {
    done += work!.done
    total += work!.total
    const left = work!.total - work!.done
    if (left === 0 || eta === null) continue
    eta = speed > 0 ? Math.max(eta, left / speed) : null
  }
  const perRound = median(recentRoundMs.slice(-5))
  const trainingEta = perRound === null ? null : (eta ?? perRound / 1000) + roundsLeftAfter * perRound / 1000
  return { round, done, total, fraction: total === 0 ? 0 : done / total, etaSeconds: eta === null ? null : round1(eta), trainingEtaSeconds: trainingEta === null ? null : round1(trainingEta) }
}

function median (values: number[]): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

function round1 (x: number): number {
  return Math.round(10 * x) / 10
}
