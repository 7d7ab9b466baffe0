// Property-based fuzzing of everything a peer or a file can hand us: at least 10,000 random and
// mutated inputs for every decoder and validator. Each input is either accepted or rejected with
// the decoder's own error class and a reason; nothing else is thrown, nothing rejects unhandled.
import { expect } from 'chai'
import fc from 'fast-check'
import { encode } from 'cborg'
import type { Stream } from '@libp2p/interface'
import {
  contentHash, decodeMessage, decodeResult, decodeRoundCert, decodeTensors, decodeTermCert, encodeMessage, encodeResult, encodeRoundCert,
  encodeTensors, encodeTermCert, PROTOCOL_VERSION, resultSigningBytes, roundVoteSigningBytes, validateMessage, voteSigningBytes, type RoundResult
} from '@dml/protocol'
import { BlobStore, checkRoundCert, checkTermCert, encodeCheckpointFile, parseCheckpoint, requestBlob, serveBlob } from '@dml/node'
import { NODE_OPTIONS, parseConfigText } from '@dml/node/cli'
import { SAMPLES } from '../../protocol/test/samples.ts'
import { identities, TASK } from './support/cluster.ts'

const RUNS = 10_000

/** `base` with one random change: a flipped byte, a cut, bytes put in or spliced over. */
function mutated (base: Uint8Array): fc.Arbitrary<Uint8Array> {
  const at = fc.nat({ max: Math.max(0, base.length - 1) })
  return fc.oneof(
    fc.tuple(at, fc.integer({ min: 1, max: 255 })).map(([i, x]) => { const b = base.slice(); b[i] ^= x; return b }),
    at.map(n => base.slice(0, n)),
    fc.tuple(at, fc.uint8Array({ minLength: 1, maxLength: 16 })).map(([i, bytes]) => Uint8Array.from([...base.slice(0, i), ...bytes, ...base.slice(i)])),
    fc.tuple(at, at, fc.uint8Array({ maxLength: 32 })).map(([i, j, bytes]) => Uint8Array.from([...base.slice(0, Math.min(i, j)), ...bytes, ...base.slice(Math.max(i, j))]))
  )
}

/** Random bytes, random CBOR, and mutations of the valid examples. */
function inputs (valid: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.uint8Array({ maxLength: 512 }),
    fc.jsonValue().map(v => encode(v)),
    ...valid.map(mutated)
  )
}

/** Runs `decode` on each input: it returns, or throws one of `allowed` with a message. */
function rejectsCleanly (name: string, allowed: string[], arbitrary: fc.Arbitrary<Uint8Array>, decode: (bytes: Uint8Array) => unknown): void {
  it(`${name}: ${RUNS} random and mutated inputs, each accepted or rejected with a reason`, () => {
    fc.assert(fc.property(arbitrary, (bytes) => {
      try {
        decode(bytes)
      } catch (err) {
        expect(allowed, String((err as Error)?.stack)).to.include((err as Error).name)
        expect((err as Error).message).to.be.a('string').and.not.equal('')
      }
    }), { numRuns: RUNS })
  })
}

