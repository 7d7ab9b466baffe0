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
import { PROTOCOL_VERSION, type Task } from '@dml/protocol'
import { DmlNode } from '../engine/node.ts'
import type { NodeStatus } from '../engine/node-status.ts'
import { dialableFrom, startHost, type DmlHost } from '../net/host.ts'
import { lateHandlers } from '../net/network.ts'
import { keySigner } from '../proof/certificates.ts'
import { LocalTrainer, ONE_THREAD, type LoadedData } from '../round/trainer.ts'
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
  /** why this node serves no data set to tabs (it trains on its own data, say), if it does not */
  noData?: string
}

export interface TabEvents {
  /** a line of the peer's log */
  said: (level: 'info' | 'warn', event: string, msg: string) => void
}

export interface RunningTab {
  peerId: string
  backend: string
  status: () => NodeStatus
  /** the peers it is connected to, and how its dials of the node went */
  network: () => { connected: string[], bootstrap: Array<{ addr: string, connected: boolean, error?: string }> }
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

async function fetchBytes (url: string): Promise<Uint8Array> {
  const response = await fetch(url)
  if (!response.ok) throw new Error(`${url}: ${response.status} ${await response.text()}`)
  return new Uint8Array(await response.arrayBuffer())
}

/** Joins the network of the node that served this page. */
export async function startTab (events: TabEvents, options: { backend?: string } = {}): Promise<RunningTab> {
  const log: Logger = {
    info: (event, _fields, msg) => { events.said('info', event, msg) },
    warn: (event, _fields, msg) => { events.said('warn', event, msg) }
  }
  const response = await fetch('/api/tab')
  if (!response.ok) throw new Error(`/api/tab: ${response.status}`)
  const info = await response.json() as TabInfo
  if (info.protocol !== PROTOCOL_VERSION) throw new Error(`the node speaks protocol ${info.protocol}, this page ${PROTOCOL_VERSION}: reload it`)
  if (info.noData !== undefined) throw new Error(info.noData)
  const backend = await chooseTabBackend('/tab/', options.backend)
  log.info('backend', {}, `TensorFlow.js backend: ${backend.backend} in this tab (${backend.source})${backend.skipped.length > 0 ? `; passed over ${backend.skipped.join('; ')}` : ''}`)
  const [train, test] = await Promise.all([fetchBytes('/tab/data/train'), fetchBytes('/tab/data/test')].map(async bytes => decodeImageSet(await bytes)))
  const data: LoadedData = { own: false, train, trainable: Uint32Array.from({ length: train.count }, (_, i) => i), evalSet: test, evalExamples: info.task.evalSamples }
  const trainer = new LocalTrainer({ key: (task) => `${task.dataset} ${task.input}`, load: async () => data }, ONE_THREAD)
  await trainer.load(info.task)
  log.info('data', {}, `data set ${info.task.dataset}: ${train.count} examples to train on, ${test.count} to evaluate on`)

  const { key, created } = await tabKey(localStorage)
  const peerId = peerIdFromPrivateKey(key).toString()
  const inbox = lateHandlers()
  const bootstrap = dialableFrom(info.wsAddrs, location.hostname)
  const net: DmlHost = await startHost({ privateKey: key, bootstrap, mdns: false, transferTimeoutMs: info.config.transferTimeoutMs }, inbox.handlers)
  const node = new DmlNode({ task: info.task, shard: null, expectsPeers: true, ...info.config }, {
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
    network: () => ({ connected: net.connectedPeers(), bootstrap: net.bootstrapState() }),
    stop: async () => {
      stopped ??= (async () => {
        await node.stop()
        await net.stop()
      })()
      await stopped
    }
  }
}
