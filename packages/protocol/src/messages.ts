// Control messages: a discriminated union, CBOR on the gossip control topic. Every field that
// crosses the wire is checked here; the rest of the system only ever sees validated values.
import { CodecError, decodeCbor, describe, encodeCbor } from './codec.ts'
import { LOCAL_OPTIMIZERS, MAX_CONTROL_BYTES, MAX_HEARTBEAT_EVERY_MS, MAX_ROUND_PEERS, PROTOCOL_VERSION, SERVER_OPTIMIZERS } from './constants.ts'
import { isContentHash } from './hash.ts'

/** what trains: a GPU, a CPU, or a browser tab (which never coordinates: it may vanish, and serves no status) */
export type Device = 'gpu' | 'cpu' | 'browser'

/**
 * What the network trains: carried in every RoundStart. A peer works only on the task it was
 * started with (see sameTraining); the rounds and the target are each peer's own to decide.
 */
export interface Task {
  model: string
  /** the shared data set peers train on (mnist, idx:<dir>), or `own`: each peer's own examples (--data) */
  dataset: string
  /** what every example looks like, rows x cols x channels (e.g. 28x28x1): every peer's data must fit it */
  input: string
  classes: number
  /** every feature is divided by this before training (255: pixels to 0-1) */
  inputScale: number
  lr: number
  /** the local learning rate's schedule over rounds: constant, exp:<gamma> or step:<rounds>:<gamma> */
  lrSchedule: string
  /** the local optimizer: sgd, momentum or adam */
  optimizer: string
  /** FedProx: the weight of the pull towards the round's model (0: plain FedAvg) */
  proxMu: number
  batchSize: number
  localEpochs: number
  totalRounds: number
  targetAccuracy: number
  /** how a round's updates become the next model: named in the task, and in each round's result */
  strategy: StrategySpec
  evalSamples: number
  /** how the training set is split between a round's peers: iid, dirichlet:<alpha> or shards:<k> */
  partition: string
}

/** A round's aggregation: the strategy, its parameters, and how the aggregate moves the model. */
export interface StrategySpec {
  /** fedavg, median, trimmed-mean, krum, multi-krum or clipped-mean */
  aggregation: string
  /** trimmed-mean: the fraction cut from each end of every coordinate */
  trim: number
  /** krum and multi-krum: how many of a round's updates may be Byzantine */
  byzantine: number
  /** clipped-mean: updates are clipped to this many times the round's median distance */
  clip: number
  /** updates further from the global model than this many times the round's median distance are dropped (0: never) */
  normBound: number
  /** how the round's aggregate moves the model: none (FedAvg), momentum (FedAvgM) or adam (FedAdam) */
  serverOptimizer: string
  serverLr: number
}

const STRATEGY_FIELDS = ['aggregation', 'trim', 'byzantine', 'clip', 'normBound', 'serverOptimizer', 'serverLr'] as const

/** The fields of a task that decide what training computes (with its strategy): peers agree on them or do not work together. */
export const TRAINING_FIELDS = ['model', 'input', 'classes', 'inputScale', 'lr', 'lrSchedule', 'optimizer', 'proxMu', 'batchSize', 'localEpochs', 'evalSamples'] as const

/** Peers that train on one shared data set must also agree on which and how it is split. */
const SHARED_DATA_FIELDS = ['dataset', 'partition'] as const

/** A task's dataset when each peer trains on its own examples. */
export const OWN_DATA = 'own'

/** The first training field in which `a` and `b` differ, if any. */
export function trainingDifference (a: Task, b: Task): { field: string, ours: unknown, theirs: unknown } | undefined {
  const shared = a.dataset !== OWN_DATA && b.dataset !== OWN_DATA
  for (const field of [...TRAINING_FIELDS, ...(shared ? SHARED_DATA_FIELDS : [])]) if (a[field] !== b[field]) return { field, ours: a[field], theirs: b[field] }
  return strategyDifference(a.strategy, b.strategy)
}

