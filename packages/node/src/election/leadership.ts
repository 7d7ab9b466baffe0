// Leadership: this peer's side of who leads. It holds the term certificate of the leader it follows
// (or its own while it leads), the Coordinator of the term it leads, and the watchdog of the leader
// it follows. Vote requests and votes go to Voting, heartbeats that claim the lead to LeaderClaims;
// a claim that checked out is followed here, a won candidacy takes up the lead here, and a leader
// that goes silent, forges, makes no progress or loses its majority is left here.
import { MAX_TERM_STEP, type Heartbeat, type RoundStart, type Task, type Unstamped, type Vote, type VoteRequest } from '@dml/protocol'
import type { SavedVote } from '../state/checkpoint.ts'
import { coversView, isForgery, type QuorumPolicy, type Signer, type Standing } from '../proof/certificates.ts'
import type { Changes, Clock, Supervisor } from '../clock.ts'
import { Coordinator, type CoordinatorConfig } from '../round/coordinator.ts'
import type { Counts } from '../state/counts.ts'
import { rankCandidates, type Election } from './election.ts'
import { LeaderClaims } from './leader-claims.ts'
import { LeaderWatchdog, type WatchdogTimes } from './leader-watchdog.ts'
import { count, short, type Logger } from '../log.ts'
import { followersOf, type Membership } from '../state/membership.ts'
import type { Ledger } from '../state/misbehaviour.ts'
import type { Network } from '../net/network.ts'
import type { Proofs } from '../proof/proofs.ts'
import type { Replica } from '../state/replica.ts'
import type { Trainer } from '../round/trainer.ts'
import { Voting, type ProvenCert } from './voting.ts'
import type { Worker } from '../round/worker.ts'

/** A leader elected alone stands again for peers that joined at most once in this many leases (and once a round). */
const JOINERS_EVERY_LEASES = 10

export interface LeadershipDeps {
  self: string
  /** the coordinator's and the watchdog's times and sizes (modelBytes: the most a model or update blob may be) */
  config: CoordinatorConfig & WatchdogTimes
  election: Election
  membership: Membership
  replica: Replica
  worker: Worker
  proofs: Proofs
  ledger: Ledger
  counts: Counts
  signer: Signer
  policy: QuorumPolicy
  net: Network
  trainer: Trainer
  clock: Clock
  log: Logger
  supervisor: Supervisor
  changes: Changes
  /** where this peer's votes are written before they are sent; none: not kept */
  votes?: { saveVote: (vote: SavedVote) => Promise<void> }
  task: () => Task
  /** live members, this peer first */
  live: () => Array<Unstamped<Heartbeat>>
  /** the peers that count in a quorum now */
  view: () => string[]
  /** the live peers other than this one */
  othersLive: () => string[]
  standing: () => Standing
  /** the peers to fetch a blob of `first` from: it first */
  sources: (first: string) => string[]
  sayEvery: (key: string, ms: number, say: () => void) => void
  /** on its way out: it stands for no term */
  leaving: () => boolean
  /** whether `peer` may lead, by what its heartbeat says it is (a browser tab may not) */
  mayLead: (peer: string) => boolean
  /** say this peer's heartbeat now (whom it follows changed) */
  sendHeartbeat: () => void
  /** this peer's own share of a round it leads: taken up as a follower takes a round start */
  startLocalWork: (start: Unstamped<RoundStart>) => void
  /** `leader` of `term` is followed now: a round start kept for it may be taken up */
  followed: (leader: string, term: number) => void
}

export class Leadership {
  private readonly d: LeadershipDeps
  private readonly voting: Voting
  private readonly claims: LeaderClaims
  /** the follower's judgement of the leader it follows (leader-watchdog.ts) */
  private readonly watchdog: LeaderWatchdog
  /** the term certificate of the leader we follow, or our own while we lead */
  private leaderCert: ProvenCert | null = null
  private leading: Coordinator | null = null
  /** when this leader, elected alone, last stood again for the votes of peers that joined, and at which round */
  private stoodAloneAt = -Infinity
  private stoodAloneRound = -1

