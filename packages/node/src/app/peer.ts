// startPeer: the composition root. From a peer's options it builds everything a running peer is
// (the backend, the trainer and its data, the identity, the checkpoint and vote it resumes from,
// the libp2p host, the engine, the status API) and hands back the running peer and how to stop it.
// dml-node's start command is this with its flags parsed (cli.ts); a program that runs peers of its
// own calls it too. Every mistake a user can make here ends in one ConfigError naming the option.
import { resolve } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { encodeTensors, PROTOCOL_VERSION, type Compression, type Task } from '@dml/protocol'
import { backendKey, defaultThreads, initBackend, loadDataset, registerModelModule, getStrategy, TrainingThreads, type Dataset } from '@dml/trainer'
import { DmlNode } from '../engine/node.ts'
import { short, type Logger, type RecentEvents } from '../log.ts'
import { startHost, type DmlHost } from '../net/host.ts'
import { lateHandlers } from '../net/network.ts'
import { keySigner } from '../proof/certificates.ts'
import { LocalTrainer } from '../round/trainer.ts'
import { diskData } from '../round/disk-data.ts'
import { DataDirStore, loadLatestCheckpoint, loadVote, type Checkpoint } from '../state/checkpoint.ts'
import type { CheckpointStore } from '../state/replica.ts'
import { firstLine, type Tls } from './config.ts'
import { lockDataDir } from './data-dir.ts'
import { ConfigError } from './errors.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { NodeMetrics } from './metrics.ts'
import { exportCheckpoint } from './model-commands.ts'
import { DEFAULT_STATUS_LIMITS, leaderStatusUrl, startStatusServer } from './status.ts'
import { encodeImageSet } from '../tab/data-wire.ts'
import type { TabInfo } from '../tab/tab.ts'

/** What a peer is started with: dml-node's options, parsed and checked (docs/usage.md names each). */
export interface PeerOptions {
  /** the training job; its dataset is OWN_DATA when `ownData` is given */
  task: Task
  /** --data: this peer's own examples (a directory or file), never told to others */
  ownData?: string
  /** --holdout: the share of the data kept to evaluate on */
  holdout: number
  dataDir: string
  /** --model-module: files that register models, loaded by every training thread too */
  modelModules: string[]
  device: 'gpu' | 'cpu' | 'auto'
  /** the native backend's own logs */
  nativeLogs: boolean
  /** --threads: training threads; 0, one per core, shared with the peers on this machine */
  threads: number
  shard: [number, number] | null
  compression: Compression
  /** --export: write each finished round's model there too ('' for none) */
  exportDir: string
  minPeers: number
  heartbeatMs: number
  leaseMs: number
  roundTimeoutMs: number
  transferTimeoutMs: number
  host: string
  port: number
  /** the WebSockets port (browsers connect there), or none */
  wsPort?: number
  httpPort: number
  statusConnections: number
  bootstrap: string[]
  mdns: boolean
  /** --relay: relay for members that cannot reach each other */
  relay: boolean
  /** --announce: the addresses others are to dial this peer at */
  announce: string[]
  swarmKey?: Uint8Array
  /** --tls-cert and --tls-key: the status server on https and WebSockets on wss */
  tls?: Tls
  /** --allow-peers: the peers that may take part, and the file that lists them */
  allowed?: { peers: ReadonlySet<string>, file: string }
  /** bytes per second below which a transfer is cut off */
  minTransferRate: number
  maxPeersPerIp: number
  maxBlobStreams: number
  hintDials: number
}

/** A running peer. */
export interface Peer {
  node: DmlNode
  net: DmlHost
  /** the port the status API listens on (the one asked for, or the one picked for 0) */
  httpPort: number
  /**
   * Stops the status API, the engine, the host and the trainer, once, however often it is called.
   * With `withinMs`, a step still running by then is named (stop-slow) and no longer waited for:
   * whoever stops the process exits anyway.
   */
  stop: (withinMs?: number) => Promise<void>
}

