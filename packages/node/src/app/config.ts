// Command-line flags, environment variables and the config file. One table describes every
// option: its flag, type, default and help; the flag is parsed by yargs, the variable is DML_ and
// the flag's name in capitals (--local-epochs: DML_LOCAL_EPOCHS), the config file's key is the
// flag's name. Flags override variables, which override the config file, which overrides the
// defaults. An unknown flag or key, or a bad value, is an error that names the option and, for a
// typo, the right one.
import { readFileSync } from 'node:fs'
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import yargs, { type Argv } from 'yargs'
import { ConfigError } from './errors.ts'
import { LOG_LEVELS } from '../log.ts'
// the data module alone: the monitor reads these options too, and has no use for TensorFlow.js
import { COMPRESSIONS, isCompression, MAX_HEARTBEAT_EVERY_MS, parseInputShape } from '@dml/protocol'
import { PARTITION_FORMS, parsePartition } from '@dml/trainer/data'
import { isOptimizer, LR_SCHEDULE_FORMS, OPTIMIZERS, parseLrSchedule } from '@dml/trainer/local-strategy'
import { isServerOptimizer, SERVER_OPTIMIZERS } from '@dml/trainer/server-optimizer'

/** The first line of an error's message: what a one-line complaint about an option quotes. */
export function firstLine (err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0]
}


type Kind = 'string' | 'number' | 'integer' | 'boolean' | 'list'

export interface OptionSpec {
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

/** Why `addr` can't be announced as this peer's address, or undefined when it can. */
export function announceProblem (addr: string): string | undefined {
  let components
  try {
    components = multiaddr(addr).getComponents()
  } catch (err) {
    return `is not a multiaddr (${(err as Error).message}); expected one such as /ip4/203.0.113.7/tcp/4001`
  }
  if (!components.some(c => c.name === 'tcp')) return 'names no TCP port; expected one such as /ip4/203.0.113.7/tcp/4001'
  if (components.some(c => c.name === 'p2p')) return 'names a peer id: announce the address alone, /ip4/.../tcp/... (the peer id is added)'
  return undefined
}
const announceList = (v: string[]): string | undefined => v.map(announceProblem).find(p => p !== undefined)

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
  lr: { kind: 'number', default: 0.04, arg: 'x', help: 'local learning rate (of round 1, with --lr-schedule)', check: positive },
  'lr-schedule': { kind: 'string', default: 'constant', arg: 'spec', help: `the local learning rate over rounds: ${LR_SCHEDULE_FORMS}`, check: (v: string) => { try { parseLrSchedule(v) } catch (err) { return (err as Error).message } } },
  optimizer: { kind: 'string', default: 'momentum', arg: 'name', help: 'local optimizer: momentum (0.9), sgd (try --lr 0.3) or adam (try --lr 0.001); its state starts afresh every round', check: (v: string) => isOptimizer(v) ? undefined : `must be one of ${OPTIMIZERS.join(', ')}` },
  'prox-mu': { kind: 'number', default: 0, arg: 'mu', help: 'FedProx: pull local training towards the round\'s model with weight mu (0: off; try 0.01 on non-IID data)', check: (v: number) => v >= 0 && v <= 1000 ? undefined : 'must be from 0 to 1000' },
  aggregation: { kind: 'string', default: 'fedavg', arg: 'name', help: 'aggregation strategy: fedavg, median, trimmed-mean, krum, multi-krum or clipped-mean (see docs/security.md)' },
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
  'ws-port': { kind: 'string', default: '0', arg: 'n|off', help: 'libp2p WebSockets port, where browsers connect (0 picks a free one; the status API lists it), or off', check: (v: string) => v === 'off' || (/^\d+$/.test(v) && Number(v) <= 65535) ? undefined : 'must be a port number (0-65535, 0 picks a free one) or off' },
  'http-port': { kind: 'integer', default: 5000, arg: 'n', help: 'status API port (GET /api/status)', check: port },
  'data-dir': { kind: 'string', default: '.dml', arg: 'dir', help: 'where the identity key and checkpoints live' },
  bootstrap: { kind: 'list', default: [], arg: 'multiaddr', help: 'peer to connect to, /ip4/.../tcp/.../p2p/... (repeatable)', check: bootstrapList },
  mdns: { kind: 'boolean', default: true, help: 'discover peers on the LAN by mDNS' },
  relay: { kind: 'boolean', default: false, help: 'relay for members that cannot reach each other (behind NAT): give it to a peer the others can reach' },
  announce: { kind: 'list', default: [], arg: 'multiaddr', help: 'the address others dial this peer at, /ip4/.../tcp/... (a public address forwarded to it; repeatable)', check: announceList },
  'swarm-key': { kind: 'string', default: '', arg: 'file', help: 'private network: only peers with this libp2p swarm key file can connect' },
  'tls-cert': { kind: 'string', default: '', arg: 'file', help: 'a PEM certificate (with --tls-key): the dashboard, the /train page and WebSockets over TLS (https, wss), as a page on https needs' },
  'tls-key': { kind: 'string', default: '', arg: 'file', help: 'the PEM private key of --tls-cert' },
  'allow-peers': { kind: 'string', default: '', arg: 'file', help: 'permissioned network: only the peer ids in this file (one per line) take part; quorums are majorities of them' },
  gpu: { kind: 'boolean', default: false, help: 'train with @tensorflow/tfjs-node-gpu (falls back to the CPU, saying so)' },
  cpu: { kind: 'boolean', default: false, help: 'never use the GPU' },
  threads: { kind: 'integer', default: 0, arg: 'n', help: 'threads that train (0: one per core; 1 with a GPU)', check: (v: number) => v >= 0 && v <= 256 ? undefined : 'must be from 0 (one per core) to 256' },
  'heartbeat-ms': { kind: 'integer', default: 1000, arg: 'ms', help: 'heartbeat interval (a follower of more than 8 peers beats less often)', check: (v: number) => v >= 1 && v <= MAX_HEARTBEAT_EVERY_MS ? undefined : `must be from 1 to ${MAX_HEARTBEAT_EVERY_MS} (a minute)` },
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
  'log-level': { kind: 'string', default: 'info', arg: 'level', help: 'info; warn (warnings only); or debug (also TensorFlow\'s native log lines, quiet otherwise)', check: (v: string) => (LOG_LEVELS as readonly string[]).includes(v) ? undefined : `must be one of ${LOG_LEVELS.join(', ')}` }
} satisfies Record<string, OptionSpec>

