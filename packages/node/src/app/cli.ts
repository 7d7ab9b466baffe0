// The dml-node command and its subcommands: parse the flags into a peer's options and start it
// (startPeer, peer.ts), or run keygen, export, evaluate, predict, completion. Every mistake a user
// can make here (a flag, a path, an address) ends in one line that names the option, never a
// stack trace.
import { resolve } from 'node:path'
import yargs, { type Argv } from 'yargs'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { OWN_DATA, type Compression, type Task } from '@dml/protocol'
import { defaultServerLr, type ServerOptimizerName } from '@dml/trainer'
import { createLogger, recordingTo, RecentEvents, type LogLevel } from '../log.ts'
import { declareOptions, EVALUATE_OPTIONS, EXPORT_OPTIONS, firstLine, helpText, KEYGEN_OPTIONS, levenshtein, NODE_OPTIONS, parseOptions, parseShard, readAllowList, readSwarmKey, readTls, unknownVariables, type OptionSpec, type Options, type Tls } from './config.ts'
import { ConfigError, isExpected } from './errors.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { runEvaluate, runExport, runPredict } from './model-commands.ts'
import { startPeer, type PeerOptions } from './peer.ts'
import { version } from './version.ts'

const SUMMARY = 'A dml peer: finds other peers (mDNS, --bootstrap), elects a coordinator, and trains one model with them.'

interface Command {
  summary: string
  /** the options it takes (for completion) */
  specs: Record<string, OptionSpec>
  run: (argv: string[]) => Promise<number>
}

/** `dml-node <command>`; `start` when none is named. */
const COMMANDS: Record<string, Command> = {
  start: { summary: 'start a peer and train with the others (the default command)', specs: NODE_OPTIONS, run: runStart },
  keygen: { summary: 'create this peer\'s identity in --data-dir if it has none, and print its peer id', specs: KEYGEN_OPTIONS, run: runKeygen },
  export: { summary: 'write the newest checkpoint\'s model in TensorFlow.js\'s layers format', specs: EXPORT_OPTIONS, run: runExport },
  evaluate: { summary: 'measure an exported model\'s accuracy on test examples', specs: EVALUATE_OPTIONS, run: runEvaluate },
  predict: { summary: 'print an exported model\'s predictions for test examples', specs: EVALUATE_OPTIONS, run: runPredict },
  completion: { summary: 'print a bash/zsh completion script (dml-node completion >> ~/.bashrc)', specs: {}, run: runCompletion }
}

const EXAMPLES: Array<[string, string]> = [
  ['dml-node', 'train with the peers this one finds on the LAN (mDNS)'],
  ['dml-node --bootstrap /ip4/10.0.0.5/tcp/4001/p2p/12D3...', 'join a network through one of its peers'],
  ['dml-node --gpu --model cnn --rounds 50', 'train the CNN on an NVIDIA GPU'],
  ['DML_DATA=./my-images dml-node', 'train on this peer\'s own examples, set in the environment'],
  ['dml-node export --out ./model', 'write the trained model for TensorFlow.js']
]

export async function runNode (argv: string[]): Promise<number> {
  for (const warning of unknownVariables(process.env)) console.error(`warning: ${warning}`)
  const [first] = argv
  if (first === '--version' || first === '-v') {
    console.log(version())
    return 0
  }
  if (first === '--get-yargs-completions') {
    await completionParser(argv).parseAsync()
    return 0
  }
  const name = first === undefined || first.startsWith('-') ? 'start' : first
  if (!Object.hasOwn(COMMANDS, name)) {
    const names = Object.keys(COMMANDS)
    const close = names.find(n => levenshtein(n, name) <= 2)
    throw new ConfigError(`unknown command "${name}"${close === undefined ? '' : `; did you mean ${close}?`} (commands: ${names.join(', ')}; options start with --)`)
  }
  return await COMMANDS[name].run(first === name ? argv.slice(1) : argv)
}

/** The whole command line for yargs's shell completion: the commands and each one's flags. */
function completionParser (argv: string[]): Argv {
  let y = yargs(argv).scriptName('dml-node').completion('completion', false).help(false).version(false)
  for (const [name, command] of Object.entries(COMMANDS)) {
    y = y.command(name === 'start' ? ['start', '$0'] : name, command.summary, (sub: Argv) => declareOptions(sub, command.specs))
  }
  return y
}

async function runCompletion (argv: string[]): Promise<number> {
  const o = parseOptions(argv, {}, process.env)
  if (o.help === true) {
    console.log(await helpText('dml-node completion', 'Prints a completion script for bash and zsh: add it to ~/.bashrc or ~/.zshrc, or source it.', {}))
    return 0
  }
  completionParser([]).showCompletionScript()
  return 0
}

async function runKeygen (argv: string[]): Promise<number> {
  const o = parseOptions(argv, KEYGEN_OPTIONS, process.env)
  if (o.help === true) {
    console.log(await helpText('dml-node keygen', 'Creates this peer\'s identity (identity.key in --data-dir) if it has none, and prints its peer id: what --allow-peers lists and /p2p/ addresses name.', KEYGEN_OPTIONS))
    return 0
  }
  const { key } = await loadOrCreateIdentity(resolve(o['data-dir'] as string))
  console.log(peerIdFromPrivateKey(key).toString())
  return 0
}

/** How long stopping may take before the process exits without the step that hangs (a network library's close, say). */
const STOP_WITHIN_MS = 10_000

