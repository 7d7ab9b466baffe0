// DmlNode: one peer's engine, wired. It owns the election and routes each control message to the
// unit it concerns: Membership (heartbeats), Worker (round starts), Verifier (proposals), the
// Coordinator of the term (updates, failures and signatures, while this peer leads), Replica
// (finished rounds, catch-up), Voting (vote requests and votes), LeaderClaims (heartbeats that
// claim the lead). It follows a leader only once its claim checked out, judges it by its progress
// (leader-watchdog.ts), and counts what peers do wrong (misbehaviour.ts).
// Time comes from an injected clock and the network through the Network interface, so the whole
// engine runs in unit tests on an in-memory network with fake time.
import { MAX_HEARTBEAT_EVERY_MS, MAX_TERM_STEP, OWN_DATA, PROTOCOL_VERSION, trainingDifference, type Compression, type ControlMessage, type Device, type Outgoing, type Heartbeat, type RoundStart, type Task, type Unstamped, type UpdateReady, type WorkFailed, type WorkProgress } from '@dml/protocol'
import type { Checkpoint, SavedVote } from './checkpoint.ts'
import { Admission } from './admission.ts'
import { coversView, isAllowed, isForgery, type QuorumPolicy, type Signer, type Standing } from './certificates.ts'
import { Changes, type Clock, isAbort, Supervisor, systemClock } from './clock.ts'
import { Coordinator, type RoundSnapshot } from './coordinator.ts'
import { Counts } from './counts.ts'
import { Election, rankCandidates } from './election.ts'
import { short, type Logger } from './log.ts'
import { followersIn, followersOf, Membership } from './membership.ts'
import { isOffence, Ledger } from './misbehaviour.ts'
import type { MessageHandlers, Network, Verdict } from './network.ts'
import { roundProgress, type RoundProgress } from './progress.ts'
import { Proofs } from './proofs.ts'
import { Replica, type CheckpointStore } from './replica.ts'
import { coreShare } from '@dml/trainer'
import type { Trainer } from './trainer.ts'
import { Verifier } from './verifier.ts'
import { Worker, type WorkPhase } from './worker.ts'
import { LeaderWatchdog } from './leader-watchdog.ts'
import { Voting, type ProvenCert } from './voting.ts'
import { LeaderClaims } from './leader-claims.ts'

export interface NodeConfig {
  task: Task
  minPeers: number
  /** --bootstrap was given: others exist to be heard before a fresh peer stands (see Election.expectsPeers) */
  expectsPeers?: boolean
  /** --shard: train this slice instead of the assigned one */
  shard: [number, number] | null
  heartbeatMs: number
  leaseMs: number
  roundTimeoutMs: number
  /** deadline of one transfer from one source */
  transferTimeoutMs: number
  /** the size of this task's model blob (every model and update of the task has it): the most a transfer of one may bring */
  modelBytes: number
  /** --compression: how this peer sends its updates (default none: whole float32 weights) */
  compression?: Compression
  /**
   * --threads 0: the trainer's threads are the machine's cores, shared with the other peers on
   * this machine (coreShare); else every round trains on all of them
   */
  shareCores?: boolean
}

export interface BackendInfo {
  backend: string
  device: Device
  source: string
  warning?: string
}

export interface NodeDeps {
  net: Network
  trainer: Trainer
  backend: BackendInfo
  log: Logger
  store: CheckpointStore
  /** where this peer's votes are written before they are sent (DataDirStore); none: not kept */
  votes?: { saveVote: (vote: SavedVote) => Promise<void> }
  signer: Signer
  /** --allow-peers: the ids allowed to take part; undefined for an open network */
  allowed?: ReadonlySet<string>
  clock?: Clock
}

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

/** Senders whose early round start is kept: a liar can push an honest leader's out, which costs a round's wait, as before. */
const MAX_EARLY_STARTS = 8

/** A leader elected alone stands again for peers that joined at most once in this many leases (and once a round). */
const JOINERS_EVERY_LEASES = 10

/**
 * About how many heartbeats the whole network sends per heartbeat interval. Every peer hears every
 * heartbeat (several times over, through gossip), so a follower of a network larger than this
 * beats less often: what each peer receives and checks stays the same as the network grows. The
 * leader beats every interval, as its silence is what starts an election.
 */
const HEARTBEATS_PER_INTERVAL = 8