/** The first field in which two strategies differ, if any. */
export function strategyDifference (a: StrategySpec, b: StrategySpec): { field: string, ours: unknown, theirs: unknown } | undefined {
  for (const field of STRATEGY_FIELDS) if (a[field] !== b[field]) return { field, ours: a[field], theirs: b[field] }
  return undefined
}

/** `28x28x1` as [28, 28, 1]; undefined unless 1 to 4 dimensions, each from 1 to 4096. */
export function parseInputShape (spec: string): number[] | undefined {
  if (!/^\d{1,4}(x\d{1,4}){0,3}$/.test(spec)) return undefined
  const dims = spec.split('x').map(Number)
  return dims.every(d => d >= 1 && d <= 4096) ? dims : undefined
}

/**
 * What every control message carries besides its own fields: `v` (the protocol version), `term`,
 * and `seq`, its author's message clock: milliseconds since the epoch by the author's clock, made
 * strictly increasing, so that each message of an author is newer than the one before. A peer
 * keeps the newest `seq` it took of each author and kind of message, and takes nothing older:
 * a copy replayed later, whoever relays it, is seen for what it is (no clock needs to agree with
 * another's, only with itself).
 */
export interface Envelope {
  v: number
  term: number
  seq: number
}

export interface Heartbeat {
  type: 'heartbeat'
  v: number
  term: number
  /** the author's message clock (see Envelope) */
  seq: number
  peer: string
  /** the leader this peer follows (itself when it leads), or null */
  leader: string | null
  /** number of finished rounds this peer holds the model of */
  round: number
  modelHash: string | null
  device: Device
  backend: string
  /** measured local training speed, samples per second (0 before the first round) */
  speed: number
  /** training examples of its own (--data) this peer holds; 0 when it trains on a part of a shared data set */
  examples: number
  /** multiaddrs this peer listens on, so peers that only know it through gossip can dial it */
  addrs: string[]
  /** while leading: the blob hash of this term's certificate (the votes that elected it) */
  termCert: string | null
  /** the blob hash of the certificate of `round` (null at round 0) */
  roundCert: string | null
  /** the work this peer is doing for a round: examples trained of those assigned (for progress and ETAs only) */
  work: WorkProgress | null
  /**
   * the most milliseconds until this peer's next heartbeat, unless something in it changes
   * sooner: followers of a large network beat less often, so that the heartbeats each peer
   * receives do not grow with the network (see node.ts)
   */
  everyMs: number
  /** this peer is stopping: its last heartbeat, so that the others drop it now, not a lease later */
  leaving?: true
}

export interface WorkProgress {
  round: number
  done: number
  total: number
}

/** A candidate asks for votes for `term`, showing the rounds it can prove. */
export interface VoteRequest {
  type: 'vote-request'
  v: number
  term: number
  /** the author's message clock (see Envelope) */
  seq: number
  candidate: string
  round: number
  roundCert: string | null
}

/** A vote: `voter` signs (term, candidate), so the candidate can show it to anyone (a term certificate). */
export interface Vote {
  type: 'vote'
  v: number
  term: number
  /** the author's message clock (see Envelope) */
  seq: number
  candidate: string
  voter: string
  signature: Uint8Array
}

export interface Assignment {
  peer: string
  /** samples to train on this round (work in proportion to the peer's speed) */
  samples: number
  /** which slice of the training set the peer holds: index of count */
  shard: [number, number]
}

export interface RoundStart {
  type: 'round-start'
  v: number
  term: number
  /** the author's message clock (see Envelope) */
  seq: number
  round: number
  leader: string
  modelHash: string
  deadline: number
  task: Task
  assignments: Assignment[]
  /**
   * who checks and signs this round's result, fixed before the round: drawn by hash from the
   * round's members (the leader's live followers that are members, see RoundResult.pool); only
   * their signatures count in its certificate
   */
  checkers: string[]
}

export interface UpdateMetrics {
  loss: number
  trainMs: number
  samplesPerSec: number
}

export interface UpdateReady {
  type: 'update-ready'
  v: number
  term: number
  /** the author's message clock (see Envelope) */
  seq: number
  round: number
  peer: string
  hash: string
  numSamples: number
  metrics: UpdateMetrics
}

