// The dml-node command: parse options, pick a backend, start the peer and its status API.
import { resolve } from 'node:path'
import { initBackend, registerModelModule, buildModel, getStrategy, loadDataset } from '@dml/trainer'
import { ConfigError, helpText, NODE_OPTIONS, parseOptions, parseShard, readSwarmKey } from './config.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { createLogger } from './log.ts'
import { DmlNode } from './runtime.ts'
import { startStatusServer } from './status.ts'
import { LocalTrainer } from './trainer.ts'

const SUMMARY = 'A dml peer: finds other peers (mDNS, --bootstrap), elects a coordinator, and trains the model with them.'

export async function runNode (argv: string[]): Promise<number> {
  const o = parseOptions(argv, NODE_OPTIONS)
  if (o.help === true) {
    console.log(helpText('dml-node', SUMMARY, NODE_OPTIONS))
    return 0
  }
  if (o.gpu === true && o.cpu === true) throw new ConfigError('--gpu and --cpu contradict each other; pass one')
  const log = createLogger(o['json-logs'] as boolean, '[dml]')
  // a stray rejection inside a network library must not take the peer down; say it loudly
  process.on('unhandledRejection', (err) => {
    log.warn('unhandled-rejection', { error: String(err) }, `unhandled rejection: ${(err as Error)?.stack ?? String(err)}`)
  })
  if (o['model-module'] !== '') {
    const names = await registerModelModule(o['model-module'] as string)
    log.info('models-registered', { names }, `registered models ${names.join(', ')} from ${String(o['model-module'])}`)
  }
  getStrategy(o.aggregation as string)
  const shard = o.shard === '' ? null : parseShard(o.shard as string)
  const swarmKey = o['swarm-key'] === '' ? undefined : readSwarmKey(o['swarm-key'] as string)

  const backend = await initBackend(o.gpu === true ? 'gpu' : o.cpu === true ? 'cpu' : 'auto')
  if (backend.warning !== undefined) log.warn('gpu-unavailable', { warning: backend.warning }, backend.warning)
  log.info('backend', { backend: backend.backend, device: backend.device, source: backend.source }, `TensorFlow.js backend: ${backend.backend} on ${backend.device} (${backend.source})`)

  const task = {
    model: o.model as string,
    dataset: o.dataset as string,
    lr: o.lr as number,
    batchSize: o['batch-size'] as number,
    localEpochs: o['local-epochs'] as number,
    totalRounds: o.rounds as number,
    targetAccuracy: o['target-accuracy'] as number,
    aggregation: o.aggregation as string,
    evalSamples: o['eval-samples'] as number
  }
  // fail now, not at the first round, on a model that does not fit the data
  const dataset = await loadDataset(task.dataset)
  buildModel(task.model, { inputShape: dataset.train.exampleShape, numClasses: dataset.train.numClasses }).dispose()

  const dataDir = resolve(o['data-dir'] as string)
  const identity = await loadOrCreateIdentity(dataDir)
  const node = new DmlNode({
    task,
    minPeers: o['min-peers'] as number,
    shard,
    host: o.host as string,
    port: o.port as number,
    bootstrap: o.bootstrap as string[],
    mdns: o.mdns as boolean,
    swarmKey,
    dataDir,
    heartbeatMs: o['heartbeat-ms'] as number,
    leaseMs: o['lease-ms'] as number,
    roundTimeoutMs: (o['round-timeout'] as number) * 1000,
    httpPort: o['http-port'] as number
  }, new LocalTrainer(), backend, log)
  try {
    await node.start(identity.key)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' || /EADDRINUSE|address already in use/i.test(String((err as Error).message))) {
      throw new ConfigError(`cannot listen on ${String(o.host)}:${String(o.port)}: the port is in use; pick another with --port (0 picks a free one)`)
    }
    throw err
  }
  log.info('started', { peerId: node.peerId, addrs: node.host.listenAddrs(), identityCreated: identity.created, dataDir },
    `peer ${node.peerId} ${identity.created ? '(new identity)' : '(identity from ' + dataDir + ')'}`)
  for (const addr of node.host.listenAddrs()) log.info('listening', { addr }, `listening on ${addr}`)

  let server
  try {
    server = await startStatusServer(node, o.host as string, o['http-port'] as number)
  } catch (err) {
    await node.stop()
    throw new ConfigError(`cannot serve the status API on ${String(o.host)}:${String(o['http-port'])} (${(err as Error).message}); pick another with --http-port`)
  }
  const address = server.address()
  const httpPort = typeof address === 'object' && address !== null ? address.port : o['http-port']
  log.info('status-api', { port: httpPort }, `status API on http://${String(o.host)}:${String(httpPort)}/api/status`)

  let stopping = false
  const stop = async (): Promise<void> => {
    if (stopping) return
    stopping = true
    server.close()
    await node.stop()
  }
  process.once('SIGINT', () => { stop().then(() => process.exit(0)).catch(() => process.exit(1)) })
  process.once('SIGTERM', () => { stop().then(() => process.exit(0)).catch(() => process.exit(1)) })

  await node.whenFinished()
  if (o['exit-when-done'] !== true) {
    await new Promise(() => {})
  }
  // let the others fetch the final model from us before we go
  await node.drain(15_000)
  await stop()
  return 0
}

/** Runs a command's main, turning expected errors into one clear line and an exit code. */
export function main (run: (argv: string[]) => Promise<number>): void {
  run(process.argv.slice(2)).then(code => { process.exit(code) }, (err: Error) => {
    const expected = ['ConfigError', 'IdxError', 'AggregationError', 'IdentityError'].includes(err.name) || /unknown (model|dataset)/.test(err.message)
    console.error(`error: ${expected ? err.message : err.stack ?? String(err)}`)
    process.exit(expected ? 2 : 1)
  })
}
