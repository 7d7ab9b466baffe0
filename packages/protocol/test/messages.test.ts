import { expect } from 'chai'
import { encode } from 'cborg'
import { decodeMessage, encodeMessage, federatedEvaluation, MessageError, messageSender, MAX_CONTROL_BYTES, MAX_ROUND_PEERS, type ControlMessage } from '@dml/protocol'
import { metrics, OTHER, PEER, SAMPLES, task } from './samples.ts'

describe('control messages', () => {
  it('round-trip every message type through CBOR unchanged', () => {
    for (const message of SAMPLES) {
      expect(decodeMessage(encodeMessage(message))).to.deep.equal(message)
    }
  })

  it('name the peer each message speaks for', () => {
    expect(SAMPLES.map(messageSender)).to.deep.equal([PEER, PEER, PEER, OTHER, PEER, OTHER, PEER, OTHER, PEER, OTHER])
  })

  const bad: Array<[string, unknown]> = [
    ['an unknown type', { ...SAMPLES[0], type: 'exec' }],
    ['a wrong protocol version', { ...SAMPLES[0], v: 1 }],
    ['a negative term', { ...SAMPLES[0], term: -1 }],
    ['a fractional round', { ...SAMPLES[0], round: 1.5 }],
    ['a malformed peer id', { ...SAMPLES[0], peer: 'not a peer id' }],
    ['a bad hash', { ...SAMPLES[3], hash: 'zz' }],
    ['a bad device', { ...SAMPLES[0], device: 'tpu' }],
    ['a heartbeat that names no interval', { ...SAMPLES[0], everyMs: undefined }],
    ['a heartbeat whose next is due at once', { ...SAMPLES[0], everyMs: 0 }],
    ['a heartbeat that would be counted for a day after its last', { ...SAMPLES[0], everyMs: 86_400_000 }],
    ['a heartbeat with a NaN interval', { ...SAMPLES[0], everyMs: NaN }],
    ['a shard index out of range', { ...SAMPLES[2], assignments: [{ peer: PEER, samples: 1, shard: [2, 2] }] }],
    ['zero samples', { ...SAMPLES[3], numSamples: 0 }],
    ['an accuracy over 1', { ...SAMPLES[6], metrics: { ...metrics, accuracy: 1.5 } }],
    ['a failure without a reason', { ...SAMPLES[5], reason: '' }],
    ['a failure with an endless reason', { ...SAMPLES[5], reason: 'x'.repeat(10_000) }],
    ['more assignments than a round may have', { ...SAMPLES[2], assignments: Array.from({ length: MAX_ROUND_PEERS + 1 }, () => ({ peer: PEER, samples: 1, shard: [0, 1] })) }],
    ['a proposal without a model hash', { ...SAMPLES[4], modelHash: null }],
    ['a vote without a signature', { ...SAMPLES[8], signature: new Uint8Array(0) }],
    ['a vote whose signature is a string', { ...SAMPLES[8], signature: 'x'.repeat(64) }],
    ['a vote request for term 0', { ...SAMPLES[7], term: 0 }],
    ['a round vote with an accuracy over 1', { ...SAMPLES[9], accuracy: 2 }],
    ['a round done without a certificate', { ...SAMPLES[6], certHash: null }],
    ['a task with a trim of one half', { ...SAMPLES[2], task: { ...task, strategy: { ...task.strategy, trim: 0.5 } } }],
    ['a task whose input is not a shape', { ...SAMPLES[2], task: { ...task, input: '28x28x1; rm -rf /' } }],
    ['a task whose input is huge', { ...SAMPLES[2], task: { ...task, input: '99999x99999' } }],
    ['a task with one class', { ...SAMPLES[2], task: { ...task, classes: 1 } }],
    ['a task with more classes than a label byte holds', { ...SAMPLES[2], task: { ...task, classes: 257 } }],
    ['a task with an input scale of 0', { ...SAMPLES[2], task: { ...task, inputScale: 0 } }],
    ['a task with an unknown optimizer', { ...SAMPLES[2], task: { ...task, optimizer: 'eval' } }],
    ['a task with an unknown server optimizer', { ...SAMPLES[2], task: { ...task, strategy: { ...task.strategy, serverOptimizer: 'yogi' } } }],
    ['a task whose strategy is missing', { ...SAMPLES[2], task: { ...task, strategy: undefined } }],
    ['a task whose strategy is not a record', { ...SAMPLES[2], task: { ...task, strategy: 'fedavg' } }],
    ['a task whose norm bound is NaN', { ...SAMPLES[2], task: { ...task, strategy: { ...task.strategy, normBound: NaN } } }],
    ['a task with a negative FedProx mu', { ...SAMPLES[2], task: { ...task, proxMu: -1 } }],
    ['a task with a schedule that is not one', { ...SAMPLES[2], task: { ...task, lrSchedule: 'exp:(' } }],
    ['a heartbeat with a negative number of examples', { ...SAMPLES[0], examples: -5 }],
    ['a heartbeat with fractional examples', { ...SAMPLES[0], examples: 1.5 }],
    ['a heartbeat claiming more work done than assigned', { ...SAMPLES[0], work: { round: 3, done: 2000, total: 1000 } }],
    ['a heartbeat with negative work done', { ...SAMPLES[0], work: { round: 3, done: -1, total: 1000 } }],
    ['a heartbeat with a huge work total', { ...SAMPLES[0], work: { round: 3, done: 0, total: 2 ** 60 } }],
    ['a heartbeat with work of round 0', { ...SAMPLES[0], work: { round: 0, done: 0, total: 10 } }],
    ['a heartbeat whose work is not a map', { ...SAMPLES[0], work: [3, 0, 10] }],
    ['a heartbeat without its work field', (({ work: _w, ...rest }) => rest)(SAMPLES[0] as any)],
    ['a proposal without the leader\'s signature', (({ signature: _s, ...rest }) => rest)(SAMPLES[4] as any)],
    ['a version that is a map with a toString key (found by the fuzzer)', { ...SAMPLES[0], v: { toString: 1 } }],
    ['a type that is a map with a toString key', { ...SAMPLES[0], type: { toString: {} } }],
    ['a missing field', (({ term: _t, ...rest }) => rest)(SAMPLES[0] as any)],
    ['a list instead of a map', [1, 2, 3]],
    ['a string', 'hello']
  ]
  for (const [what, value] of bad) {
    it(`reject ${what}`, () => {
      expect(() => decodeMessage(encode(value as any))).to.throw(MessageError)
    })
  }

  it('reject bytes that are not CBOR, trailing garbage and oversized messages', () => {
    expect(() => decodeMessage(new Uint8Array([0xff, 0x00, 0x13]))).to.throw(MessageError)
    const valid = encodeMessage(SAMPLES[0])
    expect(() => decodeMessage(new Uint8Array([...valid, 0x00]))).to.throw(MessageError)
    expect(() => decodeMessage(new Uint8Array(MAX_CONTROL_BYTES + 1))).to.throw(MessageError, /exceeds/)
  })

  it('reject non-finite numbers and CBOR undefined', () => {
    expect(() => decodeMessage(encode({ ...SAMPLES[0], speed: Infinity }))).to.throw(MessageError)
    expect(() => decodeMessage(encode({ ...SAMPLES[0], leader: undefined }))).to.throw(MessageError)
  })

  it('drop unknown fields rather than pass them on', () => {
    const decoded = decodeMessage(encode({ ...SAMPLES[0], extra: 'x', __proto__: { polluted: true } } as any)) as any
    expect(decoded.extra).to.equal(undefined)
    expect(({} as any).polluted).to.equal(undefined)
  })

  it('fit a round of the most peers a round may have in one control message', () => {
    const peers = Array.from({ length: MAX_ROUND_PEERS }, () => PEER)
    const start = { ...SAMPLES[2], assignments: peers.map((peer, i) => ({ peer, samples: 1_000_000, shard: [i, MAX_ROUND_PEERS] })) } as ControlMessage
    const done = { ...SAMPLES[6], metrics: { ...metrics, participants: peers } } as ControlMessage
    for (const message of [start, done]) expect(encodeMessage(message).byteLength).to.be.below(MAX_CONTROL_BYTES)
  })

  it('refuse to encode an invalid message', () => {
    expect(() => encodeMessage({ ...SAMPLES[0], term: -5 } as ControlMessage)).to.throw(MessageError)
  })
})

describe('federated evaluation', () => {
  it('weighs each signer\'s evaluation by its examples', () => {
    const f = federatedEvaluation([{ accuracy: 0.9, loss: 0.3, samples: 1000 }, { accuracy: 0.6, loss: 0.9, samples: 500 }, { accuracy: 0.8, loss: 0.5, samples: 500 }])
    expect(f.accuracy).to.be.closeTo((900 + 300 + 400) / 2000, 1e-12)
    expect(f.loss).to.be.closeTo((300 + 450 + 250) / 2000, 1e-12)
    expect(f.samples).to.equal(2000)
  })

  it('gives a signer claiming a huge test set at most 4 times the median weight', () => {
    const honest = [1, 2, 3].map(() => ({ accuracy: 0.9, loss: 0.3, samples: 1000 }))
    const f = federatedEvaluation([...honest, { accuracy: 0, loss: 10, samples: 1e12 }])
    expect(f.samples).to.equal(7000)
    expect(f.accuracy).to.be.closeTo(2700 / 7000, 1e-12)
  })
})
