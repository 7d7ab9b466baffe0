// The ballot box of one peer: its candidacies (stand), the vote requests it answers, the votes it
// checks and counts, and the votes it has seen each voter give (a voter seen voting for two
// candidates in one term is convicted). When a candidacy's votes make a quorum it builds the term
// certificate and hands it to the node (`won`), which takes up the lead. The rules of who may be
// voted for are election.ts's; the proofs of a candidate's rounds are Proofs'.
import { encodeTermCert, MAX_TERM_STEP, PROTOCOL_VERSION, voteSigningBytes, type Outgoing, type TermCert, type Vote, type VoteRequest } from '@dml/protocol'
import type { SavedVote } from '../state/checkpoint.ts'
import { CertificateError, isForgery, isQuorum, signedBy, type QuorumPolicy, type Signer } from '../proof/certificates.ts'
import type { Clock, Supervisor } from '../clock.ts'
import type { Election } from './election.ts'
import { short, type Logger } from '../log.ts'
import type { Ledger } from '../state/misbehaviour.ts'
import type { Blobs } from '../net/network.ts'
import type { Proofs } from '../proof/proofs.ts'
import type { Replica } from '../state/replica.ts'
import type { Counts } from '../state/counts.ts'

/** A checked term certificate, with its blob's hash and bytes (to pin and to serve). */
export interface ProvenCert { hash: string, bytes: Uint8Array, cert: TermCert }

/** At most this many voters a term are remembered (keys are free: this must not grow with them). */
const VOTERS_KEPT = 1024

export interface VotingDeps {
  self: string
  election: Election
  replica: Replica
  proofs: Proofs
  ledger: Ledger
  signer: Signer
  /** where this peer's votes are written before they are sent; none: not kept */
  store?: { saveVote: (vote: SavedVote) => Promise<void> }
  publish: (message: Outgoing) => Promise<void>
  blobs: Blobs
  supervisor: Supervisor
  log: Logger
  clock: Clock
  policy: QuorumPolicy
  counts: Counts
  /** the peers that count in a quorum now */
  view: () => string[]
  /** the live peers other than this one */
  othersLive: () => string[]
  /** whether `peer` may lead, by what its heartbeat says it is (a browser tab may not) */
  mayLead: (peer: string) => boolean
  /** whether the leader this peer follows is still proven by the votes of the peers it sees */
  leaderProven: () => boolean
  /** the peers to fetch a blob of `first` from: it first */
  sources: (first: string) => string[]
  /** a proof `peer` gave did not check out */
  proofFailed: (peer: string, what: string, err: unknown) => void
  sayEvery: (key: string, ms: number, say: () => void) => void
  /** a candidacy of this peer won: `cert` is its term certificate, stored and pinned */
  won: (cert: ProvenCert) => void
}

export class Voting {
  private readonly d: VotingDeps
  /** the candidate each voter was seen voting for, by term, in votes and term certificates (see noteVote) */
  private readonly votesHeard = new Map<number, Map<string, string>>()
  /** vote requests being checked, by candidate: one check at a time each */
  private readonly checking = new Set<string>()
  /** the term this peer stood for for the votes of peers that joined its lone network (see stand) */
  private joinersTerm: number | null = null

  constructor (deps: VotingDeps) {
    this.d = deps
  }

  /**
   * Stands for `term`: votes for itself and asks the others. `forJoiners`: it led alone, and
   * stands for the vote of a peer that joined; that candidacy waits for one of their votes.
   */
  stand (term: number, forJoiners = false): void {
    const { replica, log, supervisor, signer, election } = this.d
    if (forJoiners) this.joinersTerm = term
    log.info('election-started', { term, round: replica.round }, `standing for term ${term} with ${replica.round} finished rounds`)
    supervisor.run(`stand for term ${term}`, async () => {
      if (!await this.saveVote(term, this.d.self)) return
      const signature = await signer.sign(voteSigningBytes(term, this.d.self))
      if (election.candidacy?.term !== term) return
      this.countVote(term, this.d.self, signature)
      if (election.isLeader) return // a quorum of one
      await this.d.publish({ type: 'vote-request', v: PROTOCOL_VERSION, term, candidate: this.d.self, round: replica.round, roundCert: replica.cert?.hash ?? null })
    })
  }