export class DmlNode implements MessageHandlers {
  readonly peerId: string
  readonly config: NodeConfig
  readonly election: Election
  readonly membership: Membership
  readonly replica: Replica
  readonly worker: Worker
  readonly verifier: Verifier
  readonly ledger: Ledger
  /** this peer's own task: it works only on this (see trainingDifference) */
  readonly task: Task
  /** what recovery took, what was refused, what peers did wrong: read by the status */
  readonly counts = new Counts()
  /** the leader and term this peer's heartbeats name, and since when (Membership keeps the others') */
  private following: { leader: string | null, term: number, since: number } = { leader: null, term: 0, since: 0 }
  /** round starts of senders not proven our leader when they came, by sender (see keepEarlyStart) */
  private readonly earlyStarts = new Map<string, Unstamped<RoundStart>>()
  /** what is new, and what each author and relay may still send (admission.ts) */
  private readonly admission = new Admission()
  private readonly net: Network
  private readonly trainer: Trainer
  private readonly backend: BackendInfo
  private readonly log: Logger
  private readonly clock: Clock
  private readonly signer: Signer
  private readonly voting: Voting
  private readonly claims: LeaderClaims
  private readonly policy: QuorumPolicy
  private readonly proofs: Proofs
  private readonly supervisor: Supervisor
  private readonly changes: Changes
  /** aborts when the node stops: ends the transfers no round owns (catch-up, certificates) */
  private readonly lifetime = new AbortController()
  private coordinator: Coordinator | null = null
  /** the term certificate of the leader we follow, or our own while we lead */
  private leaderCert: ProvenCert | null = null
  /** the follower's judgement of the leader it follows (leader-watchdog.ts) */
  private readonly watchdog: LeaderWatchdog
  private timer: unknown
  private running = false
  /** on its way out (drain): it serves what others still need and stands for no term */
  private leaving = false
  /** the timer of a heartbeat owed to neighbours that subscribed within a quarter interval of the last (subscribed) */
  private neighbourBeat: unknown
  /** the threads the last round trained on (threadsForRound) */
  private lastThreads: number | undefined
  private readonly lastSaid = new Map<string, number>()
  /** the last heartbeat sent: when, what in it others act on, and the interval it announced */
  private lastHeartbeat: { at: number, news: string, everyMs: number } | null = null
  /** when this leader, elected alone, last stood again for the votes of peers that joined, and at which round */
  private stoodAloneAt = -Infinity
  private stoodAloneRound = -1

  constructor (config: NodeConfig, deps: NodeDeps) {
    this.config = config
    this.task = config.task
    this.net = deps.net
    this.peerId = deps.net.peerId
    this.trainer = deps.trainer
    this.backend = deps.backend
    this.log = deps.log
    this.signer = deps.signer
    this.clock = deps.clock ?? systemClock
    this.watchdog = new LeaderWatchdog(config, this.clock.now())
    this.policy = { self: this.peerId, allowed: deps.allowed }
    this.changes = new Changes(this.clock)
    this.supervisor = new Supervisor((task, err) => {
      if (isAbort(err) && !this.running) return // stopping ends transfers on purpose
      this.log.warn('task-failed', { task, error: (err as Error)?.message ?? String(err) }, `${task} failed: ${(err as Error)?.message ?? String(err)}`)
    })
    this.ledger = new Ledger(this.log, () => this.clock.now(), (peer) => { this.net.hangUp(peer) }, this.counts)
    // a fresh peer stands after two heartbeat intervals: time to hear a leader that already exists
    this.election = new Election(this.peerId, config.leaseMs, this.clock.now(), undefined, 2 * config.heartbeatMs)
    this.election.roundPeers = config.minPeers
    this.election.expectsPeers = config.expectsPeers ?? false
    this.membership = new Membership(config.leaseMs, this.counts)
    this.proofs = new Proofs({ net: this.net, policy: this.policy, transferTimeoutMs: config.transferTimeoutMs, signal: this.lifetime.signal, standing: () => this.standing() })
    const modelBytes = this.maxBlobBytes
    this.replica = new Replica({
      net: this.net,
      store: deps.store,
      proofs: this.proofs,
      log: this.log,
      supervisor: this.supervisor,
      signal: this.lifetime.signal,
      counts: this.counts,
      now: () => this.clock.now(),
      transferTimeoutMs: config.transferTimeoutMs,
      modelBytes,
      term: () => this.election.term,
      task: () => this.task,
      finishedAfter: (round, accuracy) => round >= this.task.totalRounds || accuracy >= this.task.targetAccuracy,
      rejected: (claimant, err) => { this.onRoundRejected(claimant, err) }
    })
    this.worker = new Worker({
      self: this.peerId,
      net: this.net,
      trainer: this.trainer,
      replica: this.replica,
      log: this.log,
      now: () => this.clock.now(),
      shard: config.shard,
      compression: config.compression ?? 'none',
      task: () => this.task,
      sources: () => this.membership.live(this.clock.now()).map(h => h.peer),
      threads: () => this.threadsForRound(),
      report: async (message) => { await this.report(message) }
    })
    this.verifier = new Verifier({
      self: this.peerId,
      counts: this.counts,
      signer: this.signer,
      net: this.net,
      trainer: this.trainer,
      replica: this.replica,
      log: this.log,
      supervisor: this.supervisor,
      transferTimeoutMs: config.transferTimeoutMs,
      modelBytes,
      task: () => this.task,
      sources: () => this.membership.live(this.clock.now()).map(h => h.peer),
      policy: this.policy,
      standing: () => this.standing(),
      silentFor: (peer) => this.clock.now() - (this.membership.lastSeen(peer) ?? -Infinity),
      announceGraceMs: 2 * config.heartbeatMs,
      offence: (peer, reason, detail) => { this.ledger.offence(peer, reason, detail) }
    })
    this.voting = new Voting({
      self: this.peerId,
      election: this.election,
      replica: this.replica,
      proofs: this.proofs,
      ledger: this.ledger,
      signer: this.signer,
      store: deps.votes,
      publish: async (message) => { await this.net.publish(message) },
      blobs: this.net.blobs,
      supervisor: this.supervisor,
      log: this.log,
      clock: this.clock,
      policy: this.policy,
      counts: this.counts,
      view: () => this.view(),
      othersLive: () => this.othersLive(),
      leaderProven: () => this.leaderProven(),
      sources: (first) => this.sources(first),
      proofFailed: (peer, what, err) => { this.claims.proofFailed(peer, what, err) },
      sayEvery: (key, ms, say) => { this.sayEvery(key, ms, say) },
      won: (cert) => { this.won(cert) }
    })
    this.claims = new LeaderClaims({
      self: this.peerId,
      election: this.election,
      replica: this.replica,
      proofs: this.proofs,
      ledger: this.ledger,
      membership: this.membership,
      policy: this.policy,
      supervisor: this.supervisor,
      log: this.log,
      clock: this.clock,
      view: () => this.view(),
      sources: (first) => this.sources(first),
      sayEvery: (key, ms, say) => { this.sayEvery(key, ms, say) },
      noteTermCert: (cert) => { this.voting.noteTermCert(cert) },
      follow: (proven, hb, provesMoreRounds) => { this.followProven(proven, hb, provesMoreRounds) }
    })
  }

