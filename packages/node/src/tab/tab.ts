// A browser tab as a peer: the page a node serves at /train loads this bundle (built by
// scripts/build-package.ts with esbuild). The tab runs the same engine, protocol, validators and
// trainer as a node: a libp2p peer that dials the node over WebSockets (Noise-encrypted), joins the
// control topic, trains its assignments on the data set the node serves, checks and signs rounds
// when drawn, and never leads (its heartbeats say device "browser"). Its key is kept in the
// browser's storage, so a reload is the same peer. It keeps no checkpoint: a tab that comes back
// catches up from the network like any restarted peer.
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { OWN_DATA, PROTOCOL_VERSION, type Task } from '@dml/protocol'
import { checkFits, csvSet, DataError, idxPair, type ImageSet } from '@dml/trainer/browser'
import { DmlNode } from '../engine/node.ts'
import type { NodeStatus } from '../engine/node-status.ts'
import { dialableFrom, startHost, type DmlHost, type Reach } from '../net/host.ts'
import { lateHandlers } from '../net/network.ts'
import { keySigner } from '../proof/certificates.ts'
import { dataShape, LocalTrainer, ONE_THREAD, ownExamples, type LoadedData } from '../round/trainer.ts'
import type { Logger } from '../log.ts'
import { decodeImageSet } from './data-wire.ts'
import { chooseTabBackend } from './tab-backend.ts'

/** What the node tells a tab at /api/tab (status.ts). */
export interface TabInfo {
  protocol: number
  /** the node's peer id and its WebSockets listen addresses */
  peerId: string
  wsAddrs: string[]
  task: Task
  config: { minPeers: number, heartbeatMs: number, leaseMs: number, roundTimeoutMs: number, transferTimeoutMs: number, modelBytes: number }
  /** why this node serves no data set to tabs (it trains on its own data): a tab then trains on files its user picks */
  noData?: string
  /** why this node takes no tabs at all (a private network, no WebSockets), if it does not */
  noTabs?: string
}

export interface TabEvents {
  /** a line of the peer's log */
  said: (level: 'info' | 'warn', event: string, msg: string) => void
}

export interface RunningTab {
  peerId: string
  backend: string
  status: () => NodeStatus
  /** the peers it is connected to and how (WebSockets to nodes, WebRTC or a node's relay to other tabs), and how its dials of the node went */
  network: () => { connected: string[], reach: Record<string, Reach>, links: Array<{ peer: string, addr: string }>, bootstrap: Array<{ addr: string, connected: boolean, error?: string }> }
  stop: () => Promise<void>
}

const KEY_STORAGE = 'dml-tab-key'

/** This tab's key: the one kept in the browser's storage for this page's origin, or a new one kept there. */
async function tabKey (storage: Storage): Promise<{ key: PrivateKey, created: boolean }> {
  const kept = storage.getItem(KEY_STORAGE)
  if (kept !== null) {
    try {
      return { key: privateKeyFromProtobuf(Uint8Array.from(atob(kept), c => c.charCodeAt(0))), created: false }
    } catch {
      // unreadable (another program wrote it): a new identity, said in the log
    }
  }
  const key = await generateKeyPair('Ed25519')
  storage.setItem(KEY_STORAGE, btoa(String.fromCharCode(...privateKeyToProtobuf(key))))
  return { key, created: true }
}

/** The share of a tab's own examples kept out of training to evaluate on (a node's --holdout default with --data). */
const OWN_HOLDOUT = 0.1

