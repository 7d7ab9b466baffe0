// A network of engines (DmlNode) for unit tests: in-memory network, fake clock, fake trainers,
// checkpoints in memory. Each peer's trainer and blob serving can be made to misbehave.
import { encodeTensors, PROTOCOL_VERSION, type NamedTensor, type RoundStart, type Task } from '@dml/protocol'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { DmlNode, keySigner, sleep, type Checkpoint, type CheckpointStore, type Logger, type NodeConfig, type SavedVote, type Signer, type Trainer, type TrainJob } from '@dml/node'
import { modelPart, TrainingAborted, withServerState, type Evaluation, type ServerOptimizerName, type TrainResult } from '@dml/trainer'
import { FakeClock } from './fake-clock.ts'
import { MemoryNetwork, type MemoryEndpoint } from './memory-network.ts'

export interface LogEntry {
  /** the peer that logged it */
  node: string
  level: 'info' | 'warn'
  event: string
  msg: string
  ts: number
  [field: string]: unknown
}

/** How a fake trainer behaves; tests change it between rounds. */
export interface Behaviour {
  /** fake milliseconds one local training takes */
  trainMs: number
  /** 'hang' trains until the round's signal aborts it */
  train: 'ok' | 'throw' | 'hang'
  /** the update a training produces from the global weights (default: plusOne) */
  update: (weights: NamedTensor[], job: TrainJob) => NamedTensor[]
  /** the samples the worker claims (default: what it was assigned) */
  claim: (assigned: number) => number
  evaluate: 'ok' | 'throw' | 'hang'
  /** how long an evaluation takes */
  evaluateMs: number
}

/**
 * Every value + 1, and w1 marked with the square of the shard, so that no two peers' updates are
 * alike and no average of them equals one of them.
 */
export const plusOne = (weights: NamedTensor[], job: TrainJob): NamedTensor[] =>
  weights.map((w, i) => ({ ...w, values: w.values.map(v => v + 1 + (i === 1 ? job.shard[0] ** 2 * 1e-3 : 0)) }))

/** A trainer with no data and no tfjs: weights are two small tensors; accuracy grows with them. */
export class FakeTrainer implements Trainer {
  readonly examples = 1000
  readonly behaviour: Behaviour
  private readonly clock: FakeClock

  constructor (clock: FakeClock, behaviour: Partial<Behaviour> = {}) {
    this.clock = clock
    this.behaviour = { trainMs: 2000, train: 'ok', update: plusOne, claim: n => n, evaluate: 'ok', evaluateMs: 0, ...behaviour }
  }

  async initialWeights (task: Task): Promise<NamedTensor[]> {
    return withServerState([{ name: 'w0', shape: [2, 2], values: new Float32Array(4) }, { name: 'w1', shape: [3], values: new Float32Array(3) }], task.strategy.serverOptimizer as ServerOptimizerName)
  }

  async train (job: TrainJob): Promise<TrainResult> {
    const b = this.behaviour
    try {
      // half way, it says so, as local training reports its progress
      await sleep(this.clock, b.train === 'hang' ? 1e12 : b.trainMs / 2, job.signal)
      job.onProgress(Math.floor(job.samples / 2), job.samples, 0.5)
      await sleep(this.clock, b.trainMs / 2, job.signal)
    } catch (err) {
      throw new TrainingAborted((err as Error).message)
    }
    if (b.train === 'throw') throw new Error('unknown model "tiny-net"; known models: mlp (add your own with --model-module)')
    return { weights: b.update(modelPart(job.weights), job), loss: 0.5, numSamples: b.claim(job.samples), trainMs: b.trainMs }
  }

  async evaluate (_task: Task, weights: NamedTensor[], signal?: AbortSignal): Promise<Evaluation> {
    const b = this.behaviour
    if (b.evaluate === 'throw') throw new Error('the test set is unreadable')
    if (b.evaluate === 'hang') await sleep(this.clock, 1e12, signal)
    if (b.evaluateMs > 0) await sleep(this.clock, b.evaluateMs, signal)
    return { accuracy: Math.min(0.99, Math.max(0, weights[0].values[0] / 100)), loss: 1, samples: 100 }
  }
}

