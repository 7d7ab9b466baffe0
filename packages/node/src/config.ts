// Command-line flags and the config file. One table describes every option: its flag, type,
// default and help. Flags override the config file, which overrides the defaults. An unknown
// flag or key, or a bad value, is an error that names the option and, for a typo, the right one.
import { readFileSync } from 'node:fs'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
// the data module alone: the monitor reads these options too, and has no use for TensorFlow.js
import { COMPRESSIONS, isCompression, parseInputShape } from '@dml/protocol'
import { PARTITION_FORMS, parsePartition } from '@dml/trainer/data'
import { isOptimizer, LR_SCHEDULE_FORMS, OPTIMIZERS, parseLrSchedule } from '@dml/trainer/local-strategy'
import { isServerOptimizer, SERVER_OPTIMIZERS } from '@dml/trainer/server-optimizer'

/** The first line of an error's message: what a one-line complaint about an option quotes. */
export function firstLine (err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0]
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

type Kind = 'string' | 'number' | 'integer' | 'boolean' | 'list'

interface OptionSpec {
  kind: Kind
  default: unknown
  help: string
  /** value placeholder in --help */
  arg?: string
  check?: (value: any) => string | undefined
}

const positive = (v: number): string | undefined => v > 0 ? undefined : 'must be greater than 0'
const port = (v: number): string | undefined => v >= 0 && v <= 65535 ? undefined : 'must be a port number (0-65535, 0 picks a free one)'
const fraction = (v: number): string | undefined => v >= 0 && v <= 1 ? undefined : 'must be between 0 and 1 (e.g. 0.97)'

const BOOTSTRAP_FORM = 'expected a multiaddr such as /ip4/10.0.0.5/tcp/4001/p2p/12D3KooW..., as a node prints in its "listening on" line'

/** Why `addr` can't be dialled as a bootstrap peer, or undefined when it can. */
export function bootstrapProblem (addr: string): string | undefined {
  let components
  try {
    components = multiaddr(addr).getComponents()
  } catch (err) {
    return `is not a multiaddr (${(err as Error).message}); ${BOOTSTRAP_FORM}`
  }
  if (!components.some(c => c.name === 'tcp')) return `names no TCP port; ${BOOTSTRAP_FORM}`
  const p2p = components.find(c => c.name === 'p2p')?.value
  if (p2p === undefined) return `names no peer id (/p2p/...); ${BOOTSTRAP_FORM}`
  try {
    peerIdFromString(p2p)
  } catch {
    return `holds "${p2p}", which is not a peer id; ${BOOTSTRAP_FORM}`
  }
  return undefined
}
const bootstrapList = (v: string[]): string | undefined => v.map(bootstrapProblem).find(p => p !== undefined)