/**
 * A worker that was assigned work and could not do it says why, so the leader can name it and
 * close the round without waiting for its deadline.
 */
export interface WorkFailed {
  type: 'work-failed'
  v: number
  term: number
  /** the author's message clock (see Envelope) */
  seq: number
  round: number
  peer: string
  reason: string
}

/**
 * The leader's result of a round, before it counts: `resultHash` names a RoundResult blob (what
 * went into the new model). Participants check it, compute the model themselves, evaluate it, and
 * sign (RoundVote); only with a quorum of signatures is the round done. `signature` is the
 * leader's over the result, as in the round certificate: with it and the votes, which are gossiped
 * to all, every participant can build the certificate should the leader's announcement not come.
 */
export interface RoundProposal {
  type: 'round-proposal'
  v: number
  term: number
  /** the author's message clock (see Envelope) */
  seq: number
  round: number
  leader: string
  resultHash: string
  modelHash: string
  signature: Uint8Array
}

/** A participant's signature of a round result, with what it measured of the new model. */
export interface RoundVote {
  type: 'round-vote'
  v: number
  term: number
  /** the author's message clock (see Envelope) */
  seq: number
  round: number
  peer: string
  resultHash: string
  accuracy: number
  loss: number
  /** examples the accuracy was measured on */
  samples: number
  signature: Uint8Array
}

export interface RoundMetrics {
  /** the median of the signers' evaluations (robust to a lying minority): what training targets */
  accuracy: number
  loss: number
  /** federated evaluation: the signers' evaluations, each on its own examples, weighted by their number (bounded) */
  federatedAccuracy: number
  federatedLoss: number
  /** the examples the federated evaluation counts */
  evaluatedSamples: number
  participants: string[]
  activeNodes: number
  gpuNodes: number
  cpuNodes: number
  durationMs: number
  trainMs: number
  transferMs: number
  aggregateMs: number
  evalMs: number
  idleMs: number
  finishedAt: number
}

export interface RoundDone {
  type: 'round-done'
  v: number
  term: number
  /** the author's message clock (see Envelope) */
  seq: number
  round: number
  leader: string
  modelHash: string
  /** the blob hash of the round's certificate: without a valid one, nobody adopts the model */
  certHash: string
  /** the leader's account of the round, for people to read; decisions use the certificate */
  metrics: RoundMetrics
  finished: boolean
}

export type ControlMessage = Heartbeat | VoteRequest | Vote | RoundStart | UpdateReady | WorkFailed | RoundProposal | RoundVote | RoundDone

/** A message as its author writes it, before the network stamps its `seq` (see MessageClock). */
export type Unstamped<T extends ControlMessage> = T extends unknown ? Omit<T, 'seq'> : never
/** A control message as the engine writes it: the network stamps its `seq` as it sends it. */
export type Outgoing = Unstamped<ControlMessage>

/**
 * An author's message clock (Envelope.seq): its clock's milliseconds, and never less than one
 * past the last value given, so that two messages of one millisecond, or a clock set back while
 * the peer runs, still come in order.
 */
export class MessageClock {
  private last = 0
  private readonly now: () => number

  constructor (now: () => number) { this.now = now }

  next (): number {
    this.last = Math.max(Math.floor(this.now()), this.last + 1)
    return this.last
  }

  stamp (message: Outgoing): ControlMessage {
    return { ...message, seq: this.next() } as ControlMessage
  }
}

export class MessageError extends Error {
  override name = 'MessageError'
}

export type Obj = Record<string, unknown>

function fail (why: string): never { throw new MessageError(why) }