  /**
   * An open network whose only proven peer is this one (it certified its rounds alone), with
   * other peers live. Certificates it signs alone prove nothing to them: it stands again for their
   * votes, and keeps their votes in the certificate beside its own.
   */
  aloneAmong (view: string[], others: string[]): boolean {
    return this.d.policy.allowed === undefined && view.length <= 1 && others.length > 0 && this.d.replica.proven.any
  }

  onVoteRequest (request: VoteRequest): void {
    const { election, replica, proofs, ledger, clock } = this.d
    const candidate = request.candidate
    if (candidate === this.d.self) return
    // our next candidacy goes past it: a candidate refused only for its term would otherwise stay
    // a term behind one that stands as often and is refused for its rounds, for good
    election.noteTerm(request.term)
    if (this.checking.has(candidate)) return
    if (!this.d.mayLead(candidate)) return // a browser tab: no vote makes it lead
    // refuse at once what no proof could change
    if (election.refusableUnproven(request, replica.round, this.d.leaderProven(), clock.now())) return
    this.checking.add(candidate)
    this.d.supervisor.run(`decide on the vote request of ${short(candidate)}`, async () => {
      try {
        let proven = 0
        if (request.round > 0 && request.roundCert !== null) {
          try {
            const round = await proofs.round(request.roundCert, this.d.sources(candidate))
            if (round.result.round !== request.round) {
              ledger.offence(candidate, 'bad-certificate', `it claims round ${request.round} with the certificate of round ${round.result.round}`)
              return
            }
            proven = round.result.round
          } catch (err) {
            if (isForgery(err) || !(err instanceof CertificateError)) throw err
            // genuine but unproven to us (a lone peer's own rounds): its claim counts as no rounds
          }
        }
        const now = clock.now()
        const refusal = election.decide(request, proven, replica.round, this.d.leaderProven(), now)
        if (refusal !== undefined) return
        election.voted(request.term, candidate, now)
        if (!await this.saveVote(request.term, candidate)) return
        const signature = await this.d.signer.sign(voteSigningBytes(request.term, candidate))
        this.d.counts.add('votesGiven')
        this.d.log.info('voted', { term: request.term, candidate }, `voted for ${short(candidate)} in term ${request.term}`)
        await this.d.publish({ type: 'vote', v: PROTOCOL_VERSION, term: request.term, candidate, voter: this.d.self, signature })
      } catch (err) {
        this.d.proofFailed(candidate, 'its vote request', err)
      } finally {
        this.checking.delete(candidate)
      }
    })
  }

  /** A vote, for us or for another candidate: checked, heard (noteVote), and counted if it is for our candidacy. */
  onVote (vote: Vote): void {
    const { election } = this.d
    const forUs = vote.candidate === this.d.self && election.candidacy?.term === vote.term
    const inReach = Math.abs(vote.term - election.term) <= MAX_TERM_STEP
    if (!forUs && !inReach) return
    this.d.supervisor.run(`check the vote of ${short(vote.voter)}`, async () => {
      // the voter is the message's gossip author (host.ts): a vote that does not check out is its own doing
      if (!await signedBy(vote.voter, voteSigningBytes(vote.term, vote.candidate), vote.signature)) {
        this.d.ledger.offence(vote.voter, 'bad-vote', `its vote for term ${vote.term} does not check out`)
        return
      }
      this.noteVote(vote.term, vote.voter, vote.candidate)
      if (forUs) this.countVote(vote.term, vote.voter, vote.signature)
    })
  }

  /** The votes of a checked term certificate (ours when we win, each leader's we check), as seen votes (noteVote). */
  noteTermCert (cert: TermCert): void {
    for (const v of cert.votes) this.noteVote(cert.term, v.voter, cert.leader)
  }