  get isLeading (): boolean { return this.coordinator !== null }

  /** Starts heartbeats and the election, from a checkpoint and the last saved vote if there are ('lost': unreadable). */
  start (checkpoint?: Checkpoint, vote?: SavedVote | 'lost'): void {
    if (vote === 'lost') this.election.voteLost(this.clock.now())
    else if (vote !== undefined) this.election.restoreVote(vote.term, vote.candidate)
    if (checkpoint !== undefined) {
      this.replica.restore(checkpoint)
      this.election.noteTerm(checkpoint.term)
      const accuracy = checkpoint.history.at(-1)?.metrics.accuracy
      this.log.info('checkpoint-loaded', { round: checkpoint.round, term: checkpoint.term, modelHash: checkpoint.modelHash, accuracy },
        `resumed from checkpoint: round ${checkpoint.round}, term ${checkpoint.term}`)
      if (checkpoint.round >= this.task.totalRounds || (accuracy ?? 0) >= this.task.targetAccuracy) this.replica.finish()
    }
    this.watchdog.held(this.replica.round, this.clock.now())
    this.running = true
    this.tick()
  }

  async stop (): Promise<void> {
    this.running = false
    this.clock.clearTimeout(this.timer)
    if (this.neighbourBeat !== undefined) this.clock.clearTimeout(this.neighbourBeat)
    this.endTerm('the peer is stopping')
    this.verifier.stop()
    this.lifetime.abort()
    this.changes.notify()
    await this.worker.stop()
    await this.supervisor.drain()
  }

  async whenFinished (): Promise<void> {
    await this.replica.whenFinished()
  }

  /** Waits (up to `ms`) until every live peer holds our model, so leaving loses nothing. */
  async drain (ms: number): Promise<void> {
    this.leaving = true
    // the others wait for us as we wait for them: say our round now, not at the next tick
    this.sendHeartbeat()
    const until = this.clock.now() + ms
    // a peer that left (its connection closed) waits for nothing and is waited for by nobody
    while (this.clock.now() < until && this.live().some(h => h.round < this.replica.round)) {
      await this.changes.wait(Math.min(250, until - this.clock.now()))
    }
  }

  /** The most a model or update transfer may bring: the task's model, with room for a different encoding of the same shapes. */
  private get maxBlobBytes (): number {
    return this.config.modelBytes + 4096
  }

  /**
   * The threads this peer trains a round on: with --threads 0, its share of the cores among the
   * members on this machine (four peers on two cores: one each, as two threads each gave no speed
   * and their averaged replicas cost rounds); said when it changes.
   */
  private threadsForRound (): number | undefined {
    if (this.config.shareCores !== true || this.trainer.threads === undefined) return undefined
    const members = new Set(this.othersLive())
    const here = this.net.peersOnThisHost().filter(p => members.has(p)).length
    const threads = coreShare(this.trainer.threads, here)
    if (threads !== this.lastThreads) {
      this.log.info('threads', { threads, peersOnThisHost: here }, here === 0 ? `training on ${threads} thread${threads > 1 ? 's' : ''}` : `training on ${threads} thread${threads > 1 ? 's' : ''}: ${here} other peer${here > 1 ? 's' : ''} on this machine share${here > 1 ? '' : 's'} its ${this.trainer.threads} cores`)
      this.lastThreads = threads
    }
    return threads
  }

  /** Live members, this peer first: heard within the lease, and directly connected (a member we cannot reach does not count). */
  live (): Array<Unstamped<Heartbeat>> {
    const connected = new Set(this.net.connectedPeers())
    return [this.heartbeat(), ...this.membership.live(this.clock.now()).filter(h => connected.has(h.peer))]
  }

  /** The peers that count in a quorum now: live, and proven (see proven.ts), this one included only once proven. */
  private view (): string[] {
    return this.replica.proven.counted(this.live().map(h => h.peer))
  }

