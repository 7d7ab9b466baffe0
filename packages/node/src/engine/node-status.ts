// What /api/status shows of a peer: a copy of the engine's state, taken at once (the HTTP server,
// the dashboard and /metrics read it, never the engine's fields).
import type { Device, Heartbeat, Task, Unstamped, WorkProgress } from '@dml/protocol'
import type { RoundSnapshot } from '../round/round-state.ts'
import type { Counts } from '../state/counts.ts'
import type { Ledger } from '../state/misbehaviour.ts'
import type { Membership } from '../state/membership.ts'
import type { BackendInfo } from './node-config.ts'
import { roundProgress, type RoundProgress } from '../round/progress.ts'
import type { Replica } from '../state/replica.ts'
import type { WorkPhase } from '../round/worker.ts'

/** What /api/status shows of the engine: a copy, taken at once. */
export interface NodeStatus {
  peerId: string
  isLeader: boolean
  leader: string | null
  /** where the leader listens, as its heartbeats say */
  leaderAddrs: string[]
  term: number
  state: 'electing' | 'waiting-for-peers' | 'training' | 'finished'
  round: number
  totalRounds: number
  /** finished rounds, and the current one's share done, over the rounds to train */
  progress: number
  /** the round in progress: examples trained of those assigned, across the peers, and ETAs */
  roundProgress: RoundProgress | null
  currentRound: RoundSnapshot | WorkPhase | null
  accuracy: number | null
  loss: number | null
  /** the last round's federated evaluation: every signer on its own examples, weighted by their number */
  federated: { accuracy: number, loss: number, samples: number } | null
  modelHash: string | null
  activeNodes: number
  gpuNodes: number
  cpuNodes: number
  /** browser tabs (they train, check and sign like any peer, and never coordinate) */
  browserNodes: number
  /** `proven`: its update counted in a certified round lately (see proven.ts), so it counts in quorums */
  nodes: Array<{ peerId: string, device: Device, backend: string, round: number, samplesPerSec: number, examples: number, isLeader: boolean, proven: boolean, work: WorkProgress | null, lastSeenMs: number }>
  backend: { name: string, device: Device, source: string, warning: string | null, threads: number }
  task: Task
  permissioned: boolean
  recovery: Record<string, number>
  rejectedMessages: Record<string, number>
  rejectedUpdates: Record<string, number>
  /** offences by reason, and the peers that committed them */
  misbehaviour: { offences: Record<string, number>, bans: number, peers: Array<{ peer: string, offences: Record<string, number>, suspicions: Record<string, number>, banned: boolean }> }
  history: Array<Record<string, unknown>>
}

/** The parts of a node the status is read from. */
export interface StatusParts {
  peerId: string
  now: number
  /** live members, this peer first */
  live: Array<Unstamped<Heartbeat>>
  minPeers: number
  election: { readonly leader: string | null, readonly term: number, readonly isLeader: boolean }
  replica: Replica
  membership: Membership
  /** this peer's training speed and work */
  speed: number
  work: WorkProgress | null
  currentRound: RoundSnapshot | WorkPhase | null
  backend: BackendInfo
  threads: number
  task: Task
  permissioned: boolean
  counts: Counts
  ledger: Ledger
}

export function nodeStatus (p: StatusParts): NodeStatus {
  const { live, replica, election, now } = p
  const last = replica.history.at(-1)
  const leader = election.leader
  const totalRounds = p.task.totalRounds
  const working = [{ peer: p.peerId, speed: p.speed, work: p.work }, ...live.map(h => ({ peer: h.peer, speed: h.speed, work: h.work }))]
  const current = replica.finished ? null : roundProgress(replica.round + 1, working, Math.max(0, totalRounds - replica.round - 1), replica.history.map(r => r.metrics.durationMs).filter(ms => ms > 0))
  return {
    peerId: p.peerId,
    isLeader: election.isLeader,
    leader,
    leaderAddrs: [...(live.find(h => h.peer === leader)?.addrs ?? [])],
    term: election.term,
    state: replica.finished ? 'finished' : leader === null ? 'electing' : live.length < p.minPeers ? 'waiting-for-peers' : 'training',
    round: replica.round,
    totalRounds,
    progress: replica.finished ? 1 : Math.min(1, (replica.round + (current?.fraction ?? 0)) / totalRounds),
    roundProgress: current,
    currentRound: p.currentRound,
    accuracy: last?.metrics.accuracy ?? null,
    loss: last?.metrics.loss ?? null,
    federated: last === undefined ? null : { accuracy: last.metrics.federatedAccuracy, loss: last.metrics.federatedLoss, samples: last.metrics.evaluatedSamples },
    modelHash: replica.global?.hash ?? null,
    activeNodes: live.length,
    gpuNodes: live.filter(h => h.device === 'gpu').length,
    cpuNodes: live.filter(h => h.device === 'cpu').length,
    browserNodes: live.filter(h => h.device === 'browser').length,
    nodes: live.map(h => ({ peerId: h.peer, device: h.device, backend: h.backend, round: h.round, samplesPerSec: Math.round(h.speed), examples: h.examples, isLeader: h.peer === leader, proven: replica.proven.has(h.peer), work: h.work, lastSeenMs: now - (p.membership.lastSeen(h.peer) ?? now) })),
    backend: { name: p.backend.backend, device: p.backend.device, source: p.backend.source, warning: p.backend.warning ?? null, threads: p.threads },
    task: { ...p.task },
    permissioned: p.permissioned,
    recovery: { ...p.counts.recovery },
    rejectedMessages: { ...p.counts.rejectedMessages },
    rejectedUpdates: { ...p.counts.rejectedUpdates },
    misbehaviour: { offences: { ...p.counts.offences }, bans: p.counts.bans, peers: p.ledger.snapshot() },
    history: replica.history.map(r => ({ round: r.round, term: r.term, modelHash: r.modelHash, certHash: r.certHash, ...r.metrics }))
  }
}
