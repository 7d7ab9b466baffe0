// HTTP status API on every peer: GET /api/status (JSON), /api/events (the same, pushed as
// server-sent events whenever it changes), /metrics (Prometheus) and the dashboard at /. The
// leader's answer is the network's state; a follower answers with its own view and says where
// the leader is. The server reads a snapshot (a plain copy the engine makes on request), never
// the engine's fields.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import { createServer as createTlsServer } from 'node:https'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { gzip } from 'node:zlib'
import { promisify } from 'node:util'
import type { NodeStatus } from '../engine/node-status.ts'
import type { TabInfo } from '../tab/tab.ts'
import type { Tls } from './config.ts'

export type StatusSource = () => Promise<NodeStatus & Record<string, unknown>> | (NodeStatus & Record<string, unknown>)

/** The leader's status URL, from the addresses its heartbeats carry (assumes our --http-port). */
export function leaderStatusUrl (leaderAddrs: string[], httpPort: number): string | null {
  const ips = leaderAddrs.flatMap(a => /^\/ip4\/([\d.]+)\//.exec(a)?.[1] ?? [])
  const ip = ips.find(i => i !== '127.0.0.1' && i !== '0.0.0.0') ?? ips[0]
  return ip !== undefined && httpPort > 0 ? `http://${ip}:${httpPort}/api/status` : null
}

export interface StatusLimits {
  /** how long one snapshot answers every request (a snapshot copies the history: not per request) */
  cacheMs: number
  /** connections served at once (live dashboards included); more are refused until some close */
  maxConnections: number
  /** how often the event stream looks for a change */
  pushMs: number
}

export const DEFAULT_STATUS_LIMITS: StatusLimits = { cacheMs: 250, maxConnections: 64, pushMs: 1000 }

export interface StatusServerOptions {
  /** GET /metrics, if given */
  metrics?: { contentType: string, text: () => Promise<string> }
  /** told of a snapshot or metrics that could not be made (the request got a 500; a push is retried) */
  onError?: (err: Error) => void
  /** a certificate and its key: served over https (a page on https dials only wss) */
  tls?: Tls
  /** what a browser tab that trains with this node's network needs (/train, /api/tab, /tab/...) */
  tab?: {
    info: () => TabInfo
    /** the data set's split, encoded for the tab (data-wire.ts) */
    data: (split: 'train' | 'test') => Promise<Uint8Array>
  }
}

/**
 * The tab's bundle and tfjs's wasm files, as the build made them (scripts/build-package.ts): beside
 * the bundled dml-node.js, or in the clone's dist/ when dml-node runs from its sources.
 */
function tabFiles (): Map<string, { type: string, body: Buffer }> {
  const dirs = [new URL('./tab/', import.meta.url), new URL('../../../../dist/tab/', import.meta.url)].map(u => fileURLToPath(u))
  const dir = dirs.find(d => existsSync(`${d}dml-tab.js`))
  const files = new Map<string, { type: string, body: Buffer }>()
  if (dir === undefined) {
    // the page then says why it cannot train, rather than nothing at all
    files.set('/tab/dml-tab.js', { type: 'text/javascript; charset=utf-8', body: Buffer.from("document.getElementById('state').textContent = 'this node has no tab bundle: npm install builds it (with Node 22.18 or newer)'; document.getElementById('join').disabled = true\n") })
    return files
  }
  for (const name of readdirSync(dir).filter(n => n.endsWith('.js') || n.endsWith('.wasm'))) {
    files.set(`/tab/${name}`, { type: name.endsWith('.js') ? 'text/javascript; charset=utf-8' : 'application/wasm', body: readFileSync(`${dir}${name}`) })
  }
  return files
}

const gzipped = promisify(gzip)

/** The dashboard's files, read once: its own, and uPlot's from its npm package (no CDN: it works offline). */
function dashboardFiles (): Map<string, { type: string, body: Buffer }> {
  const own = (name: string): Buffer => readFileSync(new URL(`./dashboard/${name}`, import.meta.url))
  const vendor = (path: string): Buffer => readFileSync(createRequire(import.meta.url).resolve(path))
  return new Map([
    ['/', { type: 'text/html; charset=utf-8', body: own('index.html') }],
    ['/dashboard.js', { type: 'text/javascript; charset=utf-8', body: own('dashboard.js') }],
    ['/dashboard.css', { type: 'text/css; charset=utf-8', body: own('dashboard.css') }],
    ['/train', { type: 'text/html; charset=utf-8', body: own('train.html') }],
    ['/favicon.svg', { type: 'image/svg+xml', body: own('favicon.svg') }],
    ['/vendor/uplot.js', { type: 'text/javascript; charset=utf-8', body: vendor('uplot/dist/uPlot.iife.min.js') }],
    ['/vendor/uplot.css', { type: 'text/css; charset=utf-8', body: vendor('uplot/dist/uPlot.min.css') }]
  ])
}

/** A keep-alive comment this often on a quiet event stream, so proxies and browsers keep it open. */
const EVENT_STREAM_PING_MS = 15_000
/** An event stream whose client has left this much unread is closed: a client that never reads costs no memory. */
const EVENT_STREAM_MAX_UNREAD = 1 << 20

export async function startStatusServer (status: StatusSource, host: string, port: number, limits: StatusLimits = DEFAULT_STATUS_LIMITS, options: StatusServerOptions = {}): Promise<Server> {
  // one snapshot, in the two forms served: pretty for /api/status, one line for the event stream
  const snapshot = cachedFor(limits.cacheMs, async () => {
    const s = await status()
    return { pretty: JSON.stringify(s, null, 2), line: JSON.stringify(s) }
  })
  const route = options.metrics
  const metrics = route === undefined ? undefined : { contentType: route.contentType, body: cachedFor(limits.cacheMs, async () => await route.text()) }
  const failed = (err: unknown): void => { options.onError?.(err instanceof Error ? err : new Error(String(err))) }
  const files = dashboardFiles()
  const tab = options.tab
  if (tab !== undefined) for (const [path, file] of tabFiles()) files.set(path, file)
  else files.delete('/train')
  // what tabs fetch whole, gzipped once (MNIST's training set: 47 MB as it is, about a fifth of that gzipped)
  const zipped = new Map<string, Promise<Buffer>>()
  const zip = (path: string, make: () => Promise<Uint8Array>): Promise<Buffer> => {
    let z = zipped.get(path)
    if (z === undefined) {
      z = make().then(async bytes => await gzipped(bytes, { level: 1 }))
      z.catch(() => { zipped.delete(path) }) // made again at the next request
      zipped.set(path, z)
    }
    return z
  }
  const streams = new Set<ServerResponse>()
  /** what each event stream was last sent, and when */
  const last = new Map<ServerResponse, { body: string, at: number }>()
  const answer = async (path: string): Promise<{ code: number, type: string, body: string | Buffer, gzipped?: boolean }> => {
    if (path === '/api/status') return { code: 200, type: 'application/json', body: (await snapshot()).pretty }
    if (tab !== undefined && path === '/api/tab') return { code: 200, type: 'application/json', body: JSON.stringify(tab.info()) }
    if (tab !== undefined && (path === '/tab/data/train' || path === '/tab/data/test')) {
      const split = path === '/tab/data/train' ? 'train' : 'test'
      return { code: 200, type: 'application/octet-stream', body: await zip(path, async () => await tab.data(split)), gzipped: true }
    }
    if (path === '/tab/dml-tab.js' && files.has(path)) return { code: 200, type: files.get(path)!.type, body: await zip(path, async () => files.get(path)!.body), gzipped: true }
    if (path === '/metrics' && metrics !== undefined) return { code: 200, type: metrics.contentType, body: await metrics.body() }
    const file = files.get(path)
    if (file !== undefined) return { code: 200, type: file.type, body: file.body }
    return { code: 404, type: 'application/json', body: JSON.stringify({ error: `not found; try / (the dashboard), ${tab === undefined ? '' : '/train (train in a browser tab), '}GET /api/status, /api/events${metrics === undefined ? '' : ' or /metrics'}` }) }
  }
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end()
      return
    }
    if (path === '/api/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'access-control-allow-origin': '*' })
      res.write('retry: 2000\n\n')
      streams.add(res)
      res.on('close', () => { streams.delete(res); last.delete(res) })
      push().catch(failed) // the newcomer gets the state now; a failure is retried by the next push
      return
    }
    answer(path).then(({ code, type, body, gzipped }) => {
      res.writeHead(code, { 'content-type': type, 'access-control-allow-origin': '*', ...(gzipped === true ? { 'content-encoding': 'gzip' } : {}) }).end(body)
    }, (err: unknown) => {
      failed(err)
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String((err as Error).message) }))
    })
  }
  const server: Server = options.tls !== undefined ? createTlsServer(options.tls, handle) : createServer(handle)
  // the event stream: each client gets the snapshot whenever it differs from what it last got
  let pushing = false
  const push = async (): Promise<void> => {
    if (streams.size === 0 || pushing) return
    pushing = true
    try {
      const body = (await snapshot()).line
      const now = Date.now()
      for (const res of streams) {
        if (res.writableLength > EVENT_STREAM_MAX_UNREAD) {
          res.destroy() // the browser's EventSource reconnects by itself, and starts from the state of then
          continue
        }
        const sent = last.get(res)
        if (sent?.body === body) {
          if (now - sent.at >= EVENT_STREAM_PING_MS) { res.write(': ping\n\n'); sent.at = now }
          continue
        }
        res.write(`event: status\ndata: ${body}\n\n`)
        last.set(res, { body, at: now })
      }
    } finally {
      pushing = false
    }
  }
  const pusher = setInterval(() => { push().catch(failed) }, limits.pushMs)
  pusher.unref()
  server.on('close', () => {
    clearInterval(pusher)
  })
  // closing the server ends the event streams too, which would otherwise keep it open
  const close = server.close.bind(server)
  server.close = (callback?: (err?: Error) => void) => {
    for (const res of streams) res.end()
    return close(callback)
  }
  server.maxConnections = limits.maxConnections
  // a client that opens a connection and says nothing does not keep it
  server.headersTimeout = 5000
  server.requestTimeout = 10_000
  server.keepAliveTimeout = 2000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  return server
}

/** `make`'s answer, made again at most every `ms` (and once at a time): a burst of requests costs one. */
function cachedFor<T> (ms: number, make: () => Promise<T>): () => Promise<T> {
  let cached: { at: number, body: Promise<T> } | undefined
  return async () => {
    const now = Date.now()
    if (cached === undefined || now - cached.at > ms) {
      const body = make()
      cached = { at: now, body }
      body.catch(() => { if (cached?.body === body) cached = undefined }) // an error is not kept
    }
    return await cached.body
  }
}