  constructor (deps: LeadershipDeps) {
    this.d = deps
    const { self, election, replica, proofs, ledger, signer, net, supervisor, log, clock, policy, counts } = deps
    this.watchdog = new LeaderWatchdog(deps.config, clock.now())
    this.voting = new Voting({
      self,
      election,
      replica,
      proofs,
      ledger,
      signer,
      store: deps.votes,
      publish: async (message) => { await net.publish(message) },
      blobs: net.blobs,
      supervisor,
      log,
      clock,
      policy,
      counts,
      view: deps.view,
      othersLive: deps.othersLive,
      mayLead: deps.mayLead,
      leaderProven: () => this.leaderProven(),
      sources: deps.sources,
      proofFailed: (peer, what, err) => { this.claims.proofFailed(peer, what, err) },
      sayEvery: deps.sayEvery,
      won: (cert) => { this.won(cert) }
    })
    this.claims = new LeaderClaims({
      self,
      election,
      replica,
      proofs,
      ledger,
      membership: deps.membership,
      policy,
      supervisor,
      log,
      clock,
      view: deps.view,
      sources: deps.sources,
      sayEvery: deps.sayEvery,
      noteTermCert: (cert) => { this.voting.noteTermCert(cert) },
      follow: (proven, hb, provesMoreRounds) => { this.followProven(proven, hb, provesMoreRounds) }
    })
  }

  /** The coordinator of the term this peer leads, while it leads. */
  get coordinator (): Coordinator | null { return this.leading }

  /** The term certificate this peer's heartbeat names: its own, while it leads. */
  get termCertHash (): string | null {
    return this.d.election.isLeader ? this.leaderCert?.hash ?? null : null
  }

  /** The newest round this peer holds (at start, from its checkpoint): the watchdog counts progress from it. */
  held (round: number): void {
    this.watchdog.held(round, this.d.clock.now())
  }

  onVoteRequest (request: VoteRequest): void { this.voting.onVoteRequest(request) }

  onVote (vote: Vote): void { this.voting.onVote(vote) }

  /** A heartbeat: a claim of the lead is checked, and a leader that no longer claims it is left. */
  onHeartbeat (hb: Heartbeat): void {
    const { election, ledger, log, worker } = this.d
    if (hb.term > election.term + MAX_TERM_STEP) ledger.note(hb.peer, 'term-out-of-reach', `heartbeats with term ${hb.term}, beyond ${election.term + MAX_TERM_STEP}`)
    election.noteTerm(hb.term)
    if (hb.leader === hb.peer && hb.termCert !== null) {
      this.claims.consider(hb, hb.termCert)
    } else if (hb.peer === election.leader && !election.isLeader && hb.term >= election.term) {
      // our leader no longer leads (it gave up, or stands again): elect anew. A heartbeat of an
      // older term is one it sent before it led, delivered late (gossip keeps no order): under
      // load one came a second after the round start, and three peers dropped their work
      log.warn('leader-lost', { peer: hb.peer, term: election.term }, `leader ${short(hb.peer)} no longer leads term ${election.term}`)
      election.leaderLost()
      worker.abandon(`the leader of term ${election.term} gave up`)
    }
    // one more peer known, or one more following a claimant: a claim that proved nothing may hold now
    if (hb.leader !== hb.peer) this.claims.recheck()
    // on a fresh network, the peer that completes the set a round needs may let the first-ranked stand now
    if (election.fresh) this.considerStanding(this.d.clock.now())
  }

  /** A member went silent, or said it is leaving (`left`): if it was our leader, elect anew (at once if it left). */
  lost (peer: string, left = false): void {
    const { election, log, worker } = this.d
    if (peer !== election.leader) return
    log.warn('leader-lost', { peer, term: election.term, left }, `leader ${short(peer)} ${left ? 'left' : 'lost'} (term ${election.term})`)
    if (left) election.leaderLeft(this.d.clock.now())
    else election.leaderLost()
    worker.abandon(`the leader of term ${election.term} is gone`)
  }

  /** A round start of the leader we follow, due by `deadline`: the watchdog expects it certified by then. */
  roundStarted (deadline: number): void {
    this.watchdog.roundStarted(deadline, this.d.clock.now())
  }