export const NODE_OPTIONS = {
  config: { kind: 'string', default: '', arg: 'file', help: 'read options from a JSON file (keys as flag names, e.g. {"model": "cnn", "local-epochs": 2})' },
  model: { kind: 'string', default: 'mlp', arg: 'name', help: 'model to train: mlp, cnn, cnn-small, or one from --model-module' },
  'model-module': { kind: 'string', default: '', arg: 'path', help: 'a local ES module exporting `models: { name: (tf, {inputShape, numClasses}) => model }`' },
  dataset: { kind: 'string', default: 'mnist', arg: 'name', help: 'a data set every peer holds and trains its part of: mnist, or idx:<dir> with MNIST-style IDX files (e.g. Fashion-MNIST)' },
  data: { kind: 'string', default: '', arg: 'path', help: 'train on this peer\'s own examples instead, which never leave it: IDX files (plain or .gz), a .csv with a header and a label column, or a folder of PNG/JPEG images with one subfolder per class' },
  input: { kind: 'string', default: '28x28x1', arg: 'shape', help: 'the shape of every example, rows x cols x channels: all peers\' data must have it', check: (v: string) => parseInputShape(v) === undefined ? 'must be like 28x28x1: 1 to 4 sizes from 1 to 4096, joined by x' : undefined },
  classes: { kind: 'integer', default: 10, arg: 'n', help: 'the number of classes; labels are 0 to n-1', check: (v: number) => v >= 2 && v <= 256 ? undefined : 'must be from 2 to 256' },
  'input-scale': { kind: 'number', default: 255, arg: 'x', help: 'every feature is divided by x before training (255: pixel values to 0-1)', check: positive },
  holdout: { kind: 'string', default: '', arg: 'fraction', help: 'keep this fraction of the peer\'s examples out of training and evaluate on them (default: 0.1 with --data, else 0: the data set\'s test set)', check: (v: string) => v === '' || (/^\d*\.?\d+$/.test(v) && Number(v) < 1) ? undefined : 'must be a fraction from 0 to below 1, e.g. 0.1' },
  rounds: { kind: 'integer', default: 20, arg: 'n', help: 'rounds of federated training', check: positive },
  'target-accuracy': { kind: 'number', default: 1, arg: 'x', help: 'stop once test accuracy reaches this (0-1; 1 means run every round)', check: fraction },
  'local-epochs': { kind: 'number', default: 1, arg: 'e', help: 'local passes over a peer\'s shard per round (fractions allowed)', check: positive },
  'batch-size': { kind: 'integer', default: 32, arg: 'n', help: 'local mini-batch size (whole batches only: assigned samples are rounded down to a multiple)', check: positive },
  lr: { kind: 'number', default: 0.15, arg: 'x', help: 'local learning rate (of round 1, with --lr-schedule)', check: positive },
  'lr-schedule': { kind: 'string', default: 'constant', arg: 'spec', help: `the local learning rate over rounds: ${LR_SCHEDULE_FORMS}`, check: (v: string) => { try { parseLrSchedule(v) } catch (err) { return (err as Error).message } } },
  optimizer: { kind: 'string', default: 'sgd', arg: 'name', help: 'local optimizer: sgd, momentum (0.9) or adam; its state starts afresh every round', check: (v: string) => isOptimizer(v) ? undefined : `must be one of ${OPTIMIZERS.join(', ')}` },
  'prox-mu': { kind: 'number', default: 0, arg: 'mu', help: 'FedProx: pull local training towards the round\'s model with weight mu (0: off; try 0.01 on non-IID data)', check: (v: number) => v >= 0 && v <= 1000 ? undefined : 'must be from 0 to 1000' },
  aggregation: { kind: 'string', default: 'fedavg', arg: 'name', help: 'aggregation strategy: fedavg, median, trimmed-mean, krum, multi-krum or clipped-mean (see the README, Security)' },
  trim: { kind: 'number', default: 0.2, arg: 'x', help: 'trimmed-mean: fraction of values cut at each end of every coordinate', check: (v: number) => v >= 0 && v < 0.5 ? undefined : 'must be at least 0 and below 0.5' },
  byzantine: { kind: 'integer', default: 1, arg: 'f', help: 'krum, multi-krum: how many updates of a round may be from liars', check: (v: number) => v >= 0 ? undefined : 'must be 0 or more' },
  clip: { kind: 'number', default: 1, arg: 'x', help: 'clipped-mean: each update is clipped to x times the median distance from the model', check: positive },
  'norm-bound': { kind: 'number', default: 5, arg: 'k', help: 'drop updates further from the model than k times the round\'s median distance (0: never)', check: (v: number) => v === 0 || v >= 1 ? undefined : 'must be 0 (off) or at least 1' },
  'server-optimizer': { kind: 'string', default: 'none', arg: 'name', help: 'how the round\'s aggregate moves the model: none (FedAvg), momentum (FedAvgM, 0.9) or adam (FedAdam)', check: (v: string) => isServerOptimizer(v) ? undefined : `must be one of ${SERVER_OPTIMIZERS.join(', ')}` },
  'server-lr': { kind: 'number', default: 0, arg: 'x', help: 'the server optimizer\'s learning rate (0: 1 for none and momentum, 0.01 for adam)', check: (v: number) => v >= 0 && v <= 1000 ? undefined : 'must be from 0 to 1000' },
  compression: { kind: 'string', default: 'none', arg: 'how', help: 'send updates as float16 (fp16, half the bytes) or int8 (a quarter) differences from the round\'s model; rounding errors carry over to the next round', check: (v: string) => isCompression(v) ? undefined : `must be one of ${COMPRESSIONS.join(', ')}` },
  'min-peers': { kind: 'integer', default: 1, arg: 'n', help: 'updates needed to close a round (the leader waits for this many peers)', check: positive },
  shard: { kind: 'string', default: '', arg: 'i/n', help: 'train on shard i of n of the training set (default: assigned by the coordinator)' },
  partition: { kind: 'string', default: 'iid', arg: 'spec', help: `how the training set is split between a round's peers: ${PARTITION_FORMS}`, check: (v: string) => { try { parsePartition(v) } catch (err) { return (err as Error).message } } },
  'eval-samples': { kind: 'integer', default: 10000, arg: 'n', help: 'test examples the coordinator evaluates on', check: positive },
  host: { kind: 'string', default: '0.0.0.0', arg: 'ip', help: 'IPv4 address to listen on' },
  port: { kind: 'integer', default: 4001, arg: 'n', help: 'libp2p TCP port (0 picks a free one)', check: port },
  'http-port': { kind: 'integer', default: 5000, arg: 'n', help: 'status API port (GET /api/status)', check: port },
  'data-dir': { kind: 'string', default: '.dml', arg: 'dir', help: 'where the identity key and checkpoints live' },
  bootstrap: { kind: 'list', default: [], arg: 'multiaddr', help: 'peer to connect to, /ip4/.../tcp/.../p2p/... (repeatable)', check: bootstrapList },
  mdns: { kind: 'boolean', default: true, help: 'discover peers on the LAN by mDNS' },
  'swarm-key': { kind: 'string', default: '', arg: 'file', help: 'private network: only peers with this libp2p swarm key file can connect' },
  'allow-peers': { kind: 'string', default: '', arg: 'file', help: 'permissioned network: only the peer ids in this file (one per line) take part; quorums are majorities of them' },
  'print-peer-id': { kind: 'boolean', default: false, help: 'print the peer id of the identity in --data-dir (creating it if needed) and exit' },
  gpu: { kind: 'boolean', default: false, help: 'train with @tensorflow/tfjs-node-gpu (falls back to the CPU, saying so)' },
  cpu: { kind: 'boolean', default: false, help: 'never use the GPU' },
  'heartbeat-ms': { kind: 'integer', default: 1000, arg: 'ms', help: 'heartbeat interval', check: positive },
  'lease-ms': { kind: 'integer', default: 5000, arg: 'ms', help: 'a leader or peer silent this long is considered gone', check: positive },
  'round-timeout': { kind: 'integer', default: 600, arg: 's', help: 'longest a round may wait for updates, in seconds', check: positive },
  'transfer-timeout': { kind: 'integer', default: 60, arg: 's', help: 'longest one transfer of a model or update from one peer may take, in seconds; then the next peer is asked', check: positive },
  'max-peers-per-ip': { kind: 'integer', default: 16, arg: 'n', help: 'distinct peer ids accepted from one IP address at once (0: no bound)', check: (v: number) => v >= 0 ? undefined : 'must be 0 or more' },
  'hint-dials': { kind: 'integer', default: 3, arg: 'n', help: 'dials of an address named in a heartbeat, per hour, unless it answers as the peer that named it', check: positive },
  'status-connections': { kind: 'integer', default: 64, arg: 'n', help: 'connections the status API serves at once; more are refused until some close', check: positive },
  'max-blob-streams': { kind: 'integer', default: 16, arg: 'n', help: 'model and update transfers one peer may request from this one at once', check: positive },
  'min-transfer-rate': { kind: 'integer', default: 64, arg: 'KiB/s', help: 'a peer that sends a model or update slower than this (after 5 s) is left for the next one (0: no minimum)', check: (v: number) => v >= 0 ? undefined : 'must be 0 or more' },
  export: { kind: 'string', default: '', arg: 'dir', help: 'after every finished round, write the model in TensorFlow.js\'s layers format (model.json + weights.bin) here' },
  'exit-when-done': { kind: 'boolean', default: false, help: 'exit once training has finished' },
  'json-logs': { kind: 'boolean', default: false, help: 'log one JSON object per line' },
  help: { kind: 'boolean', default: false, help: 'show this help' }
} satisfies Record<string, OptionSpec>

