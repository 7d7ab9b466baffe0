// Certificates: what makes a leader and a finished round provable to anyone. They are CBOR blobs,
// addressed by their hash like models, fetched over the blob protocol and checked field by field
// here. Checking the signatures needs the peers' public keys, which the node package has; this
// module fixes what is signed (domain-separated CBOR) and the shape of each certificate.
import { CodecError, decodeCbor, describe, encodeCbor } from './codec.ts'
import { MAX_MEMBERS, MAX_ROUND_CHECKERS, MAX_ROUND_PEERS, PROTOCOL_VERSION } from './constants.ts'
import { contentHash } from './hash.ts'
import { hash, int, list, MessageError, num, obj, peerId, peerList, signature, strategySpec, type Obj, type StrategySpec } from './messages.ts'

/** Largest certificate blob accepted: a round of MAX_ROUND_PEERS, with room to spare. */
export const MAX_CERT_BYTES = 256 * 1024

/** The votes that elected `leader` for `term`, among `electorate` (the members it counted). */
export interface TermCert {
  kind: 'term-cert'
  v: number
  term: number
  leader: string
  electorate: string[]
  votes: Array<{ voter: string, signature: Uint8Array }>
}

/** What went into a round's new model: the leader signs it, the participants check and sign it. */
export interface RoundResult {
  kind: 'round-result'
  v: number
  term: number
  round: number
  leader: string
  /**
   * the deadline of the round start it closes: which start of the round, when its leader started
   * it again (a retry, with other participants and checkers)
   */
  deadline: number
  /** the model the round started from */
  prevHash: string
  modelHash: string
  /** the strategy and its parameters, as the task names them */
  strategy: StrategySpec
  /** the peers assigned work (the round's participants) */
  participants: string[]
  /**
   * the round's members as its leader counted them when it started the round (its live followers
   * that are members): the pool its checkers were drawn from (roundCheckers), so anyone can see
   * that the draw was fair and that the pool left out few of the members it sees itself
   */
  pool: string[]
  /** who checks and signs the result, as the round start fixed them: only their signatures count */
  checkers: string[]
  /** the updates that count, sorted by peer */
  contributions: Array<{ peer: string, hash: string, numSamples: number }>
  /** hash of the leader's term certificate */
  termCert: string
}

export interface RoundCertVote {
  peer: string
  accuracy: number
  loss: number
  samples: number
  signature: Uint8Array
}

/** A round result, the leader's signature of it, and a quorum of its participants' signatures. */
export interface RoundCert {
  kind: 'round-cert'
  v: number
  /** the CBOR bytes of the RoundResult, as signed */
  result: Uint8Array
  leaderSignature: Uint8Array
  votes: RoundCertVote[]
}

/** What a voter signs: (term, candidate). */
export function voteSigningBytes (term: number, candidate: string): Uint8Array {
  return encodeCbor(['dml/vote', PROTOCOL_VERSION, term, candidate])
}

/** What a leader signs of its round result. */
export function resultSigningBytes (resultHash: string): Uint8Array {
  return encodeCbor(['dml/round-result', PROTOCOL_VERSION, resultHash])
}

/** What a participant signs: the result, and what it measured of the new model. */
export function roundVoteSigningBytes (resultHash: string, accuracy: number, loss: number, samples: number): Uint8Array {
  return encodeCbor(['dml/round-vote', PROTOCOL_VERSION, resultHash, accuracy, loss, samples])
}

/**
 * Which of a round's members (`pool`) check its result and sign it: all of them up to `limit`,
 * else the `limit` whose hash with the round's starting model is lowest, in the pool's order.
 * Anyone holding the result can work it out; nobody picks: the starting model is certified
 * before the round begins.
 */
export function roundCheckers (pool: readonly string[], prevHash: string, limit = MAX_ROUND_CHECKERS): string[] {
  if (pool.length <= limit) return [...pool]
  const draw = (peer: string): string => contentHash(new TextEncoder().encode(`${prevHash}:${peer}`))
  const drawn = new Set(pool.map(peer => ({ peer, key: draw(peer) })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).slice(0, limit).map(p => p.peer))
  return pool.filter(p => drawn.has(p))
}

function fail (why: string): never { throw new MessageError(`bad certificate: ${why}`) }

function decodeObj (bytes: Uint8Array, kind: string): Obj {
  let value: unknown
  try {
    value = decodeCbor(bytes, MAX_CERT_BYTES)
  } catch (err) {
    if (err instanceof CodecError) fail(err.message)
    throw err
  }
  const o = obj(value, kind)
  if (o.kind !== kind) fail(`expected a ${kind}, got ${describe(o.kind)}`)
  if (o.v !== PROTOCOL_VERSION) fail(`version ${describe(o.v)} is not ${PROTOCOL_VERSION}`)
  return o
}

function distinct (ids: string[], what: string): void {
  if (new Set(ids).size !== ids.length) fail(`${what} names a peer twice`)
}

export function encodeTermCert (cert: TermCert): Uint8Array {
  return encodeCbor(cert)
}

