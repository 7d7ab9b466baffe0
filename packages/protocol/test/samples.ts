// One valid example of every control message, for the codec tests and the fuzzer.
import { PROTOCOL_VERSION, type ControlMessage } from '@dml/protocol'

export const PEER = '12D3KooWN5i3tb5gETU8rZRMgMyvn34rGfgjzCgRSXzt89tLbNKM'
export const OTHER = '12D3KooWDWG31EDrNyzFQKcBHtq2P5n2x9Vz6Y8JpRPQVhGmdHcK'
export const HASH = 'a'.repeat(64)
export const task = { model: 'mlp', dataset: 'mnist', input: '28x28x1', classes: 10, inputScale: 255, lr: 0.1, lrSchedule: 'constant', optimizer: 'sgd', proxMu: 0, batchSize: 32, localEpochs: 1, totalRounds: 10, targetAccuracy: 0.97, strategy: { aggregation: 'fedavg', trim: 0.2, byzantine: 1, clip: 1, normBound: 5, serverOptimizer: 'none', serverLr: 1 }, evalSamples: 10000, partition: 'iid' }
export const SIG = new Uint8Array(64).fill(7)
export const metrics = { accuracy: 0.9, loss: 0.3, federatedAccuracy: 0.9, federatedLoss: 0.3, evaluatedSamples: 1000, participants: [PEER, OTHER], activeNodes: 2, gpuNodes: 0, cpuNodes: 2, durationMs: 10, trainMs: 5, transferMs: 1, aggregateMs: 1, evalMs: 1, idleMs: 2, finishedAt: 1 }

export const SAMPLES: ControlMessage[] = [
  { type: 'heartbeat', v: PROTOCOL_VERSION, seq: 1765000000000, term: 3, peer: PEER, leader: OTHER, round: 2, modelHash: HASH, device: 'cpu', backend: 'wasm', speed: 1500.5, examples: 600, addrs: ['/ip4/127.0.0.1/tcp/4001'], termCert: null, roundCert: HASH, work: { round: 3, done: 640, total: 1200 }, everyMs: 4000 },
  { type: 'heartbeat', v: PROTOCOL_VERSION, seq: 1765000000000, term: 0, peer: PEER, leader: PEER, round: 0, modelHash: null, device: 'gpu', backend: 'tensorflow', speed: 0, examples: 0, addrs: [], termCert: HASH, roundCert: null, work: null, everyMs: 1000 },
  { type: 'round-start', v: PROTOCOL_VERSION, seq: 1765000000000, term: 3, round: 4, leader: PEER, modelHash: HASH, deadline: 1e12, task, assignments: [{ peer: PEER, samples: 100, shard: [0, 2] }, { peer: OTHER, samples: 120, shard: [1, 2] }], checkers: [PEER, OTHER] },
  { type: 'update-ready', v: PROTOCOL_VERSION, seq: 1765000000000, term: 3, round: 4, peer: OTHER, hash: HASH, numSamples: 120, metrics: { loss: 0.2, trainMs: 900, samplesPerSec: 133 } },
  { type: 'round-proposal', v: PROTOCOL_VERSION, seq: 1765000000000, term: 3, round: 4, leader: PEER, resultHash: HASH, modelHash: HASH, signature: SIG },
  { type: 'work-failed', v: PROTOCOL_VERSION, seq: 1765000000000, term: 3, round: 4, peer: OTHER, reason: 'unknown model "tiny-net"' },
  { type: 'round-done', v: PROTOCOL_VERSION, seq: 1765000000000, term: 3, round: 4, leader: PEER, modelHash: HASH, certHash: HASH, metrics, finished: false },
  { type: 'vote-request', v: PROTOCOL_VERSION, seq: 1765000000000, term: 4, candidate: OTHER, round: 4, roundCert: HASH },
  { type: 'vote', v: PROTOCOL_VERSION, seq: 1765000000000, term: 4, candidate: OTHER, voter: PEER, signature: SIG },
  { type: 'round-vote', v: PROTOCOL_VERSION, seq: 1765000000000, term: 3, round: 4, peer: OTHER, resultHash: HASH, accuracy: 0.93, loss: 0.2, samples: 1000, signature: SIG }
]
