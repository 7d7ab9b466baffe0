// DmlNode: one peer's engine, wired. It builds the units and routes each control message to the
// one it concerns: Membership (heartbeats), Leadership (who leads: votes, claims, the term this
// peer leads and its Coordinator), RoundFollower and Worker (round starts), Verifier (proposals),
// Replica (finished rounds, catch-up). It decides which messages are new and current, and when
// its heartbeats go out (heartbeats.ts); it counts what peers do wrong (misbehaviour.ts).
// Time comes from an injected clock and the network through the Network interface, so the whole
// engine runs in unit tests on an in-memory network with fake time.
import { OWN_DATA, PROTOCOL_VERSION, type ControlMessage, type Outgoing, type Heartbeat, type Task, type Unstamped, type WorkProgress } from '@dml/protocol'
import { coreShare } from '@dml/trainer/cores'
import type { Checkpoint, SavedVote } from '../state/checkpoint.ts'
import { type QuorumPolicy, type Signer, type Standing } from '../proof/certificates.ts'
import { Changes, type Clock, isAbort, sleep, Supervisor, systemClock } from '../clock.ts'
import { Counts } from '../state/counts.ts'
import { Election } from '../election/election.ts'
import { MessageGate } from './gate.ts'
import { Heartbeats } from './heartbeats.ts'
import { Leadership } from '../election/leadership.ts'
import { short, type Logger } from '../log.ts'
import { followersIn, Membership } from '../state/membership.ts'
import { Ledger } from '../state/misbehaviour.ts'
import type { MessageHandlers, Network, Verdict } from '../net/network.ts'
import { maxBlobBytes, type BackendInfo, type NodeConfig, type NodeDeps } from './node-config.ts'
import { nodeStatus, type NodeStatus } from './node-status.ts'
import { Proofs } from '../proof/proofs.ts'
import { Replica } from '../state/replica.ts'
import { RoundFollower } from '../round/round-follower.ts'
import type { Trainer } from '../round/trainer.ts'
import { Verifier } from '../round/verifier.ts'
import { Worker } from '../round/worker.ts'

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
  private readonly net: Network
  private readonly trainer: Trainer
  private readonly backend: BackendInfo
  private readonly log: Logger
  private readonly clock: Clock
  private readonly signer: Signer
  private readonly policy: QuorumPolicy
  private readonly proofs: Proofs
  private readonly supervisor: Supervisor
  private readonly changes: Changes
  private readonly leadership: Leadership
  private readonly follower: RoundFollower
  private readonly beats: Heartbeats
  private readonly gate: MessageGate
  /** aborts when the node stops: ends the transfers no round owns (catch-up, certificates) */
  private readonly lifetime = new AbortController()
  private timer: unknown
  private running = false
  /** on its way out (drain): it serves what others still need and stands for no term */
  private leaving = false
  /** the threads the last round trained on (threadsForRound) */
  private lastThreads: number | undefined
  private readonly lastSaid = new Map<string, number>()

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
    const modelBytes = maxBlobBytes(config)
    const sayEvery = (key: string, ms: number, say: () => void): void => { this.sayEvery(key, ms, say) }
    const sources = (first: string): string[] => this.sources(first)
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
      rejected: (claimant, err) => { this.leadership.roundRejected(claimant, err) }
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
      sources: () => this.members(),
      threads: () => this.threadsForRound(),
      report: async (message) => { await this.follower.report(message) }
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
      sources: () => this.members(),
      policy: this.policy,
      standing: () => this.standing(),
      silentFor: (peer) => this.clock.now() - (this.membership.lastSeen(peer) ?? -Infinity),
      announceGraceMs: 2 * config.heartbeatMs,
      offence: (peer, reason, detail) => { this.ledger.offence(peer, reason, detail) }
    })
    this.follower = new RoundFollower({
      self: this.peerId,
      worker: this.worker,
      verifier: this.verifier,
      replica: this.replica,
      log: this.log,
      now: () => this.clock.now(),
      task: () => this.task,
      sayEvery,
      isCurrent: (start, from) => this.gate.current(start, from) === 'accept',
      roundStarted: (deadline) => { this.leadership.roundStarted(deadline) },
      coordinatorOf: (term) => this.leadership.coordinator?.term === term ? this.leadership.coordinator : null,
      publish: async (message) => { await this.net.publish(message) }
    })
    this.gate = new MessageGate({
      election: this.election,
      ledger: this.ledger,
      counts: this.counts,
      policy: this.policy,
      log: this.log,
      now: () => this.clock.now(),
      sayEvery,
      keepEarly: (start, from) => { this.follower.keepEarly(start, from) }
    })
    this.leadership = new Leadership({
      self: this.peerId,
      config: { ...config, modelBytes },
      election: this.election,
      membership: this.membership,
      replica: this.replica,
      worker: this.worker,
      proofs: this.proofs,
      ledger: this.ledger,
      counts: this.counts,
      signer: this.signer,
      policy: this.policy,
      net: this.net,
      trainer: this.trainer,
      clock: this.clock,
      log: this.log,
      supervisor: this.supervisor,
      changes: this.changes,
      votes: deps.votes,
      task: () => this.task,
      live: () => this.live(),
      view: () => this.view(),
      othersLive: () => this.othersLive(),
      standing: () => this.standing(),
      sources,
      sayEvery,
      leaving: () => this.leaving,
      mayLead: (peer) => (peer === this.peerId ? this.backend.device : this.membership.get(peer)?.device) !== 'browser',
      sendHeartbeat: () => { this.beats.send() },
      startLocalWork: (start) => { this.follower.start(start) },
      followed: (leader, term) => { this.follower.followed(leader, term) }
    })
    this.beats = new Heartbeats({
      heartbeatMs: config.heartbeatMs,
      clock: this.clock,
      compose: () => this.heartbeat(),
      publish: (heartbeat) => { this.publish('heartbeat', heartbeat) },
      isLeader: () => this.election.isLeader,
      members: () => this.membership.live(this.clock.now()).length,
      running: () => this.running
    })
  }

  get isLeading (): boolean { return this.leadership.coordinator !== null }

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
    this.leadership.held(this.replica.round)
    this.running = true
    this.tick()
  }

  async stop (): Promise<void> {
    if (this.running) {
      // a last heartbeat says we are leaving (a leader hands over at once: its followers elect
      // anew without waiting out its lease); bounded, a network that is gone does not hold us
      const waited = new AbortController()
      const farewell = this.net.publish({ ...this.heartbeat(), leaving: true }).catch(() => {}) // gone with the network: the lease tells them instead
      await Promise.race([farewell, sleep(this.clock, 500, waited.signal).catch(() => {})])
      waited.abort()
    }
    this.running = false
    this.clock.clearTimeout(this.timer)
    this.beats.stop()
    this.leadership.endTerm('the peer is stopping')
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
    this.beats.send()
    const until = this.clock.now() + ms
    // a peer that left (its connection closed) waits for nothing and is waited for by nobody
    while (this.clock.now() < until && this.live().some(h => h.round < this.replica.round)) {
      await this.changes.wait(Math.min(250, until - this.clock.now()))
    }
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
    const fixedCheckers = (term: number, round: number, deadline: number): readonly string[] | undefined => {
      const start = this.verifier.startOf(term, round)
      return start?.deadline === deadline ? start.checkers : undefined
    }
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

  // ---- what the network hands us (the gate, gate.ts) ---------------------------------------

  judge (message: ControlMessage, from: string, relay: string): Verdict {
    return this.running ? this.gate.judge(message, from, relay) : 'ignore'
  }

  deliver (message: ControlMessage): void {
    if (!this.running) return
    const coordinator = this.leadership.coordinator
    switch (message.type) {
      case 'heartbeat': this.onHeartbeat(message); break
      case 'vote-request': this.leadership.onVoteRequest(message); break
      case 'vote': this.leadership.onVote(message); break
      case 'round-start': this.follower.received(message); break
      case 'update-ready':
        coordinator?.onUpdate(message)
        this.verifier.prefetch(message)
        break
      case 'work-failed': coordinator?.onFailure(message); break
      case 'round-proposal': if (message.leader !== this.peerId) this.verifier.onProposal(message); break
      case 'round-vote':
        coordinator?.onRoundVote(message)
        this.verifier.onRoundVote(message)
        break
      case 'round-done': this.replica.announce(message, this.sources(message.leader)); break
      default: {
        const never: never = message
        throw new Error(`unhandled message ${String(never)}`)
      }
    }
  }

  rejected (reason: string, from: string): void {
    this.gate.rejected(reason, from)
  }

  /** A new neighbour on the control topic: it hears from us soon (heartbeats.ts). */
  subscribed (): void {
    this.beats.subscribed()
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

  // ---- membership and heartbeats ----------------------------------------------------------

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
      termCert: this.leadership.termCertHash,
      roundCert: this.replica.cert?.hash ?? null,
      work: this.work(),
      everyMs: this.beats.everyMs()
    }
  }

  /** What this peer's worker is doing, as its heartbeat says it. */
  private work (): WorkProgress | null {
    const phase = this.worker.phase
    return phase === null ? null : { round: phase.round, done: Math.min(phase.done, phase.total), total: phase.total }
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
      this.leadership.lost(peer)
    }
    if (lost.length > 0) this.changes.notify()
    this.verifier.tick()
    this.leadership.tick(now)
    this.beats.send('due')
    this.timer = this.clock.setTimeout(() => { this.tick() }, this.config.heartbeatMs)
  }

  private onHeartbeat (hb: Heartbeat): void {
    if (hb.leaving === true) {
      // it said goodbye: no round waits for it, and if it led, the election starts now
      if (this.membership.forget(hb.peer)) this.log.info('peer-left', { peer: hb.peer }, `peer ${short(hb.peer)} left`)
      this.leadership.lost(hb.peer, true)
      this.changes.notify()
      return
    }
    if (this.membership.observe(hb, this.clock.now())) {
      this.log.info('peer-joined', { peer: hb.peer, device: hb.device, backend: hb.backend }, `peer ${short(hb.peer)} joined (${hb.device}, ${hb.backend})`)
    }
    // a member heard through others but not connected is dialed where it says it is (within the
    // dialer's budgets): behind NAT, its relayed address comes a while after its first heartbeat
    this.net.dialAddrs(hb.peer, hb.addrs)
    // membership and rounds changed: the coordinator and drain() wait on this
    this.changes.notify()
    this.leadership.onHeartbeat(hb)
    this.leadership.coordinator?.onHeartbeat(hb)
  }

  /** The members heard within their leases (not this peer): where a model may be fetched. */
  private members (): string[] {
    return this.membership.live(this.clock.now()).map(h => h.peer)
  }

  /** Peers to fetch a model from: `first`, then every live peer. */
  private sources (first: string): string[] {
    return [first, ...this.members()]
  }

  private sayEvery (key: string, ms: number, say: () => void): void {
    const now = this.clock.now()
    if (now - (this.lastSaid.get(key) ?? -Infinity) < ms) return
    if (this.lastSaid.size > 10_000) this.lastSaid.clear()
    this.lastSaid.set(key, now)
    say()
  }

  status (): NodeStatus {
    return nodeStatus({
      peerId: this.peerId,
      now: this.clock.now(),
      live: this.live(),
      minPeers: this.config.minPeers,
      election: this.election,
      replica: this.replica,
      membership: this.membership,
      speed: this.worker.speed,
      work: this.work(),
      currentRound: this.leadership.coordinator?.snapshot() ?? (this.worker.phase === null ? null : { ...this.worker.phase }),
      backend: this.backend,
      threads: this.lastThreads ?? this.trainer.threads ?? 1,
      task: this.task,
      permissioned: this.policy.allowed !== undefined,
      counts: this.counts,
      ledger: this.ledger
    })
  }
}