  /**
   * Who counts for this peer now, in the certificates it checks (certificates.ts): the allow-list;
   * else the members its certified rounds prove (proven.ts); before anything is proven, the peers
   * it is connected to and hears, and itself. And of them, those it sees live.
   */
  standing (): Standing {
    const live = this.live()
    const fixedCheckers = (term: number, round: number): readonly string[] | undefined => this.verifier.startOf(term, round)?.checkers
    // a round started after this peer took its start, if it did, and else after this peer took up
    // the round before it (or an older one); a follower since a heartbeat before that followed then
    const since = (peer: string): number => (peer === this.peerId ? this.following.since : this.membership.followingSince(peer)) ?? Infinity
    const settledAtStart = (term: number, round: number, leader: string): readonly string[] => {
      const started = this.verifier.startTakenAt(term, round) ?? (round > this.replica.round ? this.replica.installedAt : -Infinity)
      return followersOf(leader, term).filter(p => since(p) <= started - this.config.heartbeatMs)
    }
    const allowed = this.policy.allowed
    const proven = this.replica.proven
    const connected = new Set(live.map(h => h.peer))
    const isMember = allowed !== undefined ? (p: string) => allowed.has(p) : proven.any ? (p: string) => proven.has(p) : (p: string) => connected.has(p)
    const followersOf = (leader: string, term: number): string[] => followersIn(live, leader, term).filter(isMember)
    return { isMember, followersOf, byWork: allowed !== undefined || proven.any, fixedCheckers, settledAtStart }
  }

  /** The live peers other than this one. */
  private othersLive (): string[] {
    return this.live().map(h => h.peer).filter(p => p !== this.peerId)
  }

  // ---- what the network hands us ----------------------------------------------------------

  /**
   * A message of `from` that `relay` handed over: it must be newer than what we took of its author
   * (a replay is the relay's doing), within its author's and its relay's budgets (admission.ts),
   * and current.
   */
  judge (message: ControlMessage, from: string, relay: string): Verdict {
    if (!this.running) return 'ignore'
    if (this.ledger.isBanned(from)) return { reject: 'banned' }
    if (!isAllowed(this.policy, from)) return { reject: 'not-allowed' }
    if (relay !== from && this.ledger.isBanned(relay)) return { reject: 'banned', culprit: relay }
    const admitted = this.admission.admit(message, from, relay, this.clock.now())
    if (!admitted.admit) {
      if (admitted.reason === 'not-newer') return 'ignore' // gossip keeps no order: an older one came late
      if (admitted.reason === 'replayed') this.ledger.note(admitted.culprit, 'replayed', `relayed ${admitted.detail}`)
      return { reject: admitted.reason, culprit: admitted.culprit }
    }
    return this.current(message, from)
  }

  /** Whether a new message of `from` is current: of the term and leader this peer follows, and within reach. */
  private current (message: Outgoing, from: string): Verdict {
    switch (message.type) {
      case 'vote-request':
        // beyond reach of our certified term: maybe honest and we are behind; never voted for
        if (message.term > this.election.term + MAX_TERM_STEP) {
          this.ledger.note(from, 'term-out-of-reach', `asks for votes for term ${message.term}, beyond ${this.election.term + MAX_TERM_STEP}`)
          return 'ignore'
        }
        return 'accept'
      case 'round-start':
      case 'round-proposal':
      case 'round-done':
        if (message.term < this.election.term) return { reject: 'stale' }
        if (message.term > this.election.term || this.election.leader === null) {
          // a leader we have not checked (yet, or again): its round start may beat the heartbeat
          // that proves it, so the latest one is kept and played once that proof has come
          if (message.type === 'round-start') this.keepEarlyStart(message, from)
          return 'ignore'
        }
        return from === this.election.leader ? 'accept' : { reject: 'not-leader' }
      default:
        return 'accept' // heartbeats, votes, updates, failures and signatures are checked where they are used
    }
  }

  deliver (message: ControlMessage): void {
    if (!this.running) return
    switch (message.type) {
      case 'heartbeat': this.onHeartbeat(message); break
      case 'vote-request': this.voting.onVoteRequest(message); break
      case 'vote': this.voting.onVote(message); break
      case 'round-start': this.onRoundStart(message); break
      case 'update-ready': this.coordinator?.onUpdate(message); break
      case 'work-failed': this.coordinator?.onFailure(message); break
      case 'round-proposal': if (message.leader !== this.peerId) this.verifier.onProposal(message); break
      case 'round-vote':
        this.coordinator?.onRoundVote(message)
        this.verifier.onRoundVote(message)
        break
      case 'round-done': this.replica.announce(message, this.sources(message.leader)); break
      default: {
        const never: never = message
        throw new Error(`unhandled message ${String(never)}`)
      }
    }
  }

  /** The latest round start of a sender not (yet) proven our leader: a few senders, the newest start each. */
  private keepEarlyStart (start: Unstamped<RoundStart>, from: string): void {
    this.earlyStarts.delete(from)
    this.earlyStarts.set(from, start)
    if (this.earlyStarts.size > MAX_EARLY_STARTS) this.earlyStarts.delete(this.earlyStarts.keys().next().value!)
  }

  /** Counts a rejected control message; an offence is held against its sender. */
  rejected (reason: string, from: string): void {
    const total = Counts.bump(this.counts.rejectedMessages, reason)
    if (isOffence(reason)) {
      this.ledger.offence(from, reason, `a ${reason} control message`)
      return
    }
    this.sayEvery(`${reason}:${from}`, 10_000, () => {
      this.log.warn('message-rejected', { reason, from, total }, `rejected a ${reason} control message from ${short(from)} (${total} so far)`)
    })
  }

