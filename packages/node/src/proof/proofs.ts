// Proofs: certificates fetched by hash and checked. What holds whoever checks it (the structure and
// every signature) is checked once and kept by hash for a while, failures too, so a peer that names
// the same certificate again costs nothing, and one that names a bad one cannot make us fetch it
// over and over. Whether its signers count is this peer's judgement now (its Standing), made at
// every use: a certificate that proves nothing today may tomorrow, once this peer knows its signers.
import { decodeRoundCert, decodeTermCert, MAX_CERT_BYTES, type TermCert } from '@dml/protocol'
import { roundQuorumHolds, termQuorum, verifyRoundCert, verifyTermCert, type CheckedRound, type QuorumPolicy, type Standing, type VerifiedRound } from './certificates.ts'
import type { Network } from '../net/network.ts'

export interface ProvenTerm {
  cert: TermCert
  bytes: Uint8Array
}

export interface ProvenRound extends CheckedRound {
  certBytes: Uint8Array
  termCertBytes: Uint8Array
}

interface VerifiedCert {
  verified: VerifiedRound
  certBytes: Uint8Array
  term: ProvenTerm
}

const REMEMBERED = 256

export interface ProofsDeps {
  net: Network
  policy: QuorumPolicy
  transferTimeoutMs: number
  /** ends fetches when the peer stops */
  signal: AbortSignal
  /** who counts for this peer now */
  standing: () => Standing
}

export class Proofs {
  private readonly deps: ProofsDeps
  private readonly terms = new Map<string, Promise<ProvenTerm>>()
  private readonly rounds = new Map<string, Promise<VerifiedCert>>()

  constructor (deps: ProofsDeps) { this.deps = deps }

  /**
   * The term certificate `hash`, fetched from `from`, its structure and signatures verified: its
   * votes are genuine (a voter's double vote is proven by them), whether or not they elect its
   * leader for this peer (elects).
   */
  async term (hash: string, from: string[]): Promise<ProvenTerm> {
    return await this.verifiedTerm(hash, from)
  }

  /** Throws unless verified term certificate `cert` elects its leader for this peer now: a quorum of members of its electorate voted for it (`ownVote`: this peer among them). */
  elects (cert: TermCert, ownVote = false): void {
    termQuorum(cert, this.deps.policy, this.deps.standing(), ownVote)
  }

  /** The round certificate `hash` and the term certificate it rests on, fetched from `from`, verified, and proving the round to this peer now. */
  async round (hash: string, from: string[]): Promise<ProvenRound> {
    const { verified, certBytes, term } = await once(this.rounds, hash, async () => {
      const certBytes = await this.fetch(hash, from)
      const cert = decodeRoundCert(certBytes)
      const term = await this.verifiedTerm(cert.parsed.termCert, from)
      return { verified: await verifyRoundCert(cert, term.cert, this.deps.policy), certBytes, term }
    })
    return { ...roundQuorumHolds(verified, term.cert, this.deps.policy, this.deps.standing()), certBytes, termCertBytes: term.bytes }
  }

  private async verifiedTerm (hash: string, from: string[]): Promise<ProvenTerm> {
    return await once(this.terms, hash, async () => {
      const bytes = await this.fetch(hash, from)
      const cert = decodeTermCert(bytes)
      await verifyTermCert(cert, this.deps.policy)
      return { cert, bytes }
    })
  }

  private async fetch (hash: string, from: string[]): Promise<Uint8Array> {
    return await this.deps.net.fetchBlob(hash, from, { signal: this.deps.signal, timeoutMs: this.deps.transferTimeoutMs, maxBytes: MAX_CERT_BYTES })
  }
}

async function once<T> (cache: Map<string, Promise<T>>, hash: string, make: () => Promise<T>): Promise<T> {
  let promise = cache.get(hash)
  if (promise === undefined) {
    promise = make()
    cache.set(hash, promise)
    if (cache.size > REMEMBERED) cache.delete(cache.keys().next().value!)
    // a transfer that failed may succeed from another source later: forget it; a forged certificate stays forged
    promise.catch((err: unknown) => { if ((err as Error).name !== 'CertificateError' && (err as Error).name !== 'MessageError') cache.delete(hash) })
  }
  return await promise
}
