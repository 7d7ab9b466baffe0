// Checking certificates: who counts, how many make a quorum, and whether the signatures hold.
//
// Permissioned network (--allow-peers): members are the allow-listed ids; a quorum is a majority
// of them, whatever is live. Open network: there is no member list, so a term certificate must be
// voted by a majority of the peers this node can see now, and any certificate needs at least two
// distinct signers unless this node is its only signer: one identity can prove nothing to others.
import { resultSigningBytes, roundCheckers, roundEvaluation, roundVoteSigningBytes, voteSigningBytes, type RoundCert, type RoundCertVote, type RoundEvaluation, type RoundResult, type RoundVote, type TermCert } from '@dml/protocol'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'

/**
 * A certificate that does not prove what it claims. `forged`: a signature that does not check out,
 * a signer that may not sign, parts that do not belong together (an offence). `unproven`: genuine,
 * but too few signers to prove anything to this peer (a lone peer's own rounds, say): no offence.
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

export interface QuorumPolicy {
  self: string
  /** permissioned: the allow-listed peer ids; open network: undefined */
  allowed?: ReadonlySet<string>
}

export function isAllowed (policy: QuorumPolicy, peer: string): boolean {
  return policy.allowed === undefined || policy.allowed.has(peer)
}

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

/** Distinct signers of `eligible` whose signatures check out; throws on any forged one. */
async function validSigners (votes: Array<{ peer: string, signature: Uint8Array, bytes: Uint8Array }>, eligible: ReadonlySet<string>, policy: QuorumPolicy, what: string): Promise<string[]> {
  const signers: string[] = []
  for (const v of votes) {
    if (!eligible.has(v.peer)) throw new CertificateError('forged', `${what}: ${v.peer.slice(-6)} signed but was not eligible`)
    if (!isAllowed(policy, v.peer)) throw new CertificateError('forged', `${what}: ${v.peer.slice(-6)} is not an allowed peer`)
    if (!await signedBy(v.peer, v.bytes, v.signature)) throw new CertificateError('forged', `${what}: the signature of ${v.peer.slice(-6)} does not check out`)
    signers.push(v.peer)
  }
  return signers
}

/** A solo certificate (one signer) proves something only to its signer. */
function checkSolo (signers: string[], eligible: number, policy: QuorumPolicy, what: string): void {
  if (policy.allowed === undefined && signers.length < 2 && !(signers.length === 1 && signers[0] === policy.self && eligible === 1)) {
    throw new CertificateError('unproven', `${what}: signed by ${signers.length} peer${signers.length === 1 ? '' : 's'}; it takes two to prove anything to another peer`)
  }
}

/** Checks a term certificate: its signatures, and a quorum of its own electorate. */
export async function checkTermCert (cert: TermCert, policy: QuorumPolicy): Promise<void> {
  const what = `term ${cert.term} certificate of ${cert.leader.slice(-6)}`
  const electorate = new Set(cert.electorate)
  if (!electorate.has(cert.leader)) throw new CertificateError('forged', `${what}: the leader is not in its electorate`)
  const bytes = voteSigningBytes(cert.term, cert.leader)
  const signers = await validSigners(cert.votes.map(v => ({ peer: v.voter, signature: v.signature, bytes })), electorate, policy, what)
  const needed = quorumOf(policy, electorate.size)
  if (signers.length < needed) throw new CertificateError('unproven', `${what}: ${signers.length} votes, ${needed} needed`)
  checkSolo(signers, electorate.size, policy, what)
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

/**
 * Who checks and signs a round of `participants` that starts from `prevHash`: in an open network
 * its checkers (roundCheckers), at most MAX_ROUND_CHECKERS of them; in a permissioned one every
 * participant, since a round there needs a majority of all members.
 */
export function checkersOf (policy: QuorumPolicy, participants: readonly string[], prevHash: string): string[] {
  return policy.allowed !== undefined ? [...participants] : roundCheckers(participants, prevHash)
}

export interface CheckedRound {
  result: RoundResult
  resultHash: string
  /** what the signers measured (see roundEvaluation) */
  evaluation: RoundEvaluation
  signers: string[]
  /** who could sign (checkersOf) */
  checkers: string[]
}

/** Checks a round certificate against its (already fetched) term certificate. */
export async function checkRoundCert (cert: RoundCert & { parsed: RoundResult, resultHash: string }, termCert: TermCert, policy: QuorumPolicy): Promise<CheckedRound> {
  const result = cert.parsed
  const what = `round ${result.round} certificate`
  await checkTermCert(termCert, policy)
  if (termCert.term !== result.term || termCert.leader !== result.leader) throw new CertificateError('forged', `${what}: its term certificate is of term ${termCert.term} and ${termCert.leader.slice(-6)}, not term ${result.term} and ${result.leader.slice(-6)}`)
  if (!await signedBy(result.leader, resultSigningBytes(cert.resultHash), cert.leaderSignature)) throw new CertificateError('forged', `${what}: the leader's signature does not check out`)
  const eligible = checkersOf(policy, result.participants, result.prevHash)
  const checkers = new Set(eligible)
  const signers = await validSigners(cert.votes.map(v => ({ peer: v.peer, signature: v.signature, bytes: roundVoteSigningBytes(cert.resultHash, v.accuracy, v.loss, v.samples) })), checkers, policy, what)
  const needed = quorumOf(policy, checkers.size)
  if (signers.length < needed) throw new CertificateError('unproven', `${what}: ${signers.length} of its ${checkers.size} checkers signed, ${needed} needed`)
  checkSolo(signers, checkers.size, policy, what)
  return { result, resultHash: cert.resultHash, evaluation: roundEvaluation(cert.votes), signers, checkers: eligible }
}