describe('fuzzing every decoder and validator', function () {
  this.timeout(120_000)
  const unhandled: unknown[] = []
  const onUnhandled = (err: unknown): void => { unhandled.push(err) }
  before(() => { process.on('unhandledRejection', onUnhandled) })
  after(() => {
    process.off('unhandledRejection', onUnhandled)
    expect(unhandled, 'unhandled rejections').to.deep.equal([])
  })

  rejectsCleanly('control messages', ['MessageError'], inputs(SAMPLES.map(m => encodeMessage(m))), decodeMessage)

  it(`control message validation: ${RUNS} arbitrary values, each a valid message or a MessageError`, () => {
    const shaped = fc.record({
      type: fc.constantFrom(...new Set(SAMPLES.map(m => m.type))),
      v: fc.oneof(fc.constant(PROTOCOL_VERSION), fc.anything()),
      term: fc.oneof(fc.nat(), fc.double(), fc.string(), fc.constant(Number.MAX_SAFE_INTEGER + 2)),
      seq: fc.oneof(fc.nat(), fc.double(), fc.constant(-1), fc.constant(Number.MAX_SAFE_INTEGER + 2)),
      peer: fc.string(),
      round: fc.anything(),
      signature: fc.oneof(fc.uint8Array(), fc.anything())
    }, { requiredKeys: [] })
    fc.assert(fc.property(fc.oneof(fc.anything(), shaped), (value) => {
      try {
        const m = validateMessage(value)
        expect(decodeMessage(encodeMessage(m))).to.deep.equal(m) // what passes is well-formed all through
      } catch (err) {
        expect((err as Error).name).to.equal('MessageError')
      }
    }), { numRuns: RUNS })
  })

  rejectsCleanly('tensor blobs', ['CodecError'], inputs([encodeTensors([{ name: 'w0', shape: [2, 3], values: Float32Array.from([1, 2, 3, 4, 5, 6]) }, { name: 'w1', shape: [3], values: new Float32Array(3) }])]), decodeTensors)

  describe('certificates', () => {
    let termBytes: Uint8Array
    let roundBytes: Uint8Array
    let resultBytes: Uint8Array
    const policy = { self: 'nobody' }
    before(async () => {
      const ids = await identities(3)
      const votes = await Promise.all(ids.map(async v => ({ voter: v.id, signature: await v.signer.sign(voteSigningBytes(4, ids[0].id)) })))
      termBytes = encodeTermCert({ kind: 'term-cert', v: PROTOCOL_VERSION, term: 4, leader: ids[0].id, electorate: ids.map(i => i.id), votes })
      const result: RoundResult = {
        kind: 'round-result', v: PROTOCOL_VERSION, term: 4, round: 2, leader: ids[0].id, deadline: 1_700_000_000_000, prevHash: 'a'.repeat(64), modelHash: 'c'.repeat(64),
        strategy: { aggregation: 'fedavg', trim: 0.2, byzantine: 1, clip: 1, normBound: 5, serverOptimizer: 'none', serverLr: 1 }, participants: ids.map(i => i.id), pool: ids.map(i => i.id), checkers: ids.map(i => i.id),
        contributions: ids.map(i => ({ peer: i.id, hash: 'd'.repeat(64), numSamples: 10 })), termCert: contentHash(termBytes)
      }
      resultBytes = encodeResult(result)
      const resultHash = contentHash(resultBytes)
      const roundVotes = await Promise.all(ids.map(async s => ({ peer: s.id, accuracy: 0.9, loss: 0.3, samples: 50, signature: await s.signer.sign(roundVoteSigningBytes(resultHash, 0.9, 0.3, 50)) })))
      roundBytes = encodeRoundCert({ kind: 'round-cert', v: PROTOCOL_VERSION, result: resultBytes, leaderSignature: await ids[0].signer.sign(resultSigningBytes(resultHash)), votes: roundVotes })
    })

    it(`term, round and result blobs: ${RUNS} inputs each, each accepted or rejected with a reason`, () => {
      for (const [base, decode] of [[termBytes, decodeTermCert], [roundBytes, decodeRoundCert], [resultBytes, decodeResult]] as const) {
        fc.assert(fc.property(inputs([base]), (bytes) => {
          try {
            decode(bytes)
          } catch (err) {
            expect((err as Error).name).to.equal('MessageError')
          }
        }), { numRuns: RUNS })
      }
    })

    it(`checking mutated certificates: ${RUNS} each, never accepted unless untouched`, async () => {
      await fc.assert(fc.asyncProperty(mutated(termBytes), mutated(roundBytes), async (term, round) => {
        for (const check of [async () => { await checkTermCert(decodeTermCert(term), policy) }, async () => { await checkRoundCert(decodeRoundCert(round), decodeTermCert(termBytes), policy) }]) {
          try {
            await check()
          } catch (err) {
            expect(['MessageError', 'CertificateError']).to.include((err as Error).name)
          }
        }
      }), { numRuns: RUNS })
    })
  })

  describe('the blob protocol', () => {
    /** A stream whose remote sends `incoming`; what we send is dropped. */
    const stream = (incoming: Uint8Array[]): Stream => ({
      async * [Symbol.asyncIterator] () { for (const chunk of incoming) yield chunk },
      send: () => true,
      onDrain: async () => {},
      close: async () => {},
      abort: () => {}
    }) as unknown as Stream
    const frames = fc.array(fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.jsonValue().map(v => { const b = encode(v); const f = new Uint8Array(4 + b.length); new DataView(f.buffer).setUint32(0, b.length); f.set(b, 4); return f })), { maxLength: 4 })

    it(`a server fed ${RUNS} random requests answers or closes, and never throws`, async () => {
      const store = new BlobStore()
      store.put(new Uint8Array([1, 2, 3]))
      await fc.assert(fc.asyncProperty(frames, async (incoming) => { await serveBlob(stream(incoming), store) }), { numRuns: RUNS })
    })

    it(`a requester fed ${RUNS} random responses gets the blob or a reason`, async () => {
      await fc.assert(fc.asyncProperty(frames, async (incoming) => {
        try {
          await requestBlob(stream(incoming), 'e'.repeat(64))
          expect.fail('random bytes never hash to the blob asked for')
        } catch (err) {
          expect(['BlobError', 'CodecError']).to.include((err as Error).name)
        }
      }), { numRuns: RUNS })
    })
  })

  rejectsCleanly('checkpoint files', ['CheckpointError'], inputs([encodeCheckpointFile({
    round: 3, term: 2, modelHash: contentHash(encodeTensors([{ name: 'w0', shape: [1], values: Float32Array.from([1]) }])),
    model: encodeTensors([{ name: 'w0', shape: [1], values: Float32Array.from([1]) }]), task: TASK, history: [], roundCert: new Uint8Array([1]), termCert: null
  })]), bytes => parseCheckpoint(bytes, 'fuzz.cbor'))

  it(`the config file: ${RUNS} random texts and objects, each read or refused with a ConfigError`, () => {
    const keys = Object.keys(NODE_OPTIONS)
    const objects = fc.dictionary(fc.oneof(fc.constantFrom(...keys, '__proto__', 'constructor', 'toString'), fc.string()), fc.jsonValue(), { maxKeys: 6 }).map(o => JSON.stringify(o))
    fc.assert(fc.property(fc.oneof(fc.string(), fc.json(), objects), (text) => {
      try {
        parseConfigText(text, 'fuzz.json', NODE_OPTIONS)
      } catch (err) {
        expect((err as Error).name, String((err as Error).stack)).to.equal('ConfigError')
      }
    }), { numRuns: RUNS })
  })
})