export function obj (value: unknown, what: string): Obj {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) fail(`${what} must be a map`)
  return value as Obj
}
export function str (o: Obj, key: string, max = 256): string {
  const v = o[key]
  if (typeof v !== 'string' || v.length === 0 || v.length > max) fail(`${key} must be a non-empty string of at most ${max} characters`)
  return v
}
export function int (o: Obj, key: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = o[key]
  if (!Number.isSafeInteger(v) || (v as number) < min || (v as number) > max) fail(`${key} must be an integer in [${min}, ${max}]`)
  return v as number
}
export function num (o: Obj, key: string, min = -Infinity, max = Infinity): number {
  const v = o[key]
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) fail(`${key} must be a finite number in [${min}, ${max}]`)
  return v
}
function bool (o: Obj, key: string): boolean {
  if (typeof o[key] !== 'boolean') fail(`${key} must be a boolean`)
  return o[key] as boolean
}
export function hash (o: Obj, key: string): string {
  if (!isContentHash(o[key])) fail(`${key} must be a hex SHA-256`)
  return o[key] as string
}
function workProgress (o: Obj): WorkProgress {
  const total = int(o, 'total')
  return { round: int(o, 'round', 1), done: int(o, 'done', 0, total), total }
}
function hashOrNull (o: Obj, key: string): string | null {
  return o[key] === null ? null : hash(o, key)
}
/** A signature: bytes of a plausible length (Ed25519's are 64). */
export function signature (o: Obj, key: string): Uint8Array {
  const v = o[key]
  if (!(v instanceof Uint8Array) || v.byteLength < 32 || v.byteLength > 512) fail(`${key} must be a signature (32-512 bytes)`)
  return Uint8Array.from(v)
}
export function list<T> (o: Obj, key: string, max: number, item: (v: unknown, i: number) => T): T[] {
  const v = o[key]
  if (!Array.isArray(v) || v.length > max) fail(`${key} must be a list of at most ${max} entries`)
  return v.map(item)
}

const PEER_ID = /^[1-9A-HJ-NP-Za-km-z]{32,128}$/
export function peerId (value: unknown, key: string): string {
  if (typeof value !== 'string' || !PEER_ID.test(value)) fail(`${key} must be a peer id`)
  return value
}
/** A list of distinct peer ids. */
export function peerList (o: Obj, key: string, max: number): string[] {
  const ids = list(o, key, max, (p) => peerId(p, key))
  if (new Set(ids).size !== ids.length) fail(`${key} names a peer twice`)
  return ids
}
function device (value: unknown): Device {
  if (value !== 'gpu' && value !== 'cpu' && value !== 'browser') fail('device must be "gpu", "cpu" or "browser"')
  return value
}

/** Longest reason a worker may give for failed work. */
export const MAX_REASON_LENGTH = 512

/** A partition's name, by its form only (the trainer parses it): nothing else travels. */
function partitionSpec (value: unknown): string {
  if (typeof value !== 'string' || !/^(iid|dirichlet:\d{1,4}(\.\d{1,6})?|shards:\d{1,3})$/.test(value)) fail('task.partition must be iid, dirichlet:<alpha> or shards:<k>')
  return value
}

/** A schedule's name, by its form only (the trainer parses it). */
function lrSchedule (value: unknown): string {
  if (typeof value !== 'string' || !/^(constant|exp:\d?\.?\d{1,6}|step:\d{1,6}:\d?\.?\d{1,6})$/.test(value)) fail('task.lrSchedule must be constant, exp:<gamma> or step:<rounds>:<gamma>')
  return value
}

export function oneOf (o: Record<string, unknown>, key: string, allowed: readonly string[]): string {
  const v = o[key]
  if (typeof v !== 'string' || !allowed.includes(v)) fail(`${key} must be one of ${allowed.join(', ')}`)
  return v as string
}

function inputShape (value: unknown): string {
  if (typeof value !== 'string' || parseInputShape(value) === undefined) fail('task.input must be rows x cols x channels, e.g. 28x28x1')
  return value
}

/** A strategy as a task or a round result names it: the one check of its values. */
export function strategySpec (value: unknown): StrategySpec {
  const o = obj(value, 'strategy')
  return {
    aggregation: str(o, 'aggregation', 64),
    trim: num(o, 'trim', 0, 0.49),
    byzantine: int(o, 'byzantine', 0, MAX_ROUND_PEERS),
    clip: num(o, 'clip', 0, 1e6),
    normBound: num(o, 'normBound', 0, 1e6),
    serverOptimizer: oneOf(o, 'serverOptimizer', SERVER_OPTIMIZERS),
    serverLr: num(o, 'serverLr', 0, 1000)
  }
}

