// Checking certificates: whose signatures count, how many make a quorum, and whether they hold.
//
// A signature proves who signed, not that the signer counts. A certificate counts only signers
// this peer knows to be entitled, from its own state (its Standing), never whatever keys a
// certificate carries:
// - Permissioned network (--allow-peers): members are the allow-listed ids, and a quorum is a
//   majority of them, whatever is live.
// - Open network: keys are free, so a member is a peer whose work counted lately: its update in
//   a certified round, or its signature on one (proven.ts), as this peer's own certified rounds
//   show. Before anything is proven (a fresh network, a newcomer), the peers it is connected to
//   and hears now stand in for them: a key nobody runs is never one of them.
// A round is signed by its checkers, drawn by hash from the round's members (its pool) before
// the round began. It needs a majority of them, and a majority of the members this peer sees live
// following the round's leader (at most MAX_ROUND_CHECKERS of them): a leader that names a small
// pool (itself and a friend) while others follow it does not make a small quorum. In a large
// network the pool must also leave out few of them, so that the draw is fair. Any certificate needs two signers, unless this peer is
// its only signer: one identity proves nothing to others.
import { encodeRoundCert, MAX_ROUND_CHECKERS, PROTOCOL_VERSION, resultSigningBytes, roundCheckers, roundEvaluation, roundVoteSigningBytes, voteSigningBytes, type RoundCert, type RoundCertVote, type RoundEvaluation, type RoundResult, type RoundVote, type TermCert } from '@dml/protocol'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'

/**
 * A certificate that does not prove what it claims. `forged`: a signature that does not check out,
 * a signer that may not sign, parts that do not belong together (an offence). `unproven`: genuine,
 * but too few signers that count for this peer (a lone peer's own rounds, say): no offence.
 */
export class CertificateError extends Error {
  override name = 'CertificateError'
  readonly kind: 'forged' | 'unproven'
  constructor (kind: 'forged' | 'unproven', message: string) {
    super(message)
    this.kind = kind
  }
}

/** Whether `err` shows a lie: a forged certificate, or bytes that are not one. */
export function isForgery (err: unknown): boolean {
  return (err instanceof CertificateError && err.kind === 'forged') || (err as Error)?.name === 'MessageError'
}

/** Signs with this peer's key (its peer id is the public key, so anyone can check). */
export interface Signer {
  readonly peerId: string
  sign: (bytes: Uint8Array) => Promise<Uint8Array>
}

export function keySigner (peerId: string, key: PrivateKey): Signer {
  return { peerId, sign: async (bytes) => await key.sign(bytes) }
}

/** Whether `signature` is `peer`'s over `bytes`; false for anything malformed. */
export async function signedBy (peer: string, bytes: Uint8Array, signature: Uint8Array): Promise<boolean> {
  try {
    const key = peerIdFromString(peer).publicKey
    return key !== undefined && await key.verify(bytes, signature)
  } catch {
    return false
  }
}

/** A checker's round-vote as a certificate's vote, if its signature checks out (undefined: forged). */
export async function certVoteOf (vote: RoundVote): Promise<RoundCertVote | undefined> {
  if (!await signedBy(vote.peer, roundVoteSigningBytes(vote.resultHash, vote.accuracy, vote.loss, vote.samples), vote.signature)) return undefined
  return { peer: vote.peer, accuracy: vote.accuracy, loss: vote.loss, samples: vote.samples, signature: vote.signature }
}

/**
 * The round certificate of a result: its bytes, the leader's signature of it and the checkers'
 * votes, sorted by peer. The one place a certificate is built, by the leader and by a checker that
 * certifies a round its leader fell silent on alike, so both build the same bytes.
 */
export function roundCertificate (resultBytes: Uint8Array, leaderSignature: Uint8Array, votes: Iterable<RoundCertVote>): Uint8Array {
  return encodeRoundCert({ kind: 'round-cert', v: PROTOCOL_VERSION, result: resultBytes, leaderSignature, votes: [...votes].sort((a, b) => (a.peer < b.peer ? -1 : 1)) })
}

export interface QuorumPolicy {
  self: string
  /** permissioned: the allow-listed peer ids; open network: undefined */
  allowed?: ReadonlySet<string>
}

export function isAllowed (policy: QuorumPolicy, peer: string): boolean {
  return policy.allowed === undefined || policy.allowed.has(peer)
}