export async function startPeer (options: PeerOptions, log: Logger, recent: RecentEvents): Promise<Peer> {
  const o = options
  const dataDir = resolve(o.dataDir)
  const lock = lockDataDir(dataDir)
  // what is started is stopped again, in reverse, if a later step fails: the data directory free
  const undo: Array<() => Promise<void>> = [async () => { lock.release() }]
  try {
    for (const path of o.modelModules) {
      let names: string[]
      try {
        names = await registerModelModule(path)
      } catch (err) {
        throw new ConfigError(`cannot load --model-module ${path}: ${firstLine(err)}`)
      }
      log.info('models-registered', { names }, `registered models ${names.join(', ')} from ${path}`)
    }
    getStrategy(o.task.strategy.aggregation)

    const backend = await initBackend(o.device, { nativeLogs: o.nativeLogs })
    if (backend.warning !== undefined) log.warn('gpu-unavailable', { warning: backend.warning }, backend.warning)
    log.info('backend', { backend: backend.backend, device: backend.device, source: backend.source }, `TensorFlow.js backend: ${backend.backend} on ${backend.device} (${backend.source})`)

    const { task } = o
    // --threads 0: the cores, shared each round with the peers on this machine (NodeConfig.shareCores)
    const shareCores = o.threads === 0
    const threads = shareCores ? defaultThreads(backend.device) : o.threads
    const trainer = new LocalTrainer(diskData({ own: o.ownData, holdout: o.holdout }), new TrainingThreads(threads, backendKey(backend), o.modelModules, (err) => {
      log.warn('threads-failed', { error: firstLine(err) }, `training threads could not start (${firstLine(err)}); training on this thread alone`)
    }))
    undo.push(async () => { await trainer.close() })
    // fail now, not at the first round, on a data set that can't be read or a model that does not fit it
    try {
      await trainer.load(task)
    } catch (err) {
      throw new ConfigError(o.ownData === undefined ? `--dataset ${task.dataset}: ${firstLine(err)}` : firstLine(err))
    }
    log.info('data', { examples: trainer.examples, own: o.ownData !== undefined, holdout: o.holdout },
      o.ownData === undefined ? `data set ${task.dataset}${o.holdout > 0 ? `, ${100 * o.holdout}% of it held out to evaluate on` : ''}` : `own data: ${trainer.examples} examples to train on, ${100 * o.holdout}% held out to evaluate on`)
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
    if (o.allowed !== undefined && !o.allowed.peers.has(peerId)) {
      throw new ConfigError(`this node's peer id ${peerId} is not in --allow-peers ${o.allowed.file}: add it, or it cannot take part`)
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

    const inbox = lateHandlers()
    const metrics = new NodeMetrics()
    const { host, port, wsPort } = o
    const net = await listen(host, port, wsPort, async () => await startHost({ metrics: metrics.libp2p(), privateKey: identity.key, host, port, wsPort, bootstrap: o.bootstrap, mdns: o.mdns, relay: o.relay, ...(o.tls !== undefined ? { tls: o.tls } : {}), announce: o.announce, allowed: o.allowed?.peers, swarmKey: o.swarmKey, minTransferRate: o.minTransferRate, maxPeersPerIp: o.maxPeersPerIp, maxBlobStreams: o.maxBlobStreams, hintDials: o.hintDials, transferTimeoutMs: o.transferTimeoutMs }, inbox.handlers))
    undo.push(async () => { await net.stop() })
    const dataDirStore = new DataDirStore(dataDir)
    const node = new DmlNode({
      task,
      minPeers: o.minPeers,
      expectsPeers: o.bootstrap.length > 0,
      shard: o.shard,
      heartbeatMs: o.heartbeatMs,
      leaseMs: o.leaseMs,
      roundTimeoutMs: o.roundTimeoutMs,
      transferTimeoutMs: o.transferTimeoutMs,
      modelBytes,
      compression: o.compression,
      shareCores
    }, { net, trainer, backend, log, store: exportingStore(dataDirStore, o.exportDir, log), votes: dataDirStore, signer: keySigner(peerId, identity.key), allowed: o.allowed?.peers })
    node.counts.add('checkpointsCorrupt', corruptCheckpoints)
    inbox.bind(node)
    node.start(checkpoint, voteLost ? 'lost' : vote)
    undo.push(async () => { await node.stop() })
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
    watchRelays(net, log)

    metrics.follow(() => node.status())
    const status = async (): Promise<ReturnType<DmlNode['status']> & Record<string, unknown>> => {
      const s = node.status()
      return { ...s, leaderStatusUrl: leaderStatusUrl(s.isLeader ? net.listenAddrs() : s.leaderAddrs, o.httpPort), listenAddrs: net.listenAddrs(), bootstrap: net.bootstrapState(), limits: net.refused(), reach: net.reach(), relay: net.relayState(), traffic: await metrics.traffic(), events: recent.list() }
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
      // a browser tab trains with this node's network on the data set it serves (tab/tab.ts)
      let dataset: Promise<Dataset> | undefined
      const tabInfo = (): TabInfo => {
        const wsAddrs = net.listenAddrs().filter(a => a.includes('/ws/'))
        const noTabs = o.swarmKey !== undefined
          ? 'this network is private (--swarm-key): a tab cannot hold its key, and cannot join it'
          : wsAddrs.length === 0 ? 'this node does not listen on WebSockets (--ws-port off), which is how a tab connects' : undefined
        const noData = o.ownData !== undefined ? 'this node trains on its own data (--data): it has no data set to give a tab' : undefined
        return {
          protocol: PROTOCOL_VERSION,
          peerId: node.peerId,
          wsAddrs,
          task,
          config: { minPeers: o.minPeers, heartbeatMs: o.heartbeatMs, leaseMs: o.leaseMs, roundTimeoutMs: o.roundTimeoutMs, transferTimeoutMs: o.transferTimeoutMs, modelBytes },
          ...(noData !== undefined ? { noData } : {}),
          ...(noTabs !== undefined ? { noTabs } : {})
        }
      }
      const tab = {
        info: tabInfo,
        data: async (split: 'train' | 'test'): Promise<Uint8Array> => {
          if (o.ownData !== undefined) throw new Error('this node serves no data set: it trains on its own data')
          dataset ??= loadDataset(task.dataset)
          return encodeImageSet((await dataset)[split])
        }
      }
      server = await startStatusServer(status, host, o.httpPort, { ...DEFAULT_STATUS_LIMITS, maxConnections: o.statusConnections }, { metrics, onError, tab, ...(o.tls !== undefined ? { tls: o.tls } : {}) })
    } catch (err) {
      throw new ConfigError(`cannot serve the status API on ${host}:${o.httpPort} (${firstLine(err)}); pick another --http-port (0 picks a free one)`)
    }
    const address = server.address()
    const httpPort = typeof address === 'object' && address !== null ? address.port : o.httpPort
    log.info('status-api', { port: httpPort, tls: o.tls !== undefined }, `dashboard on ${o.tls !== undefined ? 'https' : 'http'}://${host === '0.0.0.0' ? '127.0.0.1' : host}:${httpPort}/ (status API on /api/status, metrics on /metrics)`)
    const lonely = watchBootstrap(net, log, 2 * o.leaseMs)

    let stopping: Promise<void> | undefined
    let stepNow = 'status API'
    const stop = async (withinMs = Infinity): Promise<void> => {
      stopping ??= (async () => {
        const took: Record<string, number> = {}
        const timed = async (what: string, step: () => Promise<void> | void): Promise<void> => {
          stepNow = what.replace(/Ms$/, '')
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
      if (withinMs === Infinity) return await stopping
      let timer: NodeJS.Timeout | undefined
      const late = await Promise.race([stopping.then(() => false), new Promise<boolean>(resolve => { timer = setTimeout(() => { resolve(true) }, withinMs) })])
      clearTimeout(timer)
      if (late) log.warn('stop-slow', { step: stepNow, ms: withinMs }, `stopping the ${stepNow} took over ${withinMs} ms: exiting without waiting for it`)
    }
    return { node, net, httpPort, stop }
  } catch (err) {
    for (const step of undo.reverse()) {
      try {
        await step()
      } catch (cleanupErr) {
        log.warn('cleanup-failed', { error: firstLine(cleanupErr) }, `while giving up on starting: ${firstLine(cleanupErr)}`)
      }
    }
    throw err
  }
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
async function listen (host: string, port: number, wsPort: number | undefined, start: () => Promise<DmlHost>): Promise<DmlHost> {
  try {
    return await start()
  } catch (err) {
    const text = `${(err as NodeJS.ErrnoException).code ?? ''} ${String((err as Error).message)}`
    if (/EADDRINUSE|address already in use/i.test(text)) {
      const ws = wsPort !== undefined && wsPort !== 0 && new RegExp(`:${wsPort}(?!\\d)`).test(text)
      throw new ConfigError(ws
        ? `cannot listen for WebSockets on ${host}:${wsPort}: the port is in use; pick another --ws-port (0 picks a free one, off listens on none)`
        : `cannot listen on ${host}:${port}: the port is in use; pick another --port (0 picks a free one)`)
    }
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

/** Says when the relays this peer is reachable through change, and (with --relay) each reservation it grants. */
function watchRelays (net: DmlHost, log: Logger): void {
  let via: string[] = []
  net.libp2p.addEventListener('self:peer:update', () => {
    const now = net.relayState().via
    if (now.join() === via.join()) return
    const gained = now.filter(r => !via.includes(r))
    const lost = via.filter(r => !now.includes(r))
    via = now
    for (const relay of gained) log.info('relay-reserved', { relay, addrs: net.listenAddrs().filter(a => a.includes(`/p2p/${relay}/p2p-circuit`)) }, `reachable through the relay ${short(relay)}`)
    for (const relay of lost) log.warn('relay-lost', { relay, left: now }, `no longer reachable through the relay ${short(relay)}${now.length === 0 ? ': peers behind other NATs reach this one only after a hole punch, until a relay takes it again' : ''}`)
  })
  net.onRelayReservation((peer) => { log.info('relay-reservation', { peer }, `relaying for ${short(peer)}`) })
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