export interface TestPeer {
  id: string
  /** its key: a test that makes it lie signs as it */
  signer: Signer
  node: DmlNode
  net: MemoryEndpoint
  trainer: FakeTrainer
  checkpoints: Checkpoint[]
  /** the votes it wrote down before giving them */
  votes: SavedVote[]
  logs: LogEntry[]
}

export const TASK: Task = { model: 'fake', dataset: 'fake', input: '2', classes: 2, inputScale: 1, lr: 0.1, lrSchedule: 'constant', optimizer: 'sgd', proxMu: 0, batchSize: 10, localEpochs: 1, totalRounds: 5, targetAccuracy: 1, strategy: { aggregation: 'fedavg', trim: 0.2, byzantine: 1, clip: 1, normBound: 5, serverOptimizer: 'none', serverLr: 1 }, evalSamples: 100, partition: 'iid' }

export interface Identity { id: string, key: PrivateKey, signer: Signer }

/** `n` identities, sorted by peer id: the earlier one wins an election tie. */
export async function identities (n: number): Promise<Identity[]> {
  const keys = await Promise.all(Array.from({ length: n }, async () => await generateKeyPair('Ed25519')))
  return keys.map(key => { const id = peerIdFromPrivateKey(key).toString(); return { id, key, signer: keySigner(id, key) } })
    .sort((a, b) => (a.id < b.id ? -1 : 1))
}

/** the size of the fake model's blob (w0 2x2, w1 3) */
const MODEL_BYTES = encodeTensors([{ name: 'w0', shape: [2, 2], values: new Float32Array(4) }, { name: 'w1', shape: [3], values: new Float32Array(3) }]).byteLength

export const CONFIG: NodeConfig = { task: TASK, minPeers: 1, shard: null, heartbeatMs: 1000, leaseMs: 5000, roundTimeoutMs: 60_000, transferTimeoutMs: 10_000, modelBytes: MODEL_BYTES }

export class TestCluster {
  readonly clock = new FakeClock()
  readonly hub = new MemoryNetwork(this.clock)
  readonly peers: TestPeer[] = []
  private readonly keys: Identity[]
  private used = 0

  private constructor (keys: Identity[]) { this.keys = keys }

  /** A cluster with `n` identities to hand out (sorted: peers added earlier win election ties). */
  static async create (n = 12): Promise<TestCluster> {
    return new TestCluster(await identities(n))
  }

  /** The next identity, for a peer or a liar. */
  identity (): Identity {
    const next = this.keys[this.used++]
    if (next === undefined) throw new Error(`the cluster has only ${this.keys.length} identities: TestCluster.create(more)`)
    return next
  }

  /** Adds (and starts) a peer; peers added earlier have lower ids and so win election ties. */
  add (options: { behaviour?: Partial<Behaviour>, config?: Partial<NodeConfig>, store?: CheckpointStore, allowed?: ReadonlySet<string>, vote?: SavedVote | 'lost', device?: 'cpu' | 'browser', restarting?: TestPeer } = {}): TestPeer {
    // a restarted peer keeps its identity (a node's key file, a tab's storage), and nothing else
    const { id, signer } = options.restarting ?? this.identity()
    const net = this.hub.join(id)
    const trainer = new FakeTrainer(this.clock, options.behaviour)
    const logs: LogEntry[] = []
    const checkpoints: Checkpoint[] = []
    const votes: SavedVote[] = []
    const entry = (level: 'info' | 'warn') => (event: string, fields: Record<string, unknown>, msg: string): void => {
      logs.push({ ...fields, node: id, level, event, msg, ts: this.clock.now() })
    }
    const log: Logger = { info: entry('info'), warn: entry('warn') }
    const node = new DmlNode({ ...CONFIG, ...options.config }, {
      net, trainer, log, clock: this.clock,
      backend: { backend: 'fake', device: options.device ?? 'cpu', source: 'test' },
      store: options.store ?? { save: async (c) => { checkpoints.push(c) } },
      votes: { saveVote: async (v) => { votes.push(v) } },
      signer,
      allowed: options.allowed
    })
    net.bind(node)
    node.start(undefined, options.vote)
    const peer = { id, signer, node, net, trainer, checkpoints, votes, logs }
    this.peers.push(peer)
    return peer
  }