/**
 * Who counts for this peer, now: its members, and those of them it sees live (heard within the
 * lease, and connected) following a leader. `byWork`: the members are known from certified rounds
 * (or the allow-list), not only from who is connected.
 */
export interface Standing {
  isMember: (peer: string) => boolean
  /**
   * the members this peer sees live whose heartbeats say they follow `leader` in `term` (itself
   * included, and the leader itself): who a round of that leader's term had to draw its checkers
   * from. Members that follow no one (restarting), another leader, or it in another term (they have
   * not taken up its new term yet) are not the leader's to draw. If none follow it in `term` (a
   * term of its own that nobody follows, while it tells its followers of another), those that
   * follow it in any term.
   */
  followersOf: (leader: string, term: number) => readonly string[]
  byWork: boolean
  /**
   * the checkers of round `round` of `term` as the leader's signed round start named them, if this
   * peer saw that start: the one of that `deadline` (a start it missed, a retry, fixes nothing here)
   */
  fixedCheckers?: (term: number, round: number, deadline: number) => readonly string[] | undefined
  /**
   * the members of followersOf(`leader`, `term`) that followed it already when round `round` of
   * `term` started, as far as this peer can tell: those that followed it a heartbeat interval
   * before this peer took the round's start, or if it did not, before it took up the round it
   * holds (an older one: the round started after that)
   */
  settledAtStart?: (term: number, round: number, leader: string) => readonly string[]
}

/** A standing that counts every signer (a certificate's own structure only): for tests and tools that know no members. */
export const ANYONE: Standing = { isMember: () => true, followersOf: () => [], byWork: false }

/** More than half of `n`. */
export function majority (n: number): number {
  return Math.floor(n / 2) + 1
}

/**
 * Signers needed among `eligible` (an electorate, or a round's checkers). Permissioned: a
 * majority of all members. Open: a majority of `eligible`, and two whenever there are two.
 */
export function quorumOf (policy: QuorumPolicy, eligible: number): number {
  if (policy.allowed !== undefined) return majority(policy.allowed.size)
  return Math.max(majority(eligible), Math.min(2, eligible))
}

/**
 * Signatures a round certificate needs, for a peer that sees `followers` members live following its
 * leader: a quorum of its checkers, and in an open network a majority of those followers (at most
 * MAX_ROUND_CHECKERS of them), so that no leader makes its quorum small by naming few checkers.
 */
export function roundQuorum (policy: QuorumPolicy, checkers: number, followers: number): number {
  if (policy.allowed !== undefined) return quorumOf(policy, checkers)
  return Math.max(quorumOf(policy, checkers), majority(Math.min(MAX_ROUND_CHECKERS, followers)))
}

/**
 * How many of the members this peer sees following a round's leader its quorum counts
 * (roundQuorum): those in the round's pool, and those that already followed the leader when the
 * round started (Standing.settledAtStart). One that began to follow about then or later was not
 * the leader's to draw (a peer that joined during round 1, a member back from a restart): counting
 * it asked a round of two checkers for three signatures. One left out that already followed still
 * counts: no leader makes its quorum small by leaving out of its pool the members that would not
 * sign, or by hiding its round start.
 */
export function quorumFollowers (standing: Standing, round: { leader: string, term: number, round: number, pool: readonly string[] }): number {
  const followers = standing.followersOf(round.leader, round.term)
  if (standing.settledAtStart === undefined) return followers.length
  const counted = new Set([...round.pool, ...standing.settledAtStart(round.term, round.round, round.leader)])
  return followers.filter(p => counted.has(p)).length
}

/** Who checks a round of members `pool` that starts from `prevHash`: in an open network a few drawn by hash (roundCheckers); in a permissioned one all of them. */
export function drawCheckers (policy: QuorumPolicy, pool: readonly string[], prevHash: string): string[] {
  return policy.allowed !== undefined ? [...pool] : roundCheckers(pool, prevHash)
}

/**
 * How many of the leader's followers this peer sees a round's pool may leave out: a quarter (ones
 * that began to follow after the round began, or did not sign lately), once there are more than
 * MAX_ROUND_CHECKERS of them. Below that every one is drawn anyway, and roundQuorum asks a
 * majority of them.
 */
export function poolSlack (followers: number): number {
  return followers > MAX_ROUND_CHECKERS ? Math.ceil(followers / 4) : Infinity
}

const short = (peer: string): string => peer.slice(-6)