/** A picked file's bytes, gunzipped if they are gzip's. */
async function fileBytes (file: File): Promise<Uint8Array> {
  const bytes = new Uint8Array(await file.arrayBuffer())
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes
  try {
    return new Uint8Array(await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'))).arrayBuffer())
  } catch (err) {
    throw new DataError(`${file.name}: not valid gzip: ${(err as Error).message}`)
  }
}

/**
 * The examples in files the tab's user picked, read here and never sent anywhere: an IDX images
 * file with its labels file (plain or gzipped), or one CSV with a header and a "label" column.
 * Checked against the task's input and classes; a tenth of them kept to evaluate on.
 */
export async function ownFiles (files: File[], task: Task): Promise<LoadedData> {
  const shape = dataShape(task)
  let set: ImageSet
  const csv = files.filter(f => /\.csv(\.gz)?$/i.test(f.name))
  const images = files.find(f => /images/i.test(f.name))
  const labels = files.find(f => /labels/i.test(f.name))
  if (files.length === 1 && csv.length === 1) set = csvSet(new TextDecoder().decode(await fileBytes(csv[0])), shape, csv[0].name)
  else if (files.length === 2 && images !== undefined && labels !== undefined) set = idxPair(await fileBytes(images), await fileBytes(labels), images.name, labels.name)
  else throw new DataError(`pick an IDX images file and its labels file (their names say "images" and "labels"), or one CSV file; not ${files.map(f => f.name).join(', ')}`)
  checkFits(set, shape, 'your files')
  return ownExamples(set, OWN_HOLDOUT, (count) => `your files hold ${count} examples: too few to keep a tenth to evaluate on`)
}

async function fetchBytes (url: string): Promise<Uint8Array> {
  const response = await fetch(url)
  if (!response.ok) throw new Error(`${url}: ${response.status} ${await response.text()}`)
  return new Uint8Array(await response.arrayBuffer())
}

/** Joins the network of the node that served this page; with `files`, trains on them instead of the node's data set. */
export async function startTab (events: TabEvents, options: { backend?: string, files?: File[] } = {}): Promise<RunningTab> {
  const log: Logger = {
    info: (event, _fields, msg) => { events.said('info', event, msg) },
    warn: (event, _fields, msg) => { events.said('warn', event, msg) }
  }
  const response = await fetch('/api/tab')
  if (!response.ok) throw new Error(`/api/tab: ${response.status}`)
  const info = await response.json() as TabInfo
  if (info.protocol !== PROTOCOL_VERSION) throw new Error(`the node speaks protocol ${info.protocol}, this page ${PROTOCOL_VERSION}: reload it`)
  if (info.noTabs !== undefined) throw new Error(info.noTabs)
  const own = options.files !== undefined && options.files.length > 0
  if (!own && info.noData !== undefined) throw new Error(`${info.noData}; or pick files of your own to train on`)
  // a tab on its own files works on its task as a node with --data does: a dataset of its own
  const task: Task = own ? { ...info.task, dataset: OWN_DATA } : info.task
  const backend = await chooseTabBackend('/tab/', options.backend)
  log.info('backend', {}, `TensorFlow.js backend: ${backend.backend} in this tab (${backend.source})${backend.skipped.length > 0 ? `; passed over ${backend.skipped.join('; ')}` : ''}`)
  let data: LoadedData
  if (own) {
    data = await ownFiles(options.files!, task)
    log.info('data', {}, `your files: ${data.trainable.length} examples to train on, ${(data.evalExamples as Uint32Array).length} kept to evaluate on; they stay in this tab`)
  } else {
    const [train, test] = await Promise.all([fetchBytes('/tab/data/train'), fetchBytes('/tab/data/test')].map(async bytes => decodeImageSet(await bytes)))
    data = { own: false, train, trainable: Uint32Array.from({ length: train.count }, (_, i) => i), evalSet: test, evalExamples: task.evalSamples }
    log.info('data', {}, `data set ${task.dataset}: ${train.count} examples to train on, ${test.count} to evaluate on`)
  }
  const trainer = new LocalTrainer({ key: (t) => `${t.dataset} ${t.input}`, load: async () => data }, ONE_THREAD)
  await trainer.load(task)

  const { key, created } = await tabKey(localStorage)
  const peerId = peerIdFromPrivateKey(key).toString()
  const inbox = lateHandlers()
  const bootstrap = dialableFrom(info.wsAddrs, location.hostname)
  const net: DmlHost = await startHost({ privateKey: key, bootstrap, mdns: false, transferTimeoutMs: info.config.transferTimeoutMs }, inbox.handlers)
  const { minPeers, heartbeatMs, leaseMs, roundTimeoutMs, transferTimeoutMs, modelBytes } = info.config
  const node = new DmlNode({ task, shard: null, expectsPeers: true, minPeers, heartbeatMs, leaseMs, roundTimeoutMs, transferTimeoutMs, modelBytes }, {
    net,
    trainer,
    backend: { backend: backend.backend, device: 'browser', source: backend.source },
    log,
    store: { save: async () => {} }, // a tab catches up from the network
    signer: keySigner(peerId, key)
  })
  inbox.bind(node)
  node.start()
  log.info('started', {}, `peer ${peerId} ${created ? '(new identity, kept in this browser)' : '(identity kept in this browser)'}, dialing ${bootstrap.join(', ')}`)
  let stopped: Promise<void> | undefined
  return {
    peerId,
    backend: backend.backend,
    status: () => node.status(),
    network: () => ({
      connected: net.connectedPeers(),
      reach: net.reach(),
      links: net.libp2p.getConnections().map(c => ({ peer: c.remotePeer.toString(), addr: c.remoteAddr.toString() })),
      bootstrap: net.bootstrapState()
    }),
    stop: async () => {
      stopped ??= (async () => {
        await node.stop()
        await net.stop()
      })()
      await stopped
    }
  }
}