export const MONITOR_OPTIONS = {
  bootstrap: NODE_OPTIONS.bootstrap,
  mdns: NODE_OPTIONS.mdns,
  host: NODE_OPTIONS.host,
  port: { ...NODE_OPTIONS.port, default: 0 },
  'swarm-key': NODE_OPTIONS['swarm-key'],
  'allow-peers': NODE_OPTIONS['allow-peers'],
  json: { kind: 'boolean', default: false, help: 'print one JSON object per line' },
  lines: { kind: 'boolean', default: false, help: 'print a line per event even on a terminal (where the default is a live view redrawn in place)' },
  rounds: { kind: 'integer', default: 0, arg: 'n', help: 'exit after seeing this many rounds (0: run until training finishes)' }
} satisfies Record<string, OptionSpec>

/** `dml-node keygen`: this peer's identity. */
export const KEYGEN_OPTIONS = {
  'data-dir': NODE_OPTIONS['data-dir']
} satisfies Record<string, OptionSpec>

/** `dml-node export`: the newest checkpoint's model in TensorFlow.js's layers format. */
export const EXPORT_OPTIONS = {
  'data-dir': NODE_OPTIONS['data-dir'],
  out: { kind: 'string', default: '', arg: 'dir', help: 'where to write model.json and weights.bin (required)' },
  'model-module': NODE_OPTIONS['model-module']
} satisfies Record<string, OptionSpec>