  /**
   * Every heartbeat interval: judges the leader we follow by its progress; a leader whose voters
   * and followers no longer make a majority of the peers it sees (more joined, and do not follow
   * it), or that was elected alone while another peer is here, stands again; a peer without a
   * leader may stand.
   */
  tick (now: number): void {
    const { election, config, replica, policy, membership } = this.d
    this.leading?.checkProgress(now)
    this.checkLeaderProgress(now)
    const cert = this.leaderCert
    if (election.isLeader && cert !== null && !coversView(cert.cert, policy, this.d.view(), followersOf(membership.live(now), this.d.self, election.term))) {
      this.d.log.info('re-election', { term: election.term }, `more peers than voted for or follow term ${election.term}: standing again`)
      this.endTerm('standing again')
      this.voting.stand(election.stand(now))
    } else if (election.isLeader && cert !== null && cert.cert.votes.length < 2 && now - this.stoodAloneAt >= JOINERS_EVERY_LEASES * config.leaseMs && replica.round > this.stoodAloneRound &&
      this.voting.aloneAmong(this.d.view(), this.d.othersLive())) {
      // elected by its own vote, its rounds its own: a peer that joined cannot follow it until it
      // votes. Rarely, and once a round at most: each time ends the round in progress and costs
      // up to a lease without a leader if no joiner votes
      this.stoodAloneAt = now
      this.stoodAloneRound = replica.round
      this.d.log.info('re-election', { term: election.term }, `elected alone in term ${election.term}, and another peer is here: standing again for its vote`)
      this.endTerm('standing again')
      this.voting.stand(election.stand(now), true)
    }
    this.considerStanding(now)
  }

  private considerStanding (now: number): void {
    // a leaving peer could lead nothing: when a finished network's leader leaves first, the others
    // used to elect one of themselves on their way out
    // nor could a browser tab, which may vanish with its page, and serves no status
    if (this.d.leaving() || !this.d.mayLead(this.d.self)) return
    const counted = new Set(this.d.view())
    const ranked = rankCandidates(this.d.live().filter(h => counted.has(h.peer) && this.d.mayLead(h.peer)).map(h => ({ peer: h.peer, round: h.round })))
    if (!counted.has(this.d.self)) ranked.push(this.d.self) // a newcomer stands last
    const term = this.d.election.tick(now, ranked)
    if (term !== undefined) this.voting.stand(term)
  }

  /** A leadership claim that checked out (leader-claims.ts): follow its leader, or keep following it. */
  private followProven (proven: ProvenCert, hb: Heartbeat, provesMoreRounds: boolean): void {
    const { election, worker, log, replica } = this.d
    const now = this.d.clock.now()
    const wasLeader = election.isLeader
    const outcome = election.follow(proven.cert.term, hb.peer, now, provesMoreRounds)
    if (outcome === 'stale') return
    if (outcome === 'follow') {
      if (wasLeader) {
        log.warn('stepped-down', { term: proven.cert.term, leader: hb.peer }, `stepping down: ${short(hb.peer)} leads term ${proven.cert.term}`)
        this.endTerm(`${short(hb.peer)} leads term ${proven.cert.term}`)
      }
      this.leaderCert = proven
      worker.abandon(`now following ${short(hb.peer)}`)
      this.d.counts.add('leaderChanges')
      this.watchdog.reset(now)
      log.info('leader-followed', { term: proven.cert.term, leader: hb.peer, votes: proven.cert.votes.length }, `following leader ${short(hb.peer)} (term ${proven.cert.term}, ${count(proven.cert.votes.length, 'vote')})`)
      this.d.sendHeartbeat() // the leader gives work to the peers that say they follow it
      this.d.followed(hb.peer, proven.cert.term)
    }
    if (hb.round > replica.round && hb.roundCert !== null) replica.catchUp(hb.roundCert, this.d.sources(hb.peer), hb.peer)
  }

  /**
   * Whether the leader we follow is still proven by the votes of the peers we see (a voter sticks
   * to it). By votes only: a dead leader's followers still say they follow it until their leases
   * run out, and counting them would keep voters from a new candidate for that long.
   */
  private leaderProven (): boolean {
    const c = this.leaderCert
    return c !== null && this.d.election.leader === c.cert.leader && coversView(c.cert, this.d.policy, this.d.view())
  }

