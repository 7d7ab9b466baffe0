// The dml-node command: parse options, pick a backend, start the host, the engine and the status
// API. Every mistake a user can make here (a flag, a path, an address) ends in one line that
// names the option, never a stack trace.
import { ConfigError, isExpected } from './errors.ts'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import yargs, { type Argv } from 'yargs'
import { encodeTensors, OWN_DATA, type Compression } from '@dml/protocol'
import { backendKey, defaultThreads, initBackend, registerModelModule, defaultServerLr, getStrategy, TrainingThreads, type ServerOptimizerName } from '@dml/trainer'
import { DataDirStore, loadLatestCheckpoint, loadVote, type Checkpoint } from '../state/checkpoint.ts'
import type { CheckpointStore } from '../state/replica.ts'
import { keySigner } from '../proof/certificates.ts'
import { declareOptions, EVALUATE_OPTIONS, EXPORT_OPTIONS, firstLine, helpText, KEYGEN_OPTIONS, levenshtein, NODE_OPTIONS, parseOptions, parseShard, readAllowList, readSwarmKey, type OptionSpec } from './config.ts'
import { lockDataDir } from './data-dir.ts'
import { startHost, type DmlHost } from '../net/host.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { createLogger, recordingTo, RecentEvents, type Logger, type LogLevel } from '../log.ts'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { lateHandlers } from '../net/network.ts'
import { DmlNode } from '../engine/node.ts'
import { DEFAULT_STATUS_LIMITS, leaderStatusUrl, startStatusServer } from './status.ts'
import { NodeMetrics } from './metrics.ts'
import { LocalTrainer } from '../round/trainer.ts'
import { exportCheckpoint, runEvaluate, runExport, runPredict } from './model-commands.ts'

const SUMMARY = 'A dml peer: finds other peers (mDNS, --bootstrap), elects a coordinator, and trains one model with them.'

/** dml's version: from the nearest package.json named dml above this module (the clone's root, or the installed package's). */
function version (): string {
  for (let dir = new URL('.', import.meta.url); ; dir = new URL('..', dir)) {
    try {
      const manifest = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string, version: string }
      if (manifest.name === 'dml') return manifest.version
    } catch {
      // no package.json here: look further up
    }
    if (dir.pathname === '/') return 'unknown'
  }
}

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

