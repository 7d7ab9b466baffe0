// A peer's heartbeat that claims the lead: the follower's side of an election. The claim is
// followed only once its term certificate checks out and covers the peers this one sees (with the
// peers that say they follow it, and this peer if it voted for it); a leader of an older term only
// when it proves more finished rounds. A lie costs its sender (misbehaviour.ts); an honest fresh
// start that proves nothing yet is said, not held against anyone. The node follows (`follow`).
import type { Heartbeat, TermCert } from '@dml/protocol'
import { CertificateError, coversView, isForgery, type QuorumPolicy } from '../proof/certificates.ts'
import { type Clock, isAbort, type Supervisor } from '../clock.ts'
import type { Election } from './election.ts'
import { count, short, type Logger } from '../log.ts'
import { followersOf, type Membership } from '../state/membership.ts'
import type { Ledger } from '../state/misbehaviour.ts'
import type { Proofs, ProvenRound } from '../proof/proofs.ts'
import type { Replica } from '../state/replica.ts'
import type { ProvenCert } from './voting.ts'

export interface LeaderClaimsDeps {
  self: string
  election: Election
  replica: Replica
  proofs: Proofs
  ledger: Ledger
  membership: Membership
  policy: QuorumPolicy
  supervisor: Supervisor
  log: Logger
  clock: Clock
  /** the peers that count in a quorum now */
  view: () => string[]
  /** the peers to fetch a blob of `first` from: it first */
  sources: (first: string) => string[]
  sayEvery: (key: string, ms: number, say: () => void) => void
  /** the votes of a checked term certificate, as seen votes (Voting.noteTermCert) */
  noteTermCert: (cert: TermCert) => void
  /** the claim holds: follow `hb.peer`, whose term certificate is `proven` */
  follow: (proven: ProvenCert, hb: Heartbeat, provesMoreRounds: boolean) => void
}

export class LeaderClaims {
  private readonly d: LeaderClaimsDeps
  /** claims being checked, by claimant: one check at a time each */
  private readonly checking = new Set<string>()
  /**
   * The claimant whose claim proved nothing here for want of voters or endorsers this peer knows (a
   * fresh network's leader, elected before this peer came up): its latest heartbeat is checked
   * again at the next heartbeat of any other peer (recheck), not only at its own next one, up to a
   * second later.
   */
  private unproven: string | null = null
  /** claimants whose claim was being checked when a recheck came: checked again after */
  private readonly recheckAfter = new Set<string>()

  constructor (deps: LeaderClaimsDeps) {
    this.d = deps
  }

  /** A leadership claim: follow it once its term certificate checks out; catch up with a proven leader. */
  consider (hb: Heartbeat, termCert: string): void {
    const { election, replica, clock } = this.d
    // checked now: a recheck waits for its outcome
    if (this.unproven === hb.peer) this.unproven = null
    const now = clock.now()
    // a leader of an older term is still worth checking when it claims more finished rounds (see Election.follow)
    const claimsMoreRounds = hb.round > replica.round && hb.roundCert !== null
    if ((hb.term < election.term && !claimsMoreRounds) || election.isDistrusted(hb.peer, now)) return
    if (hb.term === election.term && hb.peer === election.leader) {
      election.leaderSeen(now)
      if (hb.round > replica.round && hb.roundCert !== null) replica.catchUp(hb.roundCert, this.d.sources(hb.peer), hb.peer)
      return
    }
    if (this.checking.has(hb.peer)) return
    this.checking.add(hb.peer)
    this.d.supervisor.run(`check the leadership claim of ${short(hb.peer)}`, async () => {
      try {
        await this.check(hb, termCert, claimsMoreRounds)
      } catch (err) {
        if (err instanceof CertificateError && err.kind === 'unproven' && this.freshStart(hb)) {
          this.unproven = hb.peer
          this.sayFreshLeader(hb, 'elected on too few votes to prove anything to this peer')
        } else this.proofFailed(hb.peer, 'its leadership claim', err)
      } finally {
        this.checking.delete(hb.peer)
        if (this.recheckAfter.delete(hb.peer)) this.recheck()
      }
    })
  }

  /**
   * A heartbeat of another peer than the claimant: a peer newly connected, or one more that says it
   * follows the claimant, may make the claim that proved nothing hold now.
   */
  recheck (): void {
    const claimant = this.unproven
    if (claimant === null) return
    if (this.checking.has(claimant)) {
      this.recheckAfter.add(claimant)
      return
    }
    this.unproven = null
    // its latest heartbeat, while it is live and still claims the lead: nothing stale moves this peer
    const latest = this.d.membership.live(this.d.clock.now()).find(h => h.peer === claimant)
    if (latest === undefined || latest.leader !== claimant || latest.termCert === null) return
    this.consider(latest, latest.termCert)
  }

