// The follower's side of a round: the round starts this peer takes up (of the leader it follows,
// one kept from before that leader's proof came, or its own share while it leads), and the result
// of its work on the way back to the leader. The work itself is the Worker's; the check of the
// leader's result the Verifier's.
import { trainingDifference, type RoundStart, type Task, type Unstamped, type UpdateReady, type WorkFailed } from '@dml/protocol'
import type { Coordinator } from './coordinator.ts'
import { short, type Logger } from '../log.ts'
import type { Replica } from '../state/replica.ts'
import type { Verifier } from './verifier.ts'
import type { Worker } from './worker.ts'

/** Senders whose early round start is kept: a liar can push an honest leader's out, which costs a round's wait, as before. */
const MAX_EARLY_STARTS = 8

export interface RoundFollowerDeps {
  self: string
  worker: Worker
  verifier: Verifier
  replica: Replica
  log: Logger
  now: () => number
  task: () => Task
  sayEvery: (key: string, ms: number, say: () => void) => void
  /** whether a round start of `from` is current now: of the term and leader this peer follows */
  isCurrent: (start: Unstamped<RoundStart>, from: string) => boolean
  /** the leader we follow started a round due by `deadline` (the leader's watchdog) */
  roundStarted: (deadline: number) => void
  /** the coordinator of `term`, if this peer leads it */
  coordinatorOf: (term: number) => Coordinator | null
  publish: (message: Unstamped<UpdateReady> | Unstamped<WorkFailed>) => Promise<void>
}

export class RoundFollower {
  private readonly d: RoundFollowerDeps
  /** round starts of senders not proven our leader when they came, by sender (see keepEarly) */
  private readonly earlyStarts = new Map<string, Unstamped<RoundStart>>()

  constructor (deps: RoundFollowerDeps) {
    this.d = deps
  }

  /** A round start to take up: of the leader we follow, or this peer's own share of a round it leads. */
  /** A round start of our leader, as it came: one taken already (sent anew for a peer that missed it) is not taken again. */
  received (start: Unstamped<RoundStart>): void {
    if (this.d.verifier.startOf(start.term, start.round)?.deadline === start.deadline) return
    this.start(start)
  }

  start (start: Unstamped<RoundStart>): void {
    const { self, verifier, worker, log } = this.d
    if (start.leader !== self) {
      this.d.roundStarted(start.deadline)
      const difference = trainingDifference(this.d.task(), start.task)
      if (difference !== undefined) {
        this.d.sayEvery(`task:${start.leader}:${difference.field}`, 60_000, () => {
          log.warn('task-mismatch', { leader: start.leader, ...difference }, `the leader ${short(start.leader)} trains with ${difference.field} ${String(difference.theirs)}, this peer with ${String(difference.ours)}: start every peer with the same options`)
        })
      }
    }
    verifier.started(start, this.d.now())
    worker.start(start)
  }

  /** The latest round start of a sender not (yet) proven our leader: a few senders, the newest start each. */
  keepEarly (start: Unstamped<RoundStart>, from: string): void {
    this.earlyStarts.delete(from)
    this.earlyStarts.set(from, start)
    if (this.earlyStarts.size > MAX_EARLY_STARTS) this.earlyStarts.delete(this.earlyStarts.keys().next().value!)
  }

  /**
   * `leader` of `term` is followed now: its start that came before its proof is taken up, or the
   * work this peer dropped when it seemed lost, if it leads that term again.
   */
  followed (leader: string, term: number): void {
    const early = this.earlyStarts.get(leader)
    this.earlyStarts.clear()
    const dropped = early === undefined ? this.d.worker.resumable(leader, term) : undefined
    const replay = early ?? dropped
    // a start kept through a long wait may be of a round this peer already holds: not worth training
    if (replay === undefined || replay.round <= this.d.replica.round || !this.d.isCurrent(replay, leader)) return
    const why = dropped !== undefined ? 'its work was dropped when its leader seemed lost, and it leads again' : 'its start came before the proof of its leader'
    this.d.log.info('round-start-replayed', { round: replay.round, term: replay.term, resumed: dropped !== undefined }, `round ${replay.round}: ${why}; taking it up now`)
    this.start(replay)
  }

  /** Our worker's result goes to the leader: through gossip, or straight in when we lead its term. */
  async report (message: Unstamped<UpdateReady> | Unstamped<WorkFailed>): Promise<void> {
    if (message.type === 'update-ready') this.d.verifier.sentUpdate(message.term, message.round, message.hash)
    const coordinator = this.d.coordinatorOf(message.term)
    if (coordinator !== null) {
      if (message.type === 'update-ready') coordinator.onUpdate(message)
      else coordinator.onFailure(message)
      return
    }
    await this.d.publish(message)
  }
}
