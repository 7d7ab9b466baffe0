// Proofs: certificates fetched by hash and checked, once. Results (failures too) are kept by hash
// for a while, so a peer that names the same certificate again costs nothing, and one that names
// a bad one cannot make us fetch it over and over.
import { decodeRoundCert, decodeTermCert, MAX_CERT_BYTES, type TermCert } from '@dml/protocol'
import { checkRoundCert, checkTermCert, type CheckedRound, type QuorumPolicy } from './certificates.ts'
import type { Network } from './network.ts'

export interface ProvenTerm {
  cert: TermCert
  bytes: Uint8Array
}

export interface ProvenRound extends CheckedRound {
  certBytes: Uint8Array
  termCertBytes: Uint8Array
}

const REMEMBERED = 256

export interface ProofsDeps {
  net: Network
  policy: QuorumPolicy
  transferTimeoutMs: number
  /** ends fetches when the peer stops */
  signal: AbortSignal
}

export class Proofs {
  private readonly deps: ProofsDeps
  private readonly terms = new Map<string, Promise<ProvenTerm>>()
  private readonly rounds = new Map<string, Promise<ProvenRound>>()

  constructor (deps: ProofsDeps) { this.deps = deps }

  /** The term certificate `hash`, fetched from `from` and checked. */
  async term (hash: string, from: string[]): Promise<ProvenTerm> {
    return await this.once(this.terms, hash, async () => {
      const bytes = await this.fetch(hash, from)
      const cert = decodeTermCert(bytes)
      await checkTermCert(cert, this.deps.policy)
      return { cert, bytes }
    })
  }

  /** The round certificate `hash` and the term certificate it rests on, fetched from `from` and checked. */
  async round (hash: string, from: string[]): Promise<ProvenRound> {
    return await this.once(this.rounds, hash, async () => {
      const certBytes = await this.fetch(hash, from)
      const cert = decodeRoundCert(certBytes)
      const term = await this.term(cert.parsed.termCert, from)
      return { ...await checkRoundCert(cert, term.cert, this.deps.policy), certBytes, termCertBytes: term.bytes }
    })
  }

  private async fetch (hash: string, from: string[]): Promise<Uint8Array> {
    return await this.deps.net.fetchBlob(hash, from, { signal: this.deps.signal, timeoutMs: this.deps.transferTimeoutMs, maxBytes: MAX_CERT_BYTES })
  }

  private async once<T> (cache: Map<string, Promise<T>>, hash: string, make: () => Promise<T>): Promise<T> {
    let promise = cache.get(hash)
    if (promise === undefined) {
      promise = make()
      cache.set(hash, promise)
      if (cache.size > REMEMBERED) cache.delete(cache.keys().next().value!)
      // a transfer that failed may succeed from another source later: forget it; a bad certificate stays bad
      promise.catch((err: unknown) => { if ((err as Error).name !== 'CertificateError' && (err as Error).name !== 'MessageError') cache.delete(hash) })
    }
    return await promise
  }
}