export const MONITOR_OPTIONS = {
  bootstrap: NODE_OPTIONS.bootstrap,
  mdns: NODE_OPTIONS.mdns,
  host: NODE_OPTIONS.host,
  port: { ...NODE_OPTIONS.port, default: 0 },
  'swarm-key': NODE_OPTIONS['swarm-key'],
  'allow-peers': NODE_OPTIONS['allow-peers'],
  json: { kind: 'boolean', default: false, help: 'print one JSON object per line' },
  rounds: { kind: 'integer', default: 0, arg: 'n', help: 'exit after seeing this many rounds (0: run until training finishes)' },
  help: NODE_OPTIONS.help
} satisfies Record<string, OptionSpec>

/** `dml-node export`: the newest checkpoint's model in TensorFlow.js's layers format. */
export const EXPORT_OPTIONS = {
  'data-dir': NODE_OPTIONS['data-dir'],
  out: { kind: 'string', default: '', arg: 'dir', help: 'where to write model.json and weights.bin (required)' },
  'model-module': NODE_OPTIONS['model-module'],
  help: NODE_OPTIONS.help
} satisfies Record<string, OptionSpec>

/** `dml-node evaluate` and `dml-node predict`: an exported model on a data set's test examples. */
export const EVALUATE_OPTIONS = {
  model: { kind: 'string', default: '', arg: 'dir', help: 'an exported model: the directory holding model.json (required)' },
  dataset: { ...NODE_OPTIONS.dataset, help: 'run on the test set of this data set: mnist, or idx:<dir>' },
  data: { ...NODE_OPTIONS.data, help: 'run on these examples instead (the formats of dml-node --data)' },
  samples: { kind: 'integer', default: 10000, arg: 'n', help: 'the first n examples', check: positive },
  json: { kind: 'boolean', default: false, help: 'print JSON' },
  help: NODE_OPTIONS.help
} satisfies Record<string, OptionSpec>