async function runStart (argv: string[]): Promise<number> {
  const o = parseOptions(argv, NODE_OPTIONS, process.env)
  if (o.help === true) {
    console.log(await helpText('dml-node', SUMMARY, NODE_OPTIONS, { commands: Object.entries(COMMANDS).map(([name, c]) => [name, c.summary]), examples: EXAMPLES }))
    return 0
  }
  const options = peerOptions(o)
  const recent = new RecentEvents()
  const log = recordingTo(createLogger(o['json-logs'] as boolean, '[dml]', process.stdout, o['log-level'] as LogLevel), recent)
  // the last resort: a stray rejection inside a network library must not take the peer down silently
  process.on('unhandledRejection', (err) => {
    log.warn('unhandled-rejection', { error: String(err) }, `unhandled rejection: ${(err as Error)?.stack ?? String(err)}`)
  })
  const peer = await startPeer(options, log, recent)
  const onSignal = (): void => { peer.stop(STOP_WITHIN_MS).then(() => process.exit(0), (err: unknown) => { console.error(`error while stopping: ${firstLine(err)}`); process.exit(1) }) }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  await peer.node.whenFinished()
  if (o['exit-when-done'] !== true) {
    await new Promise(() => {}) // serve the status and the model until stopped by a signal
  }
  // let the others fetch the final model from us before we go
  const drainStart = performance.now()
  await peer.node.drain(15_000)
  const drainedMs = Math.round(performance.now() - drainStart)
  log.info('drained', { ms: drainedMs }, `every live peer holds the final model (${drainedMs} ms)`)
  await peer.stop(STOP_WITHIN_MS)
  return 0
}

/** dml-node's flags as a peer's options: files read, values parsed, contradictions refused. */
const tlsOption = (tls: Tls | undefined): { tls?: Tls } => tls === undefined ? {} : { tls }

export function peerOptions (o: Options): PeerOptions {
  if (o.gpu === true && o.cpu === true) throw new ConfigError('--gpu and --cpu contradict each other; pass one')
  const ownData = o.data === '' ? undefined : o.data as string
  const task: Task = {
    model: o.model as string,
    // a peer's own data stays its own: not even its path is told to others
    dataset: ownData === undefined ? o.dataset as string : OWN_DATA,
    input: o.input as string,
    classes: o.classes as number,
    inputScale: o['input-scale'] as number,
    lr: o.lr as number,
    lrSchedule: o['lr-schedule'] as string,
    optimizer: o.optimizer as string,
    proxMu: o['prox-mu'] as number,
    batchSize: o['batch-size'] as number,
    localEpochs: o['local-epochs'] as number,
    totalRounds: o.rounds as number,
    targetAccuracy: o['target-accuracy'] as number,
    strategy: {
      aggregation: o.aggregation as string,
      trim: o.trim as number,
      byzantine: o.byzantine as number,
      clip: o.clip as number,
      normBound: o['norm-bound'] as number,
      serverOptimizer: o['server-optimizer'] as string,
      serverLr: o['server-lr'] === 0 ? defaultServerLr(o['server-optimizer'] as ServerOptimizerName) : o['server-lr'] as number
    },
    evalSamples: o['eval-samples'] as number,
    partition: o.partition as string
  }
  const allowPeers = o['allow-peers'] as string
  return {
    task,
    ownData,
    holdout: o.holdout === '' ? (ownData === undefined ? 0 : 0.1) : Number(o.holdout),
    dataDir: o['data-dir'] as string,
    // training threads load the same modules: by absolute path, whatever their working directory
    modelModules: o['model-module'] === '' ? [] : [resolve(o['model-module'] as string)],
    device: o.gpu === true ? 'gpu' : o.cpu === true ? 'cpu' : 'auto',
    nativeLogs: o['log-level'] === 'debug',
    threads: o.threads as number,
    shard: o.shard === '' ? null : parseShard(o.shard as string),
    compression: o.compression as Compression,
    exportDir: o.export as string,
    minPeers: o['min-peers'] as number,
    heartbeatMs: o['heartbeat-ms'] as number,
    leaseMs: o['lease-ms'] as number,
    roundTimeoutMs: (o['round-timeout'] as number) * 1000,
    transferTimeoutMs: (o['transfer-timeout'] as number) * 1000,
    host: o.host as string,
    port: o.port as number,
    wsPort: o['ws-port'] === 'off' ? undefined : Number(o['ws-port']),
    httpPort: o['http-port'] as number,
    statusConnections: o['status-connections'] as number,
    bootstrap: o.bootstrap as string[],
    mdns: o.mdns as boolean,
    relay: o.relay as boolean,
    announce: o.announce as string[],
    swarmKey: o['swarm-key'] === '' ? undefined : readSwarmKey(o['swarm-key'] as string),
    ...tlsOption(readTls(o['tls-cert'] as string, o['tls-key'] as string)),
    allowed: allowPeers === '' ? undefined : { peers: readAllowList(allowPeers), file: allowPeers },
    minTransferRate: 1024 * (o['min-transfer-rate'] as number),
    maxPeersPerIp: o['max-peers-per-ip'] as number,
    maxBlobStreams: o['max-blob-streams'] as number,
    hintDials: o['hint-dials'] as number
  }
}

/** Runs a command's main, turning expected errors into one clear line and an exit code. */
export function main (run: (argv: string[]) => Promise<number>): void {
  run(process.argv.slice(2)).then(exitAfterOutput, (err: Error) => {
    const expected = isExpected(err)
    console.error(`error: ${expected ? err.message : err.stack ?? String(err)}`)
    exitAfterOutput(expected ? 2 : 1)
  })
}

/** Exits once stdout and stderr are flushed: process.exit alone cuts off output still queued for a pipe. */
function exitAfterOutput (code: number): void {
  let pending = 2
  const done = (): void => { if (--pending === 0) process.exit(code) }
  process.stdout.write('', done)
  process.stderr.write('', done)
}
