// What an elected leader that turns does, for the engine tests and the real-process turncoat
// (test/turncoat.ts): it certifies a round itself, with an all-zero model at "100%", signed by
// itself and by accomplices (keys it holds, made up or of another liar), commits it so that its
// heartbeats show it for the others to catch up with, and announces it.
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { encodeResult, encodeRoundCert, encodeTensors, encodeTermCert, PROTOCOL_VERSION, resultSigningBytes, roundVoteSigningBytes, voteSigningBytes, type Outgoing, type RoundResult } from '@dml/protocol'
import { keySigner, type DmlNode, type Network, type Signer } from '@dml/node'

/** The node's own parts a liar reaches for (private to the engine). */
type Inside = { leadership: { leaderCert: { hash: string, bytes: Uint8Array } | null }, net: Network, signer: Signer, verifier: { startOf: (term: number, round: number) => { deadline: number } | undefined } }

/** A key nobody runs: made up by a liar, which holds it. */
export async function madeUpSigner (): Promise<Signer> {
  const key = await generateKeyPair('Ed25519')
  return keySigner(peerIdFromPrivateKey(key).toString(), key)
}

/**
 * A term of `liar`'s own that nobody follows: `term`, elected by its own vote and its
 * `accomplices'`, the electorate just them. Returns the certificate as forgeRound takes it.
 */
export async function sideTerm (liar: DmlNode, accomplices: Signer[], term: number): Promise<{ hash: string, bytes: Uint8Array, term: number }> {
  const { net, signer } = liar as unknown as Inside
  const voters = [signer, ...accomplices]
  const votes = await Promise.all(voters.map(async v => ({ voter: v.peerId, signature: await v.sign(voteSigningBytes(term, liar.peerId)) })))
  const bytes = encodeTermCert({ kind: 'term-cert', v: PROTOCOL_VERSION, term, leader: liar.peerId, electorate: voters.map(v => v.peerId), votes })
  return { hash: net.blobs.put(bytes, true), bytes, term }
}

/**
 * Certifies round `round` (the next by default) on `liar`'s own word and its `accomplices'`,
 * commits and announces it through `publish`, in the term it leads (or `term`, see sideTerm).
 * Returns the forged model's and certificate's hashes.
 */
export async function forgeRound (liar: DmlNode, accomplices: Signer[], publish: (m: Outgoing) => Promise<void>, round = liar.replica.round + 1, term?: { hash: string, bytes: Uint8Array, term: number }): Promise<{ modelHash: string, certHash: string, round: number }> {
  const { net, signer, verifier } = liar as unknown as Inside
  const own = (liar as unknown as Inside).leadership.leaderCert
  if (own === null && term === undefined) throw new Error('not leading: nothing to forge with')
  const leaderCert = term ?? { ...own!, term: liar.status().term }
  const global = liar.replica.global!
  const task = liar.task
  const zeros = global.weights.map(w => ({ ...w, values: new Float32Array(w.values.length) }))
  const bytes = encodeTensors(zeros)
  const modelHash = net.blobs.put(bytes, true)
  const signers = [signer, ...accomplices]
  const pool = signers.map(s => s.peerId)
  const result: RoundResult = {
    // of the start it made of the round, if it made one: a lie about that start, not another start
    kind: 'round-result', v: PROTOCOL_VERSION, term: leaderCert.term, round, leader: liar.peerId, deadline: verifier.startOf(leaderCert.term, round)?.deadline ?? 0, prevHash: global.hash, modelHash,
    strategy: { ...task.strategy },
    participants: pool, pool, checkers: pool, contributions: [], termCert: leaderCert.hash
  }
  const resultBytes = encodeResult(result)
  const resultHash = net.blobs.put(resultBytes, true)
  const votes = await Promise.all(signers.map(async s => ({ peer: s.peerId, accuracy: 1, loss: 0, samples: 10_000, signature: await s.sign(roundVoteSigningBytes(resultHash, 1, 0, 10_000)) })))
  const certBytes = encodeRoundCert({ kind: 'round-cert', v: PROTOCOL_VERSION, result: resultBytes, leaderSignature: await signer.sign(resultSigningBytes(resultHash)), votes })
  const certHash = net.blobs.put(certBytes, true)
  const metrics = { accuracy: 1, loss: 0, federatedAccuracy: 1, federatedLoss: 0, evaluatedSamples: 10_000, participants: pool, activeNodes: pool.length, gpuNodes: 0, cpuNodes: pool.length, durationMs: 1, trainMs: 1, transferMs: 0, aggregateMs: 0, evalMs: 0, idleMs: 0, finishedAt: Date.now() }
  await liar.replica.commit({ round, hash: modelHash, weights: zeros }, bytes, { certBytes, termCertBytes: leaderCert.bytes }, { round, term: leaderCert.term, modelHash, certHash, metrics }, pool)
  await publish({ type: 'round-done', v: PROTOCOL_VERSION, term: leaderCert.term, round, leader: liar.peerId, modelHash, certHash, metrics, finished: true })
  return { modelHash, certHash, round }
}