  /** A proof `peer` gave did not check out: a forgery is an offence, a proof of nothing here a note, a failed fetch is said. */
  proofFailed (peer: string, what: string, err: unknown): void {
    const e = err as Error
    if (isForgery(e)) {
      this.d.ledger.offence(peer, 'bad-certificate', `${what}: ${e.message}`)
    } else if (e instanceof CertificateError) {
      this.d.ledger.note(peer, 'unproven-claim', `${what} proves nothing to this peer: ${e.message}`)
    } else if (!isAbort(e)) {
      this.d.sayEvery(`proof:${peer}`, 30_000, () => { this.d.log.warn('proof-unavailable', { peer, error: e.message }, `could not check ${what} of ${short(peer)}: ${e.message}`) })
    }
  }

  private async check (hb: Heartbeat, termCert: string, claimsMoreRounds: boolean): Promise<void> {
    const { election, replica, proofs, ledger } = this.d
    const proven = await proofs.term(termCert, this.d.sources(hb.peer))
    if (proven.cert.term !== hb.term || proven.cert.leader !== hb.peer) {
      ledger.offence(hb.peer, 'bad-certificate', `its heartbeat claims term ${hb.term} with the certificate of term ${proven.cert.term} of ${short(proven.cert.leader)}`)
      return
    }
    // its votes are genuine: a voter in it that voted otherwise in the term is caught, whether or not they elect it here
    this.d.noteTermCert(proven.cert)
    proofs.elects(proven.cert, election.votedTerm === hb.term && election.votedFor === hb.peer)
    // its newest certified round: the proof of the rounds it claims over an older term, and
    // for a newcomer that knows of no proven peers yet, who they are
    let provesMoreRounds = false
    let newest: ProvenRound | undefined
    if (hb.roundCert !== null && (!replica.proven.any || (hb.term < election.term && claimsMoreRounds))) {
      try {
        newest = await proofs.round(hb.roundCert, this.d.sources(hb.peer))
        provesMoreRounds = newest.result.round > replica.round
      } catch (err) {
        if (!(err instanceof CertificateError) || err.kind !== 'unproven') throw err
        // genuine but signed by too few for this peer (a peer's rounds certified alone): they
        // count as no rounds, and its term certificate, checked above and below, decides
      }
    }
    if (hb.term < election.term && !provesMoreRounds) return
    // those that say they follow it, and this peer if it voted for it: a vote that came after
    // the quorum is not in the certificate, and the leader may not be proven to this peer
    const endorsers = followersOf(this.d.membership.live(this.d.clock.now()), hb.peer, hb.term)
    if (election.votedTerm === hb.term && election.votedFor === hb.peer) endorsers.push(this.d.self)
    const view = this.d.view()
    if (!coversView(proven.cert, this.d.policy, view, endorsers)) {
      if (this.freshStart(hb)) {
        this.unproven = hb.peer
        this.sayFreshLeader(hb, `elected by ${count(proven.cert.votes.length, 'vote')}, too few of the ${view.length} peers this node sees`)
      } else ledger.note(hb.peer, 'unproven-leader', `claims term ${hb.term}, but too few of the peers this node sees voted for it`)
      return
    }
    // a newcomer learns the members from the rounds of the leader that the peers it sees endorse, not before
    if (newest !== undefined && !replica.proven.any) replica.proven.sawRound(newest)
    this.d.follow({ hash: termCert, ...proven }, hb, provesMoreRounds)
  }

  /**
   * Nothing proven yet and no round finished: a fresh network. There the first peer up may elect
   * itself on its own vote before it hears anyone, and a leader may be elected by fewer peers than
   * another sees as they come up. Such a claim proves nothing to this peer (an election with more
   * votes follows), but it is how an honest start looks, not a suspicion.
   */
  private freshStart (hb: Heartbeat): boolean {
    return !this.d.replica.proven.any && hb.round === 0 && this.d.replica.round === 0
  }

  private sayFreshLeader (hb: Heartbeat, why: string): void {
    this.d.sayEvery(`fresh-leader:${hb.peer}`, 30_000, () => {
      this.d.log.info('leader-unproven', { peer: hb.peer, term: hb.term, why }, `${short(hb.peer)} leads term ${hb.term}, ${why}; not following it yet`)
    })
  }
}