async function runStart (argv: string[]): Promise<number> {
  const o = parseOptions(argv, NODE_OPTIONS, process.env)
  if (o.help === true) {
    console.log(await helpText('dml-node', SUMMARY, NODE_OPTIONS, { commands: Object.entries(COMMANDS).map(([name, c]) => [name, c.summary]), examples: EXAMPLES }))
    return 0
  }
  if (o.gpu === true && o.cpu === true) throw new ConfigError('--gpu and --cpu contradict each other; pass one')
  const recent = new RecentEvents()
  const log = recordingTo(createLogger(o['json-logs'] as boolean, '[dml]', process.stdout, o['log-level'] as LogLevel), recent)
  // the last resort: a stray rejection inside a network library must not take the peer down silently
  process.on('unhandledRejection', (err) => {
    log.warn('unhandled-rejection', { error: String(err) }, `unhandled rejection: ${(err as Error)?.stack ?? String(err)}`)
  })
  const dataDir = resolve(o['data-dir'] as string)
  const lock = lockDataDir(dataDir)
  // training threads load the same modules: by absolute path, whatever their working directory
  const modelModules = o['model-module'] === '' ? [] : [resolve(o['model-module'] as string)]
  if (o['model-module'] !== '') {
    const path = o['model-module'] as string
    let names: string[]
    try {
      names = await registerModelModule(path)
    } catch (err) {
      throw new ConfigError(`cannot load --model-module ${path}: ${firstLine(err)}`)
    }
    log.info('models-registered', { names }, `registered models ${names.join(', ')} from ${path}`)
  }
  getStrategy(o.aggregation as string)
  const shard = o.shard === '' ? null : parseShard(o.shard as string)
  const swarmKey = o['swarm-key'] === '' ? undefined : readSwarmKey(o['swarm-key'] as string)
  const allowed = o['allow-peers'] === '' ? undefined : readAllowList(o['allow-peers'] as string)

  const backend = await initBackend(o.gpu === true ? 'gpu' : o.cpu === true ? 'cpu' : 'auto', { nativeLogs: o['log-level'] === 'debug' })
  if (backend.warning !== undefined) log.warn('gpu-unavailable', { warning: backend.warning }, backend.warning)
  log.info('backend', { backend: backend.backend, device: backend.device, source: backend.source }, `TensorFlow.js backend: ${backend.backend} on ${backend.device} (${backend.source})`)

  const ownData = o.data === '' ? undefined : o.data as string
  const task = {
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
  // fail now, not at the first round, on a data set that can't be read or a model that does not fit it
  const holdout = o.holdout === '' ? (ownData === undefined ? 0 : 0.1) : Number(o.holdout)
  // --threads 0: the cores, shared each round with the peers on this machine (NodeConfig.shareCores)
  const shareCores = o.threads === 0
  const threads = shareCores ? defaultThreads(backend.device) : o.threads as number
  const trainer = new LocalTrainer({ own: ownData, holdout }, new TrainingThreads(threads, backendKey(backend), modelModules, (err) => {
    log.warn('threads-failed', { error: firstLine(err) }, `training threads could not start (${firstLine(err)}); training on this thread alone`)
  }))
  try {
    await trainer.load(task)
  } catch (err) {
    throw new ConfigError(ownData === undefined ? `--dataset ${task.dataset}: ${firstLine(err)}` : firstLine(err))
  }
  log.info('data', { examples: trainer.examples, own: ownData !== undefined, holdout },
    ownData === undefined ? `data set ${task.dataset}${holdout > 0 ? `, ${100 * holdout}% of it held out to evaluate on` : ''}` : `own data: ${trainer.examples} examples to train on, ${100 * holdout}% held out to evaluate on`)
  let modelBytes: number
  try {
    // builds the model once: every model and update of this task has this size, the most a
    // transfer of one may bring
    modelBytes = encodeTensors(await trainer.initialWeights(task)).byteLength
  } catch (err) {
    throw new ConfigError(`--model ${task.model}: ${firstLine(err)}`)
  }

  const identity = await loadOrCreateIdentity(dataDir)
  const peerId = peerIdFromPrivateKey(identity.key).toString()
  if (allowed !== undefined && !allowed.has(peerId)) {
    throw new ConfigError(`this node's peer id ${peerId} is not in --allow-peers ${String(o['allow-peers'])}: add it, or it cannot take part`)
  }
  let corruptCheckpoints = 0
  const checkpoint = await loadLatestCheckpoint(dataDir, (err) => {
    corruptCheckpoints++
    log.warn('checkpoint-corrupt', { error: err.message }, `skipping corrupt checkpoint: ${err.message}`)
  })
  checkTask(checkpoint, task, dataDir)
  let voteLost = false
  const vote = await loadVote(dataDir, (err) => {
    voteLost = true
    log.warn('vote-corrupt', { error: err.message }, `the saved vote cannot be read (${err.message}): not voting or standing for a lease, then not in any term heard of meanwhile`)
  })

  const host = o.host as string
  const port = o.port as number
  const inbox = lateHandlers()
  const metrics = new NodeMetrics()
  const net = await listen(host, port, async () => await startHost({ metrics: metrics.libp2p(), privateKey: identity.key, host, port, bootstrap: o.bootstrap as string[], mdns: o.mdns as boolean, swarmKey, minTransferRate: 1024 * (o['min-transfer-rate'] as number), maxPeersPerIp: o['max-peers-per-ip'] as number, maxBlobStreams: o['max-blob-streams'] as number, hintDials: o['hint-dials'] as number, transferTimeoutMs: (o['transfer-timeout'] as number) * 1000 }, inbox.handlers))
  const dataDirStore = new DataDirStore(dataDir)
  const node = new DmlNode({
    task,
    minPeers: o['min-peers'] as number,
    expectsPeers: (o.bootstrap as string[]).length > 0,
    shard,
    heartbeatMs: o['heartbeat-ms'] as number,
    leaseMs: o['lease-ms'] as number,
    roundTimeoutMs: (o['round-timeout'] as number) * 1000,
    transferTimeoutMs: (o['transfer-timeout'] as number) * 1000,
    modelBytes,
    compression: o.compression as Compression,
    shareCores
  }, { net, trainer, backend, log, store: exportingStore(dataDirStore, o.export as string, log), votes: dataDirStore, signer: keySigner(peerId, identity.key), allowed })
  node.counts.add('checkpointsCorrupt', corruptCheckpoints)
  inbox.bind(node)
  node.start(checkpoint, voteLost ? 'lost' : vote)
  // the training threads load TensorFlow.js while the peers find each other; the first round waits for them
  // (with --threads 0, at the first round that needs them: peers sharing a machine train on one each)
  if (threads > 1 && !shareCores) {
    trainer.startThreads().then(
      (started) => { if (started) log.info('threads', { threads }, `training on ${threads} threads`) },
      (err: unknown) => { log.warn('threads-failed', { error: firstLine(err) }, `training threads: ${firstLine(err)}`) })
  }
  log.info('started', { peerId: node.peerId, addrs: net.listenAddrs(), identityCreated: identity.created, dataDir },
    `peer ${node.peerId} ${identity.created ? '(new identity)' : '(identity from ' + dataDir + ')'}`)
  for (const addr of net.listenAddrs()) log.info('listening', { addr }, `listening on ${addr}`)

  const httpPortOption = o['http-port'] as number
  metrics.follow(() => node.status())
  const status = async (): Promise<ReturnType<DmlNode['status']> & Record<string, unknown>> => {
    const s = node.status()
    return { ...s, leaderStatusUrl: leaderStatusUrl(s.isLeader ? net.listenAddrs() : s.leaderAddrs, httpPortOption), listenAddrs: net.listenAddrs(), bootstrap: net.bootstrapState(), limits: net.refused(), traffic: await metrics.traffic(), events: recent.list() }
  }
  let server
  try {
    let saidAt = -Infinity
    const onError = (err: Error): void => {
      // a failing snapshot fails every request and every push: said once a minute
      if (Date.now() - saidAt < 60_000) return
      saidAt = Date.now()
      log.warn('status-failed', { error: err.message }, `the status API could not make its answer: ${err.message}`)
    }
    server = await startStatusServer(status, host, httpPortOption, { ...DEFAULT_STATUS_LIMITS, maxConnections: o['status-connections'] as number }, { metrics, onError })
  } catch (err) {
    await node.stop()
    await net.stop()
    throw new ConfigError(`cannot serve the status API on ${host}:${httpPortOption} (${firstLine(err)}); pick another --http-port (0 picks a free one)`)
  }
  const address = server.address()
  const httpPort = typeof address === 'object' && address !== null ? address.port : httpPortOption
  log.info('status-api', { port: httpPort }, `dashboard on http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${httpPort}/ (status API on /api/status, metrics on /metrics)`)
  const lonely = watchBootstrap(net, log, 2 * (o['lease-ms'] as number))

  let stopping: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    stopping ??= (async () => {
      const took: Record<string, number> = {}
      const timed = async (what: string, step: () => Promise<void> | void): Promise<void> => {
        const start = performance.now()
        await step()
        took[what] = Math.round(performance.now() - start)
      }
      clearInterval(lonely)
      server.close()
      await timed('engineMs', async () => { await node.stop() })
      await timed('networkMs', async () => { await net.stop() })
      await timed('trainerMs', async () => { await trainer.close() })
      lock.release()
      log.info('stopped', took, `stopped (engine ${took.engineMs} ms, network ${took.networkMs} ms, trainer ${took.trainerMs} ms)`)
    })()
    await stopping
  }
  const onSignal = (): void => { stop().then(() => process.exit(0), (err: unknown) => { console.error(`error while stopping: ${firstLine(err)}`); process.exit(1) }) }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  await node.whenFinished()
  if (o['exit-when-done'] !== true) {
    await new Promise(() => {}) // serve the status and the model until stopped by a signal
  }
  // let the others fetch the final model from us before we go
  const drainStart = performance.now()
  await node.drain(15_000)
  const drainedMs = Math.round(performance.now() - drainStart)
  log.info('drained', { ms: drainedMs }, `every live peer holds the final model (${drainedMs} ms)`)
  await stop()
  return 0
}