export function decodeTermCert (bytes: Uint8Array): TermCert {
  const o = decodeObj(bytes, 'term-cert')
  const cert: TermCert = {
    kind: 'term-cert',
    v: PROTOCOL_VERSION,
    term: int(o, 'term', 1),
    leader: peerId(o.leader, 'leader'),
    electorate: list(o, 'electorate', MAX_MEMBERS, (p) => peerId(p, 'electorate')),
    votes: list(o, 'votes', MAX_MEMBERS, (v) => {
      const e = obj(v, 'vote')
      return { voter: peerId(e.voter, 'voter'), signature: signature(e, 'signature') }
    })
  }
  distinct(cert.electorate, 'the electorate')
  distinct(cert.votes.map(v => v.voter), 'the votes')
  return cert
}

export function encodeResult (result: RoundResult): Uint8Array {
  return encodeCbor(result)
}

export function decodeResult (bytes: Uint8Array): RoundResult {
  const o = decodeObj(bytes, 'round-result')
  const result: RoundResult = {
    kind: 'round-result',
    v: PROTOCOL_VERSION,
    term: int(o, 'term', 1),
    round: int(o, 'round', 1),
    leader: peerId(o.leader, 'leader'),
    deadline: num(o, 'deadline', 0),
    prevHash: hash(o, 'prevHash'),
    modelHash: hash(o, 'modelHash'),
    strategy: strategySpec(o.strategy),
    participants: list(o, 'participants', MAX_ROUND_PEERS, (p) => peerId(p, 'participant')),
    pool: peerList(o, 'pool', MAX_MEMBERS),
    checkers: peerList(o, 'checkers', MAX_ROUND_PEERS),
    contributions: list(o, 'contributions', MAX_ROUND_PEERS, (c) => {
      const e = obj(c, 'contribution')
      return { peer: peerId(e.peer, 'contribution.peer'), hash: hash(e, 'hash'), numSamples: int(e, 'numSamples', 1) }
    }),
    termCert: hash(o, 'termCert')
  }
  distinct(result.participants, 'participants')
  distinct(result.contributions.map(c => c.peer), 'contributions')
  const participants = new Set(result.participants)
  if (!result.contributions.every(c => participants.has(c.peer))) fail('a contribution comes from a peer that did not take part')
  const pool = new Set(result.pool)
  if (!result.checkers.every(c => pool.has(c))) fail('a checker is not of the pool it was drawn from')
  return result
}

export function encodeRoundCert (cert: RoundCert): Uint8Array {
  return encodeCbor(cert)
}

export function decodeRoundCert (bytes: Uint8Array): RoundCert & { parsed: RoundResult, resultHash: string } {
  const o = decodeObj(bytes, 'round-cert')
  if (!(o.result instanceof Uint8Array)) fail('result must be bytes')
  const result = Uint8Array.from(o.result)
  const cert = {
    kind: 'round-cert' as const,
    v: PROTOCOL_VERSION,
    result,
    leaderSignature: signature(o, 'leaderSignature'),
    votes: list(o, 'votes', MAX_ROUND_PEERS, (v) => {
      const e = obj(v, 'vote')
      return { peer: peerId(e.peer, 'vote.peer'), accuracy: num(e, 'accuracy', 0, 1), loss: num(e, 'loss', 0), samples: int(e, 'samples', 1), signature: signature(e, 'signature') }
    }),
    parsed: decodeResult(result),
    resultHash: contentHash(result)
  }
  distinct(cert.votes.map(v => v.peer), 'the votes')
  return cert
}

/** The median of `values` (the mean of the middle two for an even count); robust to a minority of liars. */
export function median (values: number[]): number {
  if (values.length === 0) fail('no values')
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** What a round's signers measured, as round metrics carry it: the medians and the federated evaluation. */
export interface RoundEvaluation {
  /** the median of the signers' evaluations: robust to a minority of liars */
  accuracy: number
  loss: number
  federatedAccuracy: number
  federatedLoss: number
  evaluatedSamples: number
}

export function roundEvaluation (votes: Array<{ accuracy: number, loss: number, samples: number }>): RoundEvaluation {
  const federated = federatedEvaluation(votes)
  return {
    accuracy: median(votes.map(v => v.accuracy)),
    loss: median(votes.map(v => v.loss)),
    federatedAccuracy: federated.accuracy,
    federatedLoss: federated.loss,
    evaluatedSamples: federated.samples
  }
}

/** No signer's evaluation counts for more than this many times the median signer's examples. */
export const MAX_EVAL_WEIGHT_OVER_MEDIAN = 4

/**
 * Federated evaluation: the mean of what the signers measured on their own examples, weighted by
 * how many each used, each weight bounded by MAX_EVAL_WEIGHT_OVER_MEDIAN times the median, so a
 * signer claiming a huge test set cannot stand for everyone.
 */
export function federatedEvaluation (votes: Array<{ accuracy: number, loss: number, samples: number }>): { accuracy: number, loss: number, samples: number } {
  if (votes.length === 0) fail('no evaluations')
  const bound = MAX_EVAL_WEIGHT_OVER_MEDIAN * median(votes.map(v => v.samples))
  let weight = 0
  let accuracy = 0
  let loss = 0
  for (const v of votes) {
    const w = Math.min(v.samples, bound)
    weight += w
    accuracy += w * v.accuracy
    loss += w * v.loss
  }
  return { accuracy: accuracy / weight, loss: loss / weight, samples: weight }
}