  /**
   * A new neighbour on the control topic hears from us now, not at the next tick; many at once
   * (a network starting) hear one heartbeat each quarter interval, not one each: those that come
   * within a quarter interval of the last heartbeat hear the next, at its end. (Dropping them
   * instead cost a peer just started, whose first heartbeat went out before it had neighbours,
   * a whole interval before anyone heard of it.)
   */
  subscribed (): void {
    if (!this.running || this.neighbourBeat !== undefined) return
    const wait = this.lastHeartbeat === null ? 0 : this.lastHeartbeat.at + this.config.heartbeatMs / 4 - this.clock.now()
    if (wait <= 0) {
      this.sendHeartbeat()
      return
    }
    const since = this.clock.now()
    this.neighbourBeat = this.clock.setTimeout(() => {
      this.neighbourBeat = undefined
      // a heartbeat sent since (a tick) reached them
      if (this.running && (this.lastHeartbeat?.at ?? -Infinity) <= since) this.sendHeartbeat()
    }, wait)
  }

  /** gossipsub's application score of a peer: its offences cost. */
  score (peer: string): number {
    return this.ledger.score(peer)
  }

  banned (peer: string): boolean {
    return this.ledger.isBanned(peer)
  }

  /** A limit of the host refused something of a peer: named once per peer and reason. */
  limited (reason: string, peer: string, detail: string): void {
    this.ledger.note(peer, reason, detail)
  }

  // ---- membership and election ------------------------------------------------------------

  private heartbeat (): Unstamped<Heartbeat> {
    const { leader, term } = this.election
    if (leader !== this.following.leader || term !== this.following.term) this.following = { leader, term, since: this.clock.now() }
    return {
      type: 'heartbeat',
      v: PROTOCOL_VERSION,
      term, // the term of the leader we follow: a leader counts its followers by it
      peer: this.peerId,
      leader,
      round: this.replica.round,
      modelHash: this.replica.global?.hash ?? null,
      device: this.backend.device,
      backend: this.backend.backend,
      speed: this.worker.speed,
      examples: this.task.dataset === OWN_DATA ? this.trainer.examples : 0,
      addrs: this.net.listenAddrs().slice(0, 16),
      termCert: this.election.isLeader ? this.leaderCert?.hash ?? null : null,
      roundCert: this.replica.cert?.hash ?? null,
      work: this.work(),
      everyMs: this.heartbeatEveryMs()
    }
  }

  private heartbeatEveryMs (): number {
    const peers = 1 + this.membership.live(this.clock.now()).length
    const intervals = this.election.isLeader ? 1 : Math.ceil(peers / HEARTBEATS_PER_INTERVAL)
    return Math.min(MAX_HEARTBEAT_EVERY_MS, this.config.heartbeatMs * intervals)
  }

  /** What this peer's worker is doing, as its heartbeat says it. */
  private work (): WorkProgress | null {
    const phase = this.worker.phase
    return phase === null ? null : { round: phase.round, done: Math.min(phase.done, phase.total), total: phase.total }
  }

  /**
   * Sends this peer's heartbeat: now, or (`due`, at a tick) when what others act on changed (the
   * leader it follows, its round, its model, a certificate, its addresses) or its last heartbeat's
   * interval is nearly over.
   */
  private sendHeartbeat (when: 'now' | 'due' = 'now'): void {
    const now = this.clock.now()
    const heartbeat = this.heartbeat()
    const news = JSON.stringify([heartbeat.term, heartbeat.leader, heartbeat.round, heartbeat.modelHash, heartbeat.termCert, heartbeat.roundCert, heartbeat.addrs])
    const last = this.lastHeartbeat
    // half a tick early: a timer that fires a little late must not push the heartbeat a whole tick
    if (when === 'due' && last !== null && news === last.news && now + this.config.heartbeatMs / 2 < last.at + last.everyMs) return
    this.lastHeartbeat = { at: now, news, everyMs: heartbeat.everyMs }
    this.publish('heartbeat', heartbeat)
  }

  /** Publishes in the background; a failure is said at most once a minute per error. */
  private publish (what: string, message: Outgoing): void {
    this.supervisor.run(what, async () => {
      try {
        await this.net.publish(message)
      } catch (err) {
        this.sayEvery(`publish:${(err as Error).message}`, 60_000, () => {
          this.log.warn('publish-failed', { what, error: (err as Error).message }, `could not send a ${what}: ${(err as Error).message}`)
        })
      }
    })
  }