export type Options = Record<string, unknown>

function levenshtein (a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]; row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = row[j]; row[j] = next
    }
  }
  return row[b.length]
}

function unknown (name: string, specs: Record<string, OptionSpec>, where: string): ConfigError {
  const best = Object.keys(specs).map(k => ({ k, d: levenshtein(name, k) })).sort((a, b) => a.d - b.d)[0]
  const hint = best !== undefined && best.d <= Math.max(2, name.length / 3) ? `; did you mean --${best.k}?` : '; see --help'
  return new ConfigError(`unknown ${where} --${name}${hint}`)
}

function convert (name: string, spec: OptionSpec, raw: unknown): unknown {
  const bad = (why: string): ConfigError => new ConfigError(`--${name} ${why} (got ${JSON.stringify(raw)})`)
  let value: unknown
  switch (spec.kind) {
    case 'string':
      if (typeof raw !== 'string') throw bad('needs a value')
      value = raw
      break
    case 'number':
    case 'integer': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN
      if (!Number.isFinite(n)) throw bad('must be a number')
      if (spec.kind === 'integer' && !Number.isInteger(n)) throw bad('must be a whole number')
      value = n
      break
    }
    case 'boolean':
      if (typeof raw !== 'boolean') throw bad('is a switch: true or false')
      value = raw
      break
    case 'list':
      value = (Array.isArray(raw) ? raw : [raw]).map(v => { if (typeof v !== 'string') throw bad('needs string values'); return v })
      break
  }
  const problem = spec.check?.(value)
  if (problem !== undefined) throw bad(problem)
  return value
}

/** Parses argv against `specs`; reads --config when the specs have it. */
export function parseOptions (argv: string[], specs: Record<string, OptionSpec>): Options {
  const fromFlags: Options = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (!arg.startsWith('--') || arg === '--') throw new ConfigError(`unexpected argument "${arg}"; options start with --, see --help`)
    let name = arg.slice(2)
    let inline: string | undefined
    const eq = name.indexOf('=')
    if (eq >= 0) { inline = name.slice(eq + 1); name = name.slice(0, eq) }
    let negated = false
    // own properties only: "constructor" or "toString" must be unknown flags, not Object's
    const known = (n: string): boolean => Object.hasOwn(specs, n)
    if (!known(name) && name.startsWith('no-') && known(name.slice(3)) && specs[name.slice(3)].kind === 'boolean') { negated = true; name = name.slice(3) }
    if (!known(name)) throw unknown(name, specs, 'flag')
    const spec = specs[name]
    let raw: unknown
    if (spec.kind === 'boolean') {
      if (inline !== undefined) throw new ConfigError(`--${name} is a switch and takes no value`)
      raw = !negated
    } else {
      raw = inline ?? argv[++i]
      if (raw === undefined || (inline === undefined && String(raw).startsWith('--'))) throw new ConfigError(`--${name} needs a value: --${name} <${spec.arg ?? 'value'}>`)
    }
    const value = convert(name, spec, raw)
    fromFlags[name] = spec.kind === 'list' ? [...(fromFlags[name] as string[] ?? []), ...(value as string[])] : value
  }
  let fromFile: Options = {}
  if (typeof fromFlags.config === 'string' && fromFlags.config !== '') fromFile = readConfigFile(fromFlags.config, specs)
  const options: Options = {}
  for (const [name, spec] of Object.entries(specs)) options[name] = fromFlags[name] ?? fromFile[name] ?? spec.default
  return options
}

