// A follower's judgement of the leader it follows: does the leader make progress? A leader whose
// round is not certified in time (its deadline, bounded by our own --round-timeout, plus transfers
// and a grace), that starts no round while enough peers follow it, or whose rounds have proved
// nothing here for a while, is to be left. The watchdog only judges; the node acts on its verdict
// (distrusts the leader, elects another). Times come from the node's clock, passed in.

export interface WatchdogTimes {
  roundTimeoutMs: number
  transferTimeoutMs: number
  leaseMs: number
}

/** Leases (plus a transfer timeout) a follower waits for a provable round after its leader announced one that proves nothing here. */
export const UNPROVEN_GRACE_LEASES = 2

export class LeaderWatchdog {
  /** when the round the leader started must be certified by, if one is under way */
  private expectProgressBy: number | null = null
  /** since when the leader has announced rounds whose certificates prove nothing here */
  private unprovenSince: number | null = null
  /** when the leader last made progress (or we began to follow it) */
  private lastProgress: number
  /** the newest round this peer held when the leader last made progress */
  private round = 0

  private readonly times: WatchdogTimes

  constructor (times: WatchdogTimes, now: number) {
    this.times = times
    this.lastProgress = now
  }

  /** What a round may take beyond its deadline: both transfers, the checkers' work, four leases. */
  private get graceMs (): number {
    return 2 * this.times.transferTimeoutMs + 30_000 + 4 * this.times.leaseMs
  }

  /** A leader to judge from now on (one newly followed, or none after one was left): a clean slate. */
  reset (now: number): void {
    this.expectProgressBy = null
    this.unprovenSince = null
    this.lastProgress = now
  }

  /** The newest round this peer holds; a newer one than before is the leader's progress. */
  held (round: number, now: number): void {
    if (round <= this.round) return
    this.round = round
    this.reset(now)
  }

  /** The leader started a round due by `deadline` (its word: our own --round-timeout bounds it). */
  roundStarted (deadline: number, now: number): void {
    this.expectProgressBy = Math.min(deadline, now + this.times.roundTimeoutMs) + this.graceMs
  }

  /** The leader announced a round whose certificate proves nothing here (not forged: a forgery is left at once). */
  unproven (now: number): void {
    this.unprovenSince ??= now
  }

  /** Why the leader should be left now, if it should. `enoughPeers`: as many peers as a round needs follow it. */
  verdict (now: number, enoughPeers: boolean): string | undefined {
    if (this.expectProgressBy !== null && now > this.expectProgressBy) return 'its round was not finished by its deadline'
    if (this.expectProgressBy === null && enoughPeers && now - this.lastProgress > this.times.roundTimeoutMs + this.graceMs) return 'it started no round while enough peers followed it'
    if (this.unprovenSince !== null && now > this.unprovenSince + UNPROVEN_GRACE_LEASES * this.times.leaseMs + this.times.transferTimeoutMs) return 'the rounds it announces prove nothing here'
    return undefined
  }
}