/**
 * The checkpoint store, writing with every checkpoint (every finished round) the model's export to
 * `--export <dir>` too. An export that fails is said; the checkpoint stands.
 */
function exportingStore (store: CheckpointStore, dir: string, log: Logger): CheckpointStore {
  if (dir === '') return store
  const out = resolve(dir)
  return {
    save: async (checkpoint) => {
      await store.save(checkpoint)
      try {
        await exportCheckpoint(checkpoint, out)
        log.info('model-exported', { round: checkpoint.round, dir: out }, `exported round ${checkpoint.round} to ${out}`)
      } catch (err) {
        log.warn('export-failed', { round: checkpoint.round, error: firstLine(err) }, `could not export round ${checkpoint.round} to ${out}: ${firstLine(err)}`)
      }
    }
  }
}

/** Starts the host; an address that can't be listened on is an error naming --host or --port. */
async function listen (host: string, port: number, start: () => Promise<DmlHost>): Promise<DmlHost> {
  try {
    return await start()
  } catch (err) {
    const text = `${(err as NodeJS.ErrnoException).code ?? ''} ${String((err as Error).message)}`
    if (/EADDRINUSE|address already in use/i.test(text)) throw new ConfigError(`cannot listen on ${host}:${port}: the port is in use; pick another --port (0 picks a free one)`)
    if (/EADDRNOTAVAIL|address not available/i.test(text)) throw new ConfigError(`cannot listen on --host ${host}: no such address on this machine (0.0.0.0 listens on all of them)`)
    if (/EACCES|permission denied/i.test(text)) throw new ConfigError(`cannot listen on ${host}:${port}: permission denied; pick a --port above 1023`)
    throw err
  }
}

/** A checkpoint of another model or data set than the options name is refused, not overwritten. */
function checkTask (checkpoint: Checkpoint | undefined, task: { model: string, dataset: string }, dataDir: string): void {
  if (checkpoint === undefined) return
  const { model, dataset } = checkpoint.task
  if (model !== task.model || dataset !== task.dataset) {
    throw new ConfigError(`the checkpoint in ${dataDir} is of model "${model}" on "${dataset}", not "${task.model}" on "${task.dataset}": pass --model ${model} --dataset ${dataset}, or use another --data-dir`)
  }
}

/** While the node has no connection at all, says every `everyMs` which bootstrap peers it cannot reach and why. */
function watchBootstrap (net: DmlHost, log: Logger, everyMs: number): NodeJS.Timeout {
  return setInterval(() => {
    if (net.connectedPeers().length > 0) return
    for (const b of net.bootstrapState().filter(s => !s.connected)) {
      log.warn('bootstrap-unreachable', { addr: b.addr, error: b.error ?? null },
        `cannot reach bootstrap peer ${b.addr}${b.error === undefined ? '' : ` (${b.error})`}; this node is alone until it answers`)
    }
  }, everyMs)
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
