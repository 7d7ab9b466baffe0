// HTTP status API: GET /api/status on every peer. The leader's answer is the network's state;
// a follower answers with its own view and says where the leader is. The server reads a snapshot
// (a plain copy the engine makes on request), never the engine's fields.
import { createServer, type Server } from 'node:http'
import type { NodeStatus } from './node.ts'

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
  /** connections served at once; more are refused until some close */
  maxConnections: number
}

export const DEFAULT_STATUS_LIMITS: StatusLimits = { cacheMs: 250, maxConnections: 64 }

/** What else the server answers besides /api/status: GET /metrics, if given. */
export interface StatusRoutes {
  metrics?: { contentType: string, text: () => Promise<string> }
}

export async function startStatusServer (status: StatusSource, host: string, port: number, limits: StatusLimits = DEFAULT_STATUS_LIMITS, routes: StatusRoutes = {}): Promise<Server> {
  const statusBody = cachedFor(limits.cacheMs, async () => JSON.stringify(await status(), null, 2))
  const metricsBody = routes.metrics === undefined ? undefined : cachedFor(limits.cacheMs, async () => await routes.metrics!.text())
  const answer = async (path: string): Promise<{ code: number, type: string, body: string }> => {
    if (path === '/api/status') return { code: 200, type: 'application/json', body: await statusBody() }
    if (path === '/metrics' && metricsBody !== undefined) return { code: 200, type: routes.metrics!.contentType, body: await metricsBody() }
    return { code: 404, type: 'application/json', body: JSON.stringify({ error: `not found; try GET /api/status${metricsBody === undefined ? '' : ' or /metrics'}` }) }
  }
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end()
      return
    }
    answer(path).then(({ code, type, body }) => {
      res.writeHead(code, { 'content-type': type, 'access-control-allow-origin': '*' }).end(body)
    }, (err: unknown) => {
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String((err as Error).message) }))
    })
  })
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
function cachedFor (ms: number, make: () => Promise<string>): () => Promise<string> {
  let cached: { at: number, body: Promise<string> } | undefined
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