  /** Every peer's log entries for `event`, oldest first. */
  events (event: string, match: (e: LogEntry) => boolean = () => true): LogEntry[] {
    return this.peers.flatMap(p => p.logs).filter(e => e.event === event && match(e)).sort((a, b) => a.ts - b.ts)
  }

  leader (): TestPeer | undefined {
    return this.peers.find(p => p.net.connected && p.node.isLeading)
  }

  /** Advances fake time until `done`, failing loudly (with the last log lines) after `maxMs`. */
  async until (what: string, done: () => boolean, maxMs = 120_000): Promise<void> {
    try {
      await this.clock.until(what, done, maxMs)
    } catch (err) {
      const tail = this.peers.flatMap(p => p.logs).sort((a, b) => a.ts - b.ts).slice(-15).map(e => `${e.node.slice(-4)} ${e.event}: ${e.msg}`)
      throw new Error(`${(err as Error).message}\n  ${tail.join('\n  ')}`)
    }
  }

  /** Finished rounds, as their leaders announced them. */
  roundsDone (): LogEntry[] {
    return this.events('round-done')
  }

  async stop (): Promise<void> {
    await Promise.all(this.peers.map(async p => { await p.node.stop() }))
  }
}

/**
 * An endpoint that speaks the protocol: it follows whoever leads with a certified term and
 * heartbeats the device and speed it claims; `onStart` answers the round starts that assign it work.
 */
function addFollower (net: TestCluster, claim: { device: 'cpu' | 'gpu', backend: string, speed: number }, onStart?: (endpoint: MemoryEndpoint, start: RoundStart, samples: number) => void): MemoryEndpoint {
  const endpoint = net.hub.join(net.identity().id)
  let term = 0
  let leader: string | null = null
  endpoint.bind({
    judge: () => 'accept',
    rejected: () => {},
    subscribed: () => {},
    deliver: (m) => {
      if (m.type === 'heartbeat' && m.leader === m.peer && m.termCert !== null && m.term >= term) {
        term = m.term
        leader = m.peer
      }
      const mine = m.type === 'round-start' ? m.assignments.find(a => a.peer === endpoint.peerId) : undefined
      if (m.type === 'round-start' && mine !== undefined) onStart?.(endpoint, m, mine.samples)
    }
  })
  const beat = (): void => {
    if (!endpoint.connected) return
    endpoint.publish({ type: 'heartbeat', v: PROTOCOL_VERSION, term, peer: endpoint.peerId, leader, round: 0, modelHash: null, examples: 0, ...claim, addrs: [], termCert: null, roundCert: null, work: null, everyMs: 1000 }).catch(() => {})
    net.clock.setTimeout(beat, 1000)
  }
  beat()
  return endpoint
}

/** A peer that follows whoever leads and heartbeats with the given claims, and never does the work it is given. */
export function addIdler (net: TestCluster, claim: { device: 'cpu' | 'gpu', backend: string, speed: number }): MemoryEndpoint {
  return addFollower(net, claim)
}

/**
 * A peer that speaks the protocol and lies: it follows whoever leads, heartbeats, and to every
 * RoundStart that assigns it work it answers at once with an update of its own making, claiming
 * whatever it likes. It never checks or signs a result.
 */
export function addLiar (net: TestCluster, lie: { weights: (shapes: number[][]) => NamedTensor[], numSamples?: (assigned: number) => number }): MemoryEndpoint {
  const shapes = [[2, 2], [3]]
  return addFollower(net, { device: 'cpu', backend: 'liar', speed: 0 }, (endpoint, start, samples) => {
    const hash = endpoint.blobs.put(encodeTensors(lie.weights(shapes)), true)
    endpoint.publish({ type: 'update-ready', v: PROTOCOL_VERSION, term: start.term, round: start.round, peer: endpoint.peerId, hash, numSamples: lie.numSamples?.(samples) ?? samples, metrics: { loss: 0.1, trainMs: 10, samplesPerSec: 1000 } }).catch(() => {})
  })
}

/**
 * A made-up identity: it follows whoever leads and heartbeats claiming a GPU and a huge speed, and
 * does nothing else (no update, no signature, no vote).
 */
export function addSybil (net: TestCluster): MemoryEndpoint {
  return addFollower(net, { device: 'gpu', backend: 'sybil', speed: 1e6 })
}