function task (value: unknown): Task {
  const o = obj(value, 'task')
  return {
    model: str(o, 'model', 128),
    dataset: str(o, 'dataset', 512),
    input: inputShape(o.input),
    classes: int(o, 'classes', 2, 256),
    inputScale: num(o, 'inputScale', 1e-6, 1e9),
    lr: num(o, 'lr', 0, 100),
    lrSchedule: lrSchedule(o.lrSchedule),
    optimizer: oneOf(o, 'optimizer', LOCAL_OPTIMIZERS),
    proxMu: num(o, 'proxMu', 0, 1000),
    batchSize: int(o, 'batchSize', 1, 1 << 16),
    localEpochs: num(o, 'localEpochs', 0, 1000),
    totalRounds: int(o, 'totalRounds', 1, 1e9),
    targetAccuracy: num(o, 'targetAccuracy', 0, 1),
    strategy: strategySpec(o.strategy),
    evalSamples: int(o, 'evalSamples', 1),
    partition: partitionSpec(o.partition)
  }
}

function assignment (value: unknown): Assignment {
  const o = obj(value, 'assignment')
  const shard = o.shard
  if (!Array.isArray(shard) || shard.length !== 2 || !shard.every(Number.isSafeInteger) || shard[1] < 1 || shard[0] < 0 || shard[0] >= shard[1]) {
    fail('shard must be [index, count] with 0 <= index < count')
  }
  return { peer: peerId(o.peer, 'assignment.peer'), samples: int(o, 'samples', 1), shard: [shard[0], shard[1]] }
}

function roundMetrics (value: unknown): RoundMetrics {
  const o = obj(value, 'metrics')
  return {
    accuracy: num(o, 'accuracy', 0, 1),
    loss: num(o, 'loss', 0),
    federatedAccuracy: num(o, 'federatedAccuracy', 0, 1),
    federatedLoss: num(o, 'federatedLoss', 0),
    evaluatedSamples: num(o, 'evaluatedSamples', 0),
    participants: list(o, 'participants', MAX_ROUND_PEERS, (p) => peerId(p, 'participant')),
    activeNodes: int(o, 'activeNodes'),
    gpuNodes: int(o, 'gpuNodes'),
    cpuNodes: int(o, 'cpuNodes'),
    durationMs: num(o, 'durationMs', 0),
    trainMs: num(o, 'trainMs', 0),
    transferMs: num(o, 'transferMs', 0),
    aggregateMs: num(o, 'aggregateMs', 0),
    evalMs: num(o, 'evalMs', 0),
    idleMs: num(o, 'idleMs', 0),
    finishedAt: num(o, 'finishedAt', 0)
  }
}