function readConfigFile (path: string, specs: Record<string, OptionSpec>): Options {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`)
  }
  return parseConfigText(text, path, specs)
}

/** The options in a config file's text (JSON: flag names or camelCase as keys); a ConfigError names what is wrong. */
export function parseConfigText (text: string, path: string, specs: Record<string, OptionSpec>): Options {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`)
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`config file ${path} must hold a JSON object`)
  const out: Options = {}
  for (const [key, raw] of Object.entries(parsed)) {
    // accept camelCase keys too: {"localEpochs": 2} is --local-epochs 2
    const name = key.replace(/[A-Z]/g, c => `-${c.toLowerCase()}`)
    if (!Object.hasOwn(specs, name) || name === 'config' || name === 'help') throw unknown(name, specs, `key in ${path}:`)
    out[name] = convert(name, specs[name], raw)
  }
  return out
}

export function helpText (command: string, summary: string, specs: Record<string, OptionSpec>): string {
  const lines = [`Usage: ${command} [options]`, '', summary, '', 'Options:']
  for (const [name, spec] of Object.entries(specs)) {
    const flag = spec.kind === 'boolean' ? `--${name}` : `--${name} <${spec.arg ?? 'value'}>`
    const def = spec.kind === 'boolean' ? (spec.default === true ? ' (on; --no-' + name + ' turns it off)' : '')
      : (Array.isArray(spec.default) ? '' : spec.default === '' ? '' : ` (default: ${String(spec.default)})`)
    lines.push(`  ${flag.padEnd(28)} ${spec.help}${def}`)
  }
  return lines.join('\n')
}

/** Parses "i/n" as a shard. */
export function parseShard (value: string): [number, number] {
  const m = /^(\d+)\/(\d+)$/.exec(value)
  if (m === null || Number(m[2]) < 1 || Number(m[1]) >= Number(m[2])) throw new ConfigError(`--shard must be i/n with 0 <= i < n, e.g. 0/3 (got "${value}")`)
  return [Number(m[1]), Number(m[2])]
}

/** Reads an allow-list: one peer id per line; blank lines and # comments are skipped. */
export function readAllowList (path: string): Set<string> {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError(`cannot read --allow-peers ${path}: ${(err as Error).message}`)
  }
  const allowed = new Set<string>()
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim()
    if (line === '') return
    try {
      allowed.add(peerIdFromString(line).toString())
    } catch {
      throw new ConfigError(`--allow-peers ${path}, line ${i + 1}: "${line.slice(0, 80)}" is not a peer id (one per line, as a node prints it)`)
    }
  })
  if (allowed.size === 0) throw new ConfigError(`--allow-peers ${path} names no peer id`)
  return allowed
}

/** Reads a libp2p swarm key file (/key/swarm/psk/1.0.0/, /base16/, 64 hex digits). */
export function readSwarmKey (path: string): Uint8Array {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError(`cannot read --swarm-key ${path}: ${(err as Error).message}`)
  }
  const lines = text.split(/\r?\n/)
  if (lines[0] !== '/key/swarm/psk/1.0.0/' || lines[1] !== '/base16/' || !/^[0-9a-fA-F]{64}$/.test(lines[2] ?? '')) {
    throw new ConfigError(`--swarm-key ${path} is not a libp2p swarm key: expected the lines "/key/swarm/psk/1.0.0/", "/base16/" and 64 hex digits (see the README, Security)`)
  }
  return new TextEncoder().encode(`${lines[0]}\n${lines[1]}\n${lines[2].toLowerCase()}`)
}