  /**
   * Writes our vote down before anyone hears it (Raft keeps votedFor so): a peer restarted in the
   * middle of an election would otherwise vote again in a term it voted in, and two candidates
   * could each count it. A vote that cannot be written is not given.
   */
  private async saveVote (term: number, candidate: string): Promise<boolean> {
    if (this.d.store === undefined) return true
    try {
      await this.d.store.saveVote({ term, candidate })
      return true
    } catch (err) {
      this.d.sayEvery('vote-not-saved', 60_000, () => {
        this.d.log.warn('vote-not-saved', { term, candidate, error: (err as Error).message }, `did not vote in term ${term}: the vote could not be written down: ${(err as Error).message}`)
      })
      return false
    }
  }

  /**
   * A checked vote, heard or in a checked term certificate: an honest peer votes once a term, and
   * keeps its vote across restarts, so a voter seen voting for two candidates in one term voted
   * twice. In a network of an odd number of peers two majorities can meet in one member, so one
   * such liar could give two candidates a term each, and both would run rounds. It is banned as
   * soon as the second vote is seen: as a vote, usually before the two can each help make a
   * leader; in a second leader's certificate, if its votes never reached us. Its votes then fall
   * out of every view, two such leaders' certificates stop covering a majority, and they stand
   * again without it. VOTERS_KEPT voters a term are kept, for the terms within reach.
   */
  private noteVote (term: number, voter: string, candidate: string): void {
    if (voter === this.d.self) return
    let voters = this.votesHeard.get(term)
    if (voters === undefined) {
      voters = new Map()
      this.votesHeard.set(term, voters)
      if (this.votesHeard.size > 2 * MAX_TERM_STEP) this.votesHeard.delete(Math.min(...this.votesHeard.keys()))
    }
    const earlier = voters.get(voter)
    if (earlier === undefined) {
      if (voters.size < VOTERS_KEPT) voters.set(voter, candidate)
    } else if (earlier !== candidate) {
      this.d.ledger.convict(voter, 'equivocation', `voted in term ${term} for both ${short(earlier)} and ${short(candidate)}`)
    }
  }

  private countVote (term: number, voter: string, signature: Uint8Array): void {
    const { election, policy } = this.d
    const view = this.d.view()
    // alone in its view (its rounds certified by itself) while others are live: a certificate of
    // one signer proves nothing to them, so it waits for a live peer's vote and keeps it
    const others = this.d.othersLive()
    const alone = this.aloneAmong(view, others)
    // only the candidacy that stood for the joiners waits for one of their votes: if none comes
    // within its lease (a peer that never votes), the next candidacy is a quorum of one again
    const waitsForJoiner = alone && term === this.joinersTerm
    const quorum = (voters: string[]): boolean => isQuorum(voters, policy, view) && (!waitsForJoiner || voters.some(v => others.includes(v)))
    if (!election.addVote(term, voter, signature, quorum, this.d.clock.now())) return
    // A candidate is in its own electorate, proven or not: a term certificate whose leader is not
    // in its electorate is a forgery to every peer. A newcomer whose turn to stand came first (32
    // peers on two cores) was elected by the proven peers' votes alone, then named and banned by
    // them. Its quorum is still of the proven peers; its own vote is added beside theirs.
    const members = policy.allowed ?? new Set([this.d.self, ...(alone ? [...view, ...others.filter(p => election.candidacy!.votes.has(p))] : view)])
    const votes = [...election.candidacy!.votes].filter(([v]) => members.has(v)).map(([v, s]) => ({ voter: v, signature: s }))
    election.candidacy = null
    const cert: TermCert = { kind: 'term-cert', v: PROTOCOL_VERSION, term, leader: this.d.self, electorate: [...members], votes }
    const bytes = encodeTermCert(cert)
    const hash = this.d.blobs.put(bytes, true)
    this.noteTermCert(cert)
    this.d.won({ hash, bytes, cert })
  }
}