  /** A candidacy of ours won (voting.ts): our term certificate replaces the one we followed or led by, and we lead. */
  private won (won: ProvenCert): void {
    if (this.leaderCert !== null && this.leaderCert.hash !== won.hash && this.leaderCert.cert.leader === this.d.self) this.d.net.blobs.unpin(this.leaderCert.hash)
    this.leaderCert = won
    this.d.counts.add('electionsWon')
    this.endTerm('a newer term began')
    const { election, replica, log, counts } = this.d
    const term = election.term
    counts.add('leaderChanges')
    log.info('leader-elected', { term, round: replica.round, peer: this.d.self, votes: won.cert.votes.length },
      `elected leader for term ${term} at round ${replica.round} (${count(won.cert.votes.length, 'vote')})`)
    this.d.sendHeartbeat()
    const d = this.d
    const coordinator: Coordinator = new Coordinator({
      self: d.self,
      term,
      termCert: { hash: won.hash, bytes: won.bytes },
      signer: d.signer,
      policy: d.policy,
      config: d.config,
      clock: d.clock,
      net: d.net,
      log: d.log,
      trainer: d.trainer,
      replica: d.replica,
      changes: d.changes,
      supervisor: d.supervisor,
      counts: d.counts,
      live: d.live,
      standing: d.standing,
      task: d.task,
      offence: (peer, reason, detail) => { d.ledger.offence(peer, reason, detail) },
      note: (peer, reason, detail) => { d.ledger.note(peer, reason, detail) },
      startLocalWork: d.startLocalWork,
      resign: (reason) => { this.resign(coordinator, reason) }
    })
    this.leading = coordinator
    d.supervisor.run(`leading term ${term}`, async () => { await coordinator.run() })
  }

  /** Ends the term this peer leads, if it leads one. */
  endTerm (reason: string): void {
    this.leading?.stop(reason)
    this.leading = null
  }

  /** The coordinator could not make progress: hand leadership to another peer, saying why. */
  private resign (coordinator: Coordinator, reason: string): void {
    if (this.leading !== coordinator) return
    this.endTerm(reason)
    const { election, counts, log, worker } = this.d
    const term = election.term
    election.resign(this.d.clock.now())
    counts.add('resignations')
    log.warn('leader-resigned', { term, reason }, `giving up leadership of term ${term}: ${reason}`)
    worker.abandon(`the leader of term ${term} gave up`)
    this.d.sendHeartbeat()
  }

  /** A follower's watchdog (leader-watchdog.ts): a leader that makes no progress is distrusted for a while. */
  private checkLeaderProgress (now: number): void {
    const { election, replica, config } = this.d
    this.watchdog.held(replica.round, now)
    const leader = election.leader
    if (leader === null || election.isLeader || replica.finished) return
    const why = this.watchdog.verdict(now, this.d.live().length >= config.minPeers)
    if (why !== undefined) this.distrustLeader(leader, why)
  }

  /** Stops following `leader` for ten leases: no vote for it, and the next election without it. */
  private distrustLeader (leader: string, why: string): void {
    const { election, config, counts, log, worker } = this.d
    const now = this.d.clock.now()
    election.distrust(leader, now + 10 * config.leaseMs)
    this.leaderCert = null
    this.watchdog.reset(now)
    counts.add('leadersDistrusted')
    log.warn('leader-distrusted', { leader, term: election.term, reason: why }, `no longer following ${short(leader)} (term ${election.term}): ${why}; electing another`)
    worker.abandon(`the leader of term ${election.term} made no progress`)
  }

  /**
   * A round certificate `claimant` named (its round-done, or its heartbeat's newest round) does
   * not prove its round here. Forged: a lie, and our leader's is reason enough to leave it. Too
   * few of its signers count here: a view of the members that differs from ours may do that once;
   * a leader whose rounds still prove nothing a while later is left (it certifies with keys that
   * count for nobody, or with too few of the members).
   */
  roundRejected (claimant: string, err: Error): void {
    const { election, ledger } = this.d
    const forged = isForgery(err)
    if (forged) ledger.offence(claimant, 'bad-certificate', `its round certificate: ${err.message}`)
    else ledger.note(claimant, 'unproven-round', `its round certificate proves nothing to this peer: ${err.message}`)
    if (claimant !== election.leader || election.isLeader) return
    if (forged) this.distrustLeader(claimant, `its round certificate is forged (${err.message})`)
    else this.watchdog.unproven(this.d.clock.now())
  }
}