/** Distinct signers of `eligible` whose signatures check out; throws on any forged one. */
async function validSigners (votes: Array<{ peer: string, signature: Uint8Array, bytes: Uint8Array }>, eligible: ReadonlySet<string>, policy: QuorumPolicy, what: string): Promise<string[]> {
  const signers: string[] = []
  for (const v of votes) {
    if (!eligible.has(v.peer)) throw new CertificateError('forged', `${what}: ${short(v.peer)} signed but was not eligible`)
    if (!isAllowed(policy, v.peer)) throw new CertificateError('forged', `${what}: ${short(v.peer)} is not an allowed peer`)
    if (!await signedBy(v.peer, v.bytes, v.signature)) throw new CertificateError('forged', `${what}: the signature of ${short(v.peer)} does not check out`)
    signers.push(v.peer)
  }
  return signers
}

/** A solo certificate (one signer) proves something only to its signer. */
function checkSolo (signers: string[], eligible: number, policy: QuorumPolicy, what: string): void {
  if (policy.allowed === undefined && signers.length < 2 && !(signers.length === 1 && signers[0] === policy.self && eligible === 1)) {
    throw new CertificateError('unproven', `${what}: signed by ${signers.length} peer${signers.length === 1 ? '' : 's'} that count here; it takes two to prove anything to another peer`)
  }
}

const termWhat = (cert: TermCert): string => `term ${cert.term} certificate of ${short(cert.leader)}`

/** A term certificate's structure and signatures (what holds whoever checks it): forged, or not. */
export async function verifyTermCert (cert: TermCert, policy: QuorumPolicy): Promise<void> {
  const what = termWhat(cert)
  const electorate = new Set(cert.electorate)
  if (!electorate.has(cert.leader)) throw new CertificateError('forged', `${what}: the leader is not in its electorate`)
  const bytes = voteSigningBytes(cert.term, cert.leader)
  await validSigners(cert.votes.map(v => ({ peer: v.voter, signature: v.signature, bytes })), electorate, policy, what)
}

/**
 * Whether a verified term certificate elects its leader for this peer: the votes of members (of
 * `standing`) among its electorate make a quorum of the electorate's members. Voters this peer
 * does not know as members count for nothing, nor does an electorate padded with them. `ownVote`:
 * this peer voted for the leader in the term (it knows its own vote, which may have come after
 * the quorum and so not be in the certificate).
 */
export function termQuorum (cert: TermCert, policy: QuorumPolicy, standing: Standing, ownVote = false): void {
  const what = termWhat(cert)
  const members = cert.electorate.filter(p => standing.isMember(p))
  const voters = [...new Set([...cert.votes.map(v => v.voter), ...(ownVote ? [policy.self] : [])])].filter(v => standing.isMember(v) && cert.electorate.includes(v))
  const needed = quorumOf(policy, members.length)
  if (voters.length < needed) throw new CertificateError('unproven', `${what}: ${voters.length} votes of members, ${needed} needed`)
  checkSolo(voters, members.length, policy, what)
}

/** Checks a term certificate: its signatures, and a quorum of the members of its electorate. */
export async function checkTermCert (cert: TermCert, policy: QuorumPolicy, standing: Standing = ANYONE): Promise<void> {
  await verifyTermCert(cert, policy)
  termQuorum(cert, policy, standing)
}

/**
 * Whether a checked term certificate still makes its leader one to follow now: in an open network,
 * a majority of the peers this node sees (`view`, itself included) must have voted for it, or say
 * in their heartbeats that they follow it in its term (`followers`: a signed word of each, as good
 * as a vote for this node's own judgement, though it proves nothing to others). Without them, a
 * peer that sees a few more peers than the leader did when it was elected could follow no one,
 * and the others, who follow a live leader, vote for no one. (A permissioned network's quorum is of
 * the allow-list, which does not move.)
 */
export function coversView (cert: TermCert, policy: QuorumPolicy, view: string[], followers: Iterable<string> = []): boolean {
  if (policy.allowed !== undefined) return true
  const endorsers = new Set([...cert.votes.map(v => v.voter), ...followers])
  return view.filter(p => endorsers.has(p)).length >= majority(new Set(view).size)
}

/** Whether `voters` are a quorum now (a candidate counting its votes; `view` as in coversView). */
export function isQuorum (voters: string[], policy: QuorumPolicy, view: string[]): boolean {
  const members = policy.allowed ?? new Set(view)
  const counted = voters.filter(v => members.has(v)).length
  return counted >= quorumOf(policy, members.size)
}