/** `dml-node evaluate` and `dml-node predict`: an exported model on a data set's test examples. */
export const EVALUATE_OPTIONS = {
  model: { kind: 'string', default: '', arg: 'dir', help: 'an exported model: the directory holding model.json (required)' },
  dataset: { ...NODE_OPTIONS.dataset, help: 'run on the test set of this data set: mnist, or idx:<dir>' },
  data: { ...NODE_OPTIONS.data, help: 'run on these examples instead (the formats of dml-node --data)' },
  samples: { kind: 'integer', default: 10000, arg: 'n', help: 'the first n examples', check: positive },
  json: { kind: 'boolean', default: false, help: 'print JSON' }
} satisfies Record<string, OptionSpec>

export type Options = Record<string, unknown>

export function levenshtein (a: string, b: string): number {
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

/** What an option's value is called in a message: the flag, or the variable it came from. */
function convert (name: string, spec: OptionSpec, raw: unknown, where = `--${name}`): unknown {
  const bad = (why: string): ConfigError => new ConfigError(`${where} ${why} (got ${JSON.stringify(raw)})`)
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

/** The environment variable of option `name`: DML_ and the name in capitals (--local-epochs: DML_LOCAL_EPOCHS). */
export function envName (name: string): string {
  return `DML_${name.toUpperCase().replace(/-/g, '_')}`
}

/** DML_* variables that are dml's own but no option's: the bins', the tests' and the benchmarks'. */
const OWN_VARIABLES = /^DML_(FROM_SOURCES|FROM_NODE_PACKAGE|CHROMIUM|REFERENCE|REFERENCE_CACHE|TEST_[A-Z0-9_]+|BENCH_[A-Z0-9_]+)$/

/**
 * A warning for each DML_* variable in `env` that no dml command reads (a mistyped DML_BOOSTRAP
 * would be ignored without a word), naming the variable it is closest to.
 */
export function unknownVariables (env: Record<string, string | undefined>): string[] {
  const names = new Set([NODE_OPTIONS, MONITOR_OPTIONS, EXPORT_OPTIONS, EVALUATE_OPTIONS, KEYGEN_OPTIONS].flatMap(specs => Object.keys(specs).map(envName)))
  return Object.keys(env).filter(v => v.startsWith('DML_') && !names.has(v) && !OWN_VARIABLES.test(v)).sort().map(v => {
    const close = [...names].map(n => ({ n, d: levenshtein(n, v) })).sort((a, b) => a.d - b.d)[0]
    return `${v} is no dml option's variable: it is ignored${close !== undefined && close.d <= 3 ? `; did you mean ${close.n}?` : ''}`
  })
}

/** A variable's text as the option's raw value: lists split at commas or spaces, switches from true/false (1/0, yes/no). */
function fromEnv (name: string, spec: OptionSpec, text: string): unknown {
  if (spec.kind === 'list') return text.split(/[\s,]+/).filter(v => v !== '')
  if (spec.kind !== 'boolean') return text
  const t = text.trim().toLowerCase()
  if (['1', 'true', 'yes', 'on'].includes(t)) return true
  if (['0', 'false', 'no', 'off', ''].includes(t)) return false
  throw new ConfigError(`${envName(name)} (--${name}) is a switch: true or false (got ${JSON.stringify(text)})`)
}

/** How yargs reads flags for convert(): values stay strings, names stay as written, repeats make lists. */
const PARSER_CONFIGURATION = {
  'camel-case-expansion': false,
  'dot-notation': false,
  'parse-numbers': false,
  'parse-positional-numbers': false,
  'duplicate-arguments-array': true,
  'strip-aliased': true,
  'boolean-negation': true
} as const

/** Declares the options of `specs` on a yargs instance (with their help, the default and the variable). */
export function declareOptions (y: Argv, specs: Record<string, OptionSpec>): Argv {
  for (const [name, spec] of Object.entries(specs)) {
    const def = spec.kind === 'boolean' ? (spec.default === true ? 'on; --no-' + name + ' turns it off' : undefined)
      : Array.isArray(spec.default) || spec.default === '' ? undefined : String(spec.default)
    y = y.option(name, {
      type: spec.kind === 'boolean' ? 'boolean' : 'string',
      requiresArg: spec.kind !== 'boolean',
      describe: `${spec.help}${def === undefined ? '' : ` (default: ${def})`} [${envName(name)}]`
    })
  }
  return y
}

/** The flag yargs names in an error, as the user typed it (`--name`, `--no-name`, `-x`), if it was typed as a flag. */
function typed (name: string, argv: string[]): string | undefined {
  return ['--', '--no-', '-'].map(dashes => `${dashes}${name}`).find(flag => argv.some(a => a === flag || a.startsWith(`${flag}=`)))
}

/** yargs's complaint about argv, as a ConfigError that names the option (and, for a typo, the right one). */
function parseError (message: string, argv: string[], specs: Record<string, OptionSpec>): ConfigError {
  const unknownArg = /^Unknown arguments?: (.+)$/.exec(message)
  if (unknownArg !== null) {
    const name = unknownArg[1].split(', ')[0]
    const flag = typed(name, argv)
    if (flag === undefined) return new ConfigError(`unexpected argument "${name}"; options start with --, see --help`)
    return flag.startsWith('--') ? unknown(name, specs, 'flag') : new ConfigError(`unknown flag ${flag}; flags start with --, see --help`)
  }
  const noValue = /^Not enough arguments following: (.+)$/.exec(message)
  if (noValue !== null && Object.hasOwn(specs, noValue[1])) return new ConfigError(`--${noValue[1]} needs a value: --${noValue[1]} <${specs[noValue[1]].arg ?? 'value'}>`)
  return new ConfigError(message)
}

/**
 * Parses argv against `specs` (flags by yargs, strictly), then takes each option from its flag, its
 * variable in `env`, the --config file (when the specs have one), or its default, in that order.
 * `help` is true when -h or --help was given.
 */
export function parseOptions (argv: string[], specs: Record<string, OptionSpec>, env: Record<string, string | undefined> = {}): Options {
  // yargs reads --switch=anything-but-true as false: a switch given a value must say true or false
  for (const arg of argv) {
    const m = /^--([^=]+)=(.*)$/.exec(arg)
    if (m !== null && Object.hasOwn(specs, m[1]) && specs[m[1]].kind === 'boolean' && m[2] !== 'true' && m[2] !== 'false') {
      throw new ConfigError(`--${m[1]} is a switch: --${m[1]} or --no-${m[1]} (got ${JSON.stringify(m[2])})`)
    }
  }
  let parsed: Record<string, unknown>
  try {
    parsed = declareOptions(yargs(argv).help(false).version(false), specs)
      .option('help', { alias: 'h', type: 'boolean' })
      .parserConfiguration(PARSER_CONFIGURATION)
      .strict().exitProcess(false)
      .fail((message: string | null, err: Error | null) => { throw parseError(message ?? err?.message ?? 'cannot parse the command line', argv, specs) })
      .parseSync() as Record<string, unknown>
  } catch (err) {
    if (err instanceof ConfigError) throw err
    throw new ConfigError(firstLine(err))
  }
  const fromFlags: Options = {}
  for (const [name, spec] of Object.entries(specs)) {
    const raw = parsed[name]
    if (raw === undefined) continue
    // a flag given twice: a list takes both, anything else the last
    fromFlags[name] = convert(name, spec, spec.kind !== 'list' && Array.isArray(raw) ? raw.at(-1) : raw)
  }
  const fromEnvironment: Options = {}
  for (const [name, spec] of Object.entries(specs)) {
    const text = env[envName(name)]
    if (text !== undefined && fromFlags[name] === undefined) fromEnvironment[name] = convert(name, spec, fromEnv(name, spec, text), `${envName(name)} (--${name})`)
  }
  const configPath = fromFlags.config ?? fromEnvironment.config
  let fromFile: Options = {}
  if (typeof configPath === 'string' && configPath !== '') fromFile = readConfigFile(configPath, specs)
  const options: Options = { help: parsed.help === true }
  for (const [name, spec] of Object.entries(specs)) options[name] = fromFlags[name] ?? fromEnvironment[name] ?? fromFile[name] ?? spec.default
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
    if (!Object.hasOwn(specs, name) || name === 'config') throw unknown(name, specs, `key in ${path}:`)
    out[name] = convert(name, specs[name], raw)
  }
  return out
}

/** yargs 17.7+ has usageConfiguration; @types/yargs does not know it yet */
type WithUsageConfiguration = Argv & { usageConfiguration: (config: { 'hide-types': boolean }) => Argv }

export interface HelpExtras {
  /** subcommands to list, name and summary */
  commands?: Array<[string, string]>
  /** command lines to show, with what each does */
  examples?: Array<[string, string]>
  /** it takes --version (a command with subcommands always does) */
  version?: boolean
}

/** The help of `command` (by yargs): usage, summary, commands, options with defaults and variables, examples. */
export async function helpText (command: string, summary: string, specs: Record<string, OptionSpec>, extras: HelpExtras = {}): Promise<string> {
  let y = (declareOptions(yargs([]).scriptName(command), specs) as WithUsageConfiguration)
    .usageConfiguration({ 'hide-types': true }) // values are strings that the table checks, not yargs's types
    .usage(`Usage: ${command}${extras.commands === undefined ? '' : ' [command]'} [options]\n\n${summary}`)
    .help('help').alias('h', 'help').version(false)
    .wrap(Math.min(120, process.stdout.columns ?? 100))
  if (extras.commands !== undefined || extras.version === true) y = y.option('version', { alias: 'v', type: 'boolean', describe: 'print dml\'s version' })
  for (const [name, what] of extras.commands ?? []) y = y.command(name, what)
  for (const [line, what] of extras.examples ?? []) y = y.example(line, what)
  y = y.epilog(`Every option can also be set in the environment (the name in [brackets]; flags win) or in a JSON file named by --config${Object.hasOwn(specs, 'config') ? '' : ' of dml-node'}.`)
  return await y.getHelp()
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
/** A certificate and its key, PEM: what --tls-cert and --tls-key name. */
export interface Tls { cert: string, key: string }

/** --tls-cert and --tls-key: both or neither; a PEM certificate and the private key that belongs to it. */
export function readTls (certPath: string, keyPath: string): Tls | undefined {
  if (certPath === '' && keyPath === '') return undefined
  if (certPath === '' || keyPath === '') throw new ConfigError(`--${certPath === '' ? 'tls-key' : 'tls-cert'} needs --${certPath === '' ? 'tls-cert' : 'tls-key'}: a certificate and its private key, both PEM files`)
  const read = (flag: string, path: string): string => {
    try {
      return readFileSync(path, 'utf8')
    } catch (err) {
      throw new ConfigError(`cannot read --${flag} ${path}: ${(err as Error).message}`)
    }
  }
  const [cert, key] = [read('tls-cert', certPath), read('tls-key', keyPath)]
  let certificate: X509Certificate
  try {
    certificate = new X509Certificate(cert)
  } catch (err) {
    throw new ConfigError(`--tls-cert ${certPath} is not a PEM certificate (${(err as Error).message}): expected "-----BEGIN CERTIFICATE-----"`)
  }
  let privateKey: ReturnType<typeof createPrivateKey>
  try {
    privateKey = createPrivateKey(key)
  } catch (err) {
    throw new ConfigError(`--tls-key ${keyPath} is not a PEM private key (${(err as Error).message}): expected "-----BEGIN PRIVATE KEY-----"`)
  }
  if (!certificate.checkPrivateKey(privateKey)) throw new ConfigError(`--tls-key ${keyPath} is not the key of --tls-cert ${certPath}: pass the key the certificate was made for`)
  return { cert, key }
}

export function readSwarmKey (path: string): Uint8Array {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError(`cannot read --swarm-key ${path}: ${(err as Error).message}`)
  }
  const lines = text.split(/\r?\n/)
  if (lines[0] !== '/key/swarm/psk/1.0.0/' || lines[1] !== '/base16/' || !/^[0-9a-fA-F]{64}$/.test(lines[2] ?? '')) {
    throw new ConfigError(`--swarm-key ${path} is not a libp2p swarm key: expected the lines "/key/swarm/psk/1.0.0/", "/base16/" and 64 hex digits (see docs/security.md)`)
  }
  return new TextEncoder().encode(`${lines[0]}\n${lines[1]}\n${lines[2].toLowerCase()}`)
}