  private tick (): void {
    if (!this.running) return
    const now = this.clock.now()
    const lost = this.membership.expire(now)
    for (const { peer, silentMs } of lost) {
      this.log.warn('peer-lost', { peer, silentMs }, `peer ${short(peer)} silent for ${silentMs} ms: dropped`)
      if (peer === this.election.leader) {
        this.log.warn('leader-lost', { peer, term: this.election.term }, `leader ${short(peer)} lost (term ${this.election.term})`)
        this.election.leaderLost()
        this.worker.abandon(`the leader of term ${this.election.term} is gone`)
      }
    }
    if (lost.length > 0) this.changes.notify()
    this.coordinator?.checkProgress(now)
    this.verifier.tick()
    this.checkLeaderProgress(now)
    // a leader whose voters and followers no longer make a majority of the peers it sees (more
    // joined, and do not follow it) stands again
    if (this.election.isLeader && this.leaderCert !== null && !coversView(this.leaderCert.cert, this.policy, this.view(), followersOf(this.membership.live(now), this.peerId, this.election.term))) {
      this.log.info('re-election', { term: this.election.term }, `more peers than voted for or follow term ${this.election.term}: standing again`)
      this.endTerm('standing again')
      this.voting.stand(this.election.stand(now))
    } else if (this.election.isLeader && this.leaderCert !== null && this.leaderCert.cert.votes.length < 2 && now - this.stoodAloneAt >= JOINERS_EVERY_LEASES * this.config.leaseMs && this.replica.round > this.stoodAloneRound &&
      this.voting.aloneAmong(this.view(), this.othersLive())) {
      // elected by its own vote, its rounds its own: a peer that joined cannot follow it until it
      // votes. Rarely, and once a round at most: each time ends the round in progress and costs
      // up to a lease without a leader if no joiner votes
      this.stoodAloneAt = now
      this.stoodAloneRound = this.replica.round
      this.log.info('re-election', { term: this.election.term }, `elected alone in term ${this.election.term}, and another peer is here: standing again for its vote`)
      this.endTerm('standing again')
      this.voting.stand(this.election.stand(now), true)
    }
    this.considerStanding(now)
    this.sendHeartbeat('due')
    this.timer = this.clock.setTimeout(() => { this.tick() }, this.config.heartbeatMs)
  }

  private considerStanding (now: number): void {
    // a leaving peer could lead nothing: when a finished network's leader leaves first, the others
    // used to elect one of themselves on their way out
    if (this.leaving) return
    const counted = new Set(this.view())
    const ranked = rankCandidates(this.live().filter(h => counted.has(h.peer)).map(h => ({ peer: h.peer, round: h.round })))
    if (!counted.has(this.peerId)) ranked.push(this.peerId) // a newcomer stands last
    const term = this.election.tick(now, ranked)
    if (term !== undefined) this.voting.stand(term)
  }

  private onHeartbeat (hb: Heartbeat): void {
    const now = this.clock.now()
    if (this.membership.observe(hb, now)) {
      this.log.info('peer-joined', { peer: hb.peer, device: hb.device, backend: hb.backend }, `peer ${short(hb.peer)} joined (${hb.device}, ${hb.backend})`)
      this.net.dialAddrs(hb.peer, hb.addrs)
    }
    // membership and rounds changed: the coordinator and drain() wait on this
    this.changes.notify()
    if (hb.term > this.election.term + MAX_TERM_STEP) this.ledger.note(hb.peer, 'term-out-of-reach', `heartbeats with term ${hb.term}, beyond ${this.election.term + MAX_TERM_STEP}`)
    this.election.noteTerm(hb.term)
    if (hb.leader === hb.peer && hb.termCert !== null) {
      this.claims.consider(hb, hb.termCert)
    } else if (hb.peer === this.election.leader && !this.election.isLeader && hb.term >= this.election.term) {
      // our leader no longer leads (it gave up, or stands again): elect anew. A heartbeat of an
      // older term is one it sent before it led, delivered late (gossip keeps no order): under
      // load one came a second after the round start, and three peers dropped their work
      this.log.warn('leader-lost', { peer: hb.peer, term: this.election.term }, `leader ${short(hb.peer)} no longer leads term ${this.election.term}`)
      this.election.leaderLost()
      this.worker.abandon(`the leader of term ${this.election.term} gave up`)
    }
    // on a fresh network, the peer that completes the set a round needs may let the first-ranked stand now
    if (this.election.fresh) this.considerStanding(now)
  }

  /** A leadership claim that checked out (leader-claims.ts): follow its leader, or keep following it. */
  private followProven (proven: ProvenCert, hb: Heartbeat, provesMoreRounds: boolean): void {
    const now = this.clock.now()
    const wasLeader = this.election.isLeader
    const outcome = this.election.follow(proven.cert.term, hb.peer, now, provesMoreRounds)
    if (outcome === 'stale') return
    if (outcome === 'follow') {
      if (wasLeader) {
        this.log.warn('stepped-down', { term: proven.cert.term, leader: hb.peer }, `stepping down: ${short(hb.peer)} leads term ${proven.cert.term}`)
        this.endTerm(`${short(hb.peer)} leads term ${proven.cert.term}`)
      }
      this.leaderCert = proven
      this.worker.abandon(`now following ${short(hb.peer)}`)
      this.counts.add('leaderChanges')
      this.watchdog.reset(now)
      this.log.info('leader-followed', { term: proven.cert.term, leader: hb.peer, votes: proven.cert.votes.length }, `following leader ${short(hb.peer)} (term ${proven.cert.term}, ${proven.cert.votes.length} votes)`)
      this.sendHeartbeat() // the leader gives work to the peers that say they follow it
      const early = this.earlyStarts.get(hb.peer)
      this.earlyStarts.clear()
      const dropped = early === undefined ? this.worker.resumable(hb.peer, proven.cert.term) : undefined
      const replay = early ?? dropped
      // a start kept through a long wait may be of a round this peer already holds: not worth training
      if (replay !== undefined && replay.round > this.replica.round && this.current(replay, hb.peer) === 'accept') {
        const why = dropped !== undefined ? 'its work was dropped when its leader seemed lost, and it leads again' : 'its start came before the proof of its leader'
        this.log.info('round-start-replayed', { round: replay.round, term: replay.term, resumed: dropped !== undefined }, `round ${replay.round}: ${why}; taking it up now`)
        this.onRoundStart(replay)
      }
    }
    if (hb.round > this.replica.round && hb.roundCert !== null) this.replica.catchUp(hb.roundCert, this.sources(hb.peer), hb.peer)
  }