/** A round certificate whose structure and signatures hold (what holds whoever checks it). */
export interface VerifiedRound {
  result: RoundResult
  resultHash: string
  votes: RoundCertVote[]
}

export interface CheckedRound {
  result: RoundResult
  resultHash: string
  /** what the counted signers measured (see roundEvaluation) */
  evaluation: RoundEvaluation
  /** the signers that count for this peer */
  signers: string[]
  /** who could sign: the checkers the round start fixed */
  checkers: string[]
}

/** Whether two lists of distinct peers name the same peers. */
export function sameSet (a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && new Set([...a, ...b]).size === a.length
}

/**
 * A round certificate's structure and signatures, against its (already fetched) term certificate:
 * the leader's signature, a fair draw of its checkers from its pool, and every signer a checker.
 */
export async function verifyRoundCert (cert: RoundCert & { parsed: RoundResult, resultHash: string }, termCert: TermCert, policy: QuorumPolicy): Promise<VerifiedRound> {
  const result = cert.parsed
  const what = `round ${result.round} certificate`
  await verifyTermCert(termCert, policy)
  if (termCert.term !== result.term || termCert.leader !== result.leader) throw new CertificateError('forged', `${what}: its term certificate is of term ${termCert.term} and ${short(termCert.leader)}, not term ${result.term} and ${short(result.leader)}`)
  if (!await signedBy(result.leader, resultSigningBytes(cert.resultHash), cert.leaderSignature)) throw new CertificateError('forged', `${what}: the leader's signature does not check out`)
  if (!sameSet(drawCheckers(policy, result.pool, result.prevHash), result.checkers)) throw new CertificateError('forged', `${what}: its checkers are not the ones drawn from its pool`)
  await validSigners(cert.votes.map(v => ({ peer: v.peer, signature: v.signature, bytes: roundVoteSigningBytes(cert.resultHash, v.accuracy, v.loss, v.samples) })), new Set(result.checkers), policy, what)
  return { result, resultHash: cert.resultHash, votes: cert.votes }
}

/**
 * Whether a verified round certificate proves its round to this peer: its term certificate elects
 * its leader here (termQuorum), the checkers that signed and are members here make roundQuorum, and
 * in a large network its pool leaves out at most poolSlack of the members this peer sees live. Its
 * evaluation is of the counted signers' votes only.
 */
export function roundQuorumHolds (verified: VerifiedRound, termCert: TermCert, policy: QuorumPolicy, standing: Standing): CheckedRound {
  const { result } = verified
  const what = `round ${result.round} certificate`
  const fixed = standing.fixedCheckers?.(result.term, result.round, result.deadline)
  if (fixed !== undefined && !sameSet(fixed, result.checkers)) throw new CertificateError('forged', `${what}: its checkers are not the ones its leader's signed round start named`)
  termQuorum(termCert, policy, standing)
  const followers = standing.followersOf(result.leader, result.term)
  if (policy.allowed === undefined && standing.byWork) {
    const pool = new Set(result.pool)
    const left = followers.filter(p => !pool.has(p))
    if (left.length > poolSlack(followers.length)) throw new CertificateError('unproven', `${what}: its checkers were drawn from a pool that leaves out ${left.length} of the ${followers.length} members this peer sees following its leader`)
  }
  const votes = verified.votes.filter(v => standing.isMember(v.peer))
  const signers = votes.map(v => v.peer)
  const needed = roundQuorum(policy, result.checkers.length, quorumFollowers(standing, result))
  if (signers.length < needed) throw new CertificateError('unproven', `${what}: ${signers.length} of its ${result.checkers.length} checkers signed and count here, ${needed} needed`)
  checkSolo(signers, result.checkers.length, policy, what)
  return { result, resultHash: verified.resultHash, evaluation: roundEvaluation(votes), signers, checkers: result.checkers }
}

/** Checks a round certificate against its (already fetched) term certificate, for a peer of `standing`. */
export async function checkRoundCert (cert: RoundCert & { parsed: RoundResult, resultHash: string }, termCert: TermCert, policy: QuorumPolicy, standing: Standing = ANYONE): Promise<CheckedRound> {
  return roundQuorumHolds(await verifyRoundCert(cert, termCert, policy), termCert, policy, standing)
}