/** Checks a decoded value field by field; returns a fresh object holding only known fields. */
export function validateMessage (value: unknown): ControlMessage {
  const o = obj(value, 'message')
  if (o.v !== PROTOCOL_VERSION) fail(`protocol version ${describe(o.v)} is not ${PROTOCOL_VERSION}`)
  const common = { v: PROTOCOL_VERSION, term: int(o, 'term'), seq: int(o, 'seq') }
  // what every leader message (round-start, model-offer, round-done) says first
  const fromLeader = (): { round: number, leader: string, modelHash: string } =>
    ({ round: int(o, 'round', 1), leader: peerId(o.leader, 'leader'), modelHash: hash(o, 'modelHash') })
  const type = o.type
  switch (type) {
    case 'heartbeat':
      return {
        type,
        ...common,
        peer: peerId(o.peer, 'peer'),
        leader: o.leader === null ? null : peerId(o.leader, 'leader'),
        round: int(o, 'round'),
        modelHash: o.modelHash === null ? null : hash(o, 'modelHash'),
        device: device(o.device),
        backend: str(o, 'backend', 64),
        speed: num(o, 'speed', 0),
        examples: int(o, 'examples', 0),
        addrs: list(o, 'addrs', 32, (a) => { if (typeof a !== 'string' || a.length > 512 || !a.startsWith('/')) fail('addrs must be multiaddr strings'); return a }),
        termCert: hashOrNull(o, 'termCert'),
        roundCert: hashOrNull(o, 'roundCert'),
        work: o.work === null ? null : workProgress(obj(o.work, 'work')),
        everyMs: int(o, 'everyMs', 1, MAX_HEARTBEAT_EVERY_MS),
        ...(o.leaving === true ? { leaving: true as const } : {})
      }
    case 'vote-request':
      return { type, ...common, term: int(o, 'term', 1), candidate: peerId(o.candidate, 'candidate'), round: int(o, 'round'), roundCert: hashOrNull(o, 'roundCert') }
    case 'vote':
      return { type, ...common, term: int(o, 'term', 1), candidate: peerId(o.candidate, 'candidate'), voter: peerId(o.voter, 'voter'), signature: signature(o, 'signature') }
    case 'round-start':
      return {
        type,
        ...common,
        ...fromLeader(),
        deadline: num(o, 'deadline', 0),
        task: task(o.task),
        assignments: list(o, 'assignments', MAX_ROUND_PEERS, assignment),
        checkers: peerList(o, 'checkers', MAX_ROUND_PEERS)
      }
    case 'update-ready': {
      const m = obj(o.metrics, 'metrics')
      return {
        type,
        ...common,
        round: int(o, 'round', 1),
        peer: peerId(o.peer, 'peer'),
        hash: hash(o, 'hash'),
        numSamples: int(o, 'numSamples', 1),
        metrics: { loss: num(m, 'loss', 0), trainMs: num(m, 'trainMs', 0), samplesPerSec: num(m, 'samplesPerSec', 0) }
      }
    }
    case 'work-failed':
      return { type, ...common, round: int(o, 'round', 1), peer: peerId(o.peer, 'peer'), reason: str(o, 'reason', MAX_REASON_LENGTH) }
    case 'round-proposal':
      return { type, ...common, ...fromLeader(), resultHash: hash(o, 'resultHash'), signature: signature(o, 'signature') }
    case 'round-vote':
      return {
        type,
        ...common,
        round: int(o, 'round', 1),
        peer: peerId(o.peer, 'peer'),
        resultHash: hash(o, 'resultHash'),
        accuracy: num(o, 'accuracy', 0, 1),
        loss: num(o, 'loss', 0),
        samples: int(o, 'samples', 1),
        signature: signature(o, 'signature')
      }
    case 'round-done':
      return {
        type,
        ...common,
        ...fromLeader(),
        certHash: hash(o, 'certHash'),
        metrics: roundMetrics(o.metrics),
        finished: bool(o, 'finished')
      }
    default:
      return fail(`unknown message type ${describe(type)}`)
  }
}

export function encodeMessage (message: ControlMessage): Uint8Array {
  // validate on the way out too: a bug of ours must not reach the wire
  const bytes = encodeCbor(validateMessage(message))
  if (bytes.byteLength > MAX_CONTROL_BYTES) throw new MessageError(`control message of ${bytes.byteLength} bytes is over ${MAX_CONTROL_BYTES}`)
  return bytes
}

export function decodeMessage (bytes: Uint8Array): ControlMessage {
  let value: unknown
  try {
    value = decodeCbor(bytes, MAX_CONTROL_BYTES)
  } catch (err) {
    if (err instanceof CodecError) throw new MessageError(err.message)
    throw err
  }
  return validateMessage(value)
}

/** The peer a message speaks for: gossip's signed `from` must match it. */
export function messageSender (message: ControlMessage): string {
  switch (message.type) {
    case 'heartbeat': return message.peer
    case 'vote-request': return message.candidate
    case 'vote': return message.voter
    case 'round-start': return message.leader
    case 'update-ready': return message.peer
    case 'work-failed': return message.peer
    case 'round-proposal': return message.leader
    case 'round-vote': return message.peer
    case 'round-done': return message.leader
    default: {
      const never: never = message
      throw new MessageError(`unknown message ${String(never)}`)
    }
  }
}