  /**
   * Whether the leader we follow is still proven by the votes of the peers we see (a voter sticks
   * to it). By votes only: a dead leader's followers still say they follow it until their leases
   * run out, and counting them would keep voters from a new candidate for that long.
   */
  private leaderProven (): boolean {
    const c = this.leaderCert
    return c !== null && this.election.leader === c.cert.leader && coversView(c.cert, this.policy, this.view())
  }

  /** A candidacy of ours won (voting.ts): our term certificate replaces the one we followed or led by. */
  private won (won: ProvenCert): void {
    if (this.leaderCert !== null && this.leaderCert.hash !== won.hash && this.leaderCert.cert.leader === this.peerId) this.net.blobs.unpin(this.leaderCert.hash)
    this.leaderCert = won
    this.counts.add('electionsWon')
    this.becameLeader()
  }

  private becameLeader (): void {
    this.endTerm('a newer term began')
    const term = this.election.term
    const termCert = this.leaderCert!
    this.counts.add('leaderChanges')
    this.log.info('leader-elected', { term, round: this.replica.round, peer: this.peerId, votes: termCert.cert.votes.length },
      `elected leader for term ${term} at round ${this.replica.round} (${termCert.cert.votes.length} votes)`)
    this.sendHeartbeat()
    const coordinator: Coordinator = new Coordinator({
      self: this.peerId,
      term,
      termCert: { hash: termCert.hash, bytes: termCert.bytes },
      signer: this.signer,
      policy: this.policy,
      config: { ...this.config, modelBytes: this.maxBlobBytes },
      clock: this.clock,
      net: this.net,
      log: this.log,
      trainer: this.trainer,
      replica: this.replica,
      changes: this.changes,
      supervisor: this.supervisor,
      counts: this.counts,
      live: () => this.live(),
      standing: () => this.standing(),
      task: () => this.task,
      offence: (peer, reason, detail) => { this.ledger.offence(peer, reason, detail) },
      note: (peer, reason, detail) => { this.ledger.note(peer, reason, detail) },
      startLocalWork: (start) => { this.onRoundStart(start) },
      resign: (reason) => { this.resign(coordinator, reason) }
    })
    this.coordinator = coordinator
    this.supervisor.run(`leading term ${term}`, async () => { await coordinator.run() })
  }

  private endTerm (reason: string): void {
    this.coordinator?.stop(reason)
    this.coordinator = null
  }

  /** The coordinator could not make progress: hand leadership to another peer, saying why. */
  private resign (coordinator: Coordinator, reason: string): void {
    if (this.coordinator !== coordinator) return
    this.endTerm(reason)
    const term = this.election.term
    this.election.resign(this.clock.now())
    this.counts.add('resignations')
    this.log.warn('leader-resigned', { term, reason }, `giving up leadership of term ${term}: ${reason}`)
    this.worker.abandon(`the leader of term ${term} gave up`)
    this.sendHeartbeat()
  }

  /** A follower's watchdog (leader-watchdog.ts): a leader that makes no progress is distrusted for a while. */
  private checkLeaderProgress (now: number): void {
    this.watchdog.held(this.replica.round, now)
    const leader = this.election.leader
    if (leader === null || this.election.isLeader || this.replica.finished) return
    const why = this.watchdog.verdict(now, this.live().length >= this.config.minPeers)
    if (why !== undefined) this.distrustLeader(leader, why)
  }

  /** Stops following `leader` for ten leases: no vote for it, and the next election without it. */
  private distrustLeader (leader: string, why: string): void {
    const now = this.clock.now()
    this.election.distrust(leader, now + 10 * this.config.leaseMs)
    this.leaderCert = null
    this.watchdog.reset(now)
    this.counts.add('leadersDistrusted')
    this.log.warn('leader-distrusted', { leader, term: this.election.term, reason: why }, `no longer following ${short(leader)} (term ${this.election.term}): ${why}; electing another`)
    this.worker.abandon(`the leader of term ${this.election.term} made no progress`)
  }

  /**
   * A round certificate `claimant` named (its round-done, or its heartbeat's newest round) does
   * not prove its round here. Forged: a lie, and our leader's is reason enough to leave it. Too
   * few of its signers count here: a view of the members that differs from ours may do that once;
   * a leader whose rounds still prove nothing a while later is left (it certifies with keys that
   * count for nobody, or with too few of the members).
   */
  private onRoundRejected (claimant: string, err: Error): void {
    const forged = isForgery(err)
    if (forged) this.ledger.offence(claimant, 'bad-certificate', `its round certificate: ${err.message}`)
    else this.ledger.note(claimant, 'unproven-round', `its round certificate proves nothing to this peer: ${err.message}`)
    if (claimant !== this.election.leader || this.election.isLeader) return
    if (forged) this.distrustLeader(claimant, `its round certificate is forged (${err.message})`)
    else this.watchdog.unproven(this.clock.now())
  }

  // ---- rounds -------------------------------------------------------------------------------

  private onRoundStart (start: Unstamped<RoundStart>): void {
    if (start.leader !== this.peerId) {
      const now = this.clock.now()
      this.watchdog.roundStarted(start.deadline, now)
      const difference = trainingDifference(this.task, start.task)
      if (difference !== undefined) {
        this.sayEvery(`task:${start.leader}:${difference.field}`, 60_000, () => {
          this.log.warn('task-mismatch', { leader: start.leader, ...difference }, `the leader ${short(start.leader)} trains with ${difference.field} ${String(difference.theirs)}, this peer with ${String(difference.ours)}: start every peer with the same options`)
        })
      }
    }
    this.verifier.started(start, this.clock.now())
    this.worker.start(start)
  }

  /** Our worker's result goes to the leader: through gossip, or straight in when we lead its term. */
  private async report (message: Unstamped<UpdateReady> | Unstamped<WorkFailed>): Promise<void> {
    if (message.type === 'update-ready') this.verifier.sentUpdate(message.term, message.round, message.hash)
    const coordinator = this.coordinator
    if (coordinator !== null && coordinator.term === message.term) {
      if (message.type === 'update-ready') coordinator.onUpdate(message)
      else coordinator.onFailure(message)
      return
    }
    await this.net.publish(message)
  }

  /** Peers to fetch a model from: `first`, then every live peer. */
  private sources (first: string): string[] {
    return [first, ...this.membership.live(this.clock.now()).map(h => h.peer)]
  }

  private sayEvery (key: string, ms: number, say: () => void): void {
    const now = this.clock.now()
    if (now - (this.lastSaid.get(key) ?? -Infinity) < ms) return
    if (this.lastSaid.size > 10_000) this.lastSaid.clear()
    this.lastSaid.set(key, now)
    say()
  }

  // ---- status -------------------------------------------------------------------------------

  status (): NodeStatus {
    const live = this.live()
    const last = this.replica.history.at(-1)
    const leader = this.election.leader
    const totalRounds = this.task.totalRounds
    const now = this.clock.now()
    const working = [{ peer: this.peerId, speed: this.worker.speed, work: this.work() }, ...live.map(h => ({ peer: h.peer, speed: h.speed, work: h.work }))]
    const current = this.replica.finished ? null : roundProgress(this.replica.round + 1, working, Math.max(0, totalRounds - this.replica.round - 1), this.replica.history.map(r => r.metrics.durationMs).filter(ms => ms > 0))
    return {
      peerId: this.peerId,
      isLeader: this.election.isLeader,
      leader,
      leaderAddrs: [...(live.find(h => h.peer === leader)?.addrs ?? [])],
      term: this.election.term,
      state: this.replica.finished ? 'finished' : leader === null ? 'electing' : live.length < this.config.minPeers ? 'waiting-for-peers' : 'training',
      round: this.replica.round,
      totalRounds,
      progress: this.replica.finished ? 1 : Math.min(1, (this.replica.round + (current?.fraction ?? 0)) / totalRounds),
      roundProgress: current,
      currentRound: this.coordinator?.snapshot() ?? (this.worker.phase === null ? null : { ...this.worker.phase }),
      accuracy: last?.metrics.accuracy ?? null,
      loss: last?.metrics.loss ?? null,
      federated: last === undefined ? null : { accuracy: last.metrics.federatedAccuracy, loss: last.metrics.federatedLoss, samples: last.metrics.evaluatedSamples },
      modelHash: this.replica.global?.hash ?? null,
      activeNodes: live.length,
      gpuNodes: live.filter(h => h.device === 'gpu').length,
      cpuNodes: live.filter(h => h.device === 'cpu').length,
      nodes: live.map(h => ({ peerId: h.peer, device: h.device, backend: h.backend, round: h.round, samplesPerSec: Math.round(h.speed), examples: h.examples, isLeader: h.peer === leader, proven: this.replica.proven.has(h.peer), work: h.work, lastSeenMs: now - (this.membership.lastSeen(h.peer) ?? now) })),
      backend: { name: this.backend.backend, device: this.backend.device, source: this.backend.source, warning: this.backend.warning ?? null, threads: this.lastThreads ?? this.trainer.threads ?? 1 },
      task: { ...this.task },
      permissioned: this.policy.allowed !== undefined,
      recovery: { ...this.counts.recovery },
      rejectedMessages: { ...this.counts.rejectedMessages },
      rejectedUpdates: { ...this.counts.rejectedUpdates },
      misbehaviour: { offences: { ...this.counts.offences }, bans: this.counts.bans, peers: this.ledger.snapshot() },
      history: this.replica.history.map(r => ({ round: r.round, term: r.term, modelHash: r.modelHash, certHash: r.certHash, ...r.metrics }))
    }
  }
}
