// HTTP status API: GET /api/status on every peer. The leader's answer is the network's state;
// a follower answers with its own view and says where the leader is. The server reads a snapshot
// (a plain copy the engine makes on request), never the engine's fields.
import { createServer, type Server } from 'node:http'
import type { NodeStatus } from './node.ts'

export type StatusSource = () => NodeStatus & Record<string, unknown>

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

export async function startStatusServer (status: StatusSource, host: string, port: number, limits: StatusLimits = DEFAULT_STATUS_LIMITS): Promise<Server> {
  let cached: { at: number, body: string } | undefined
  const body = (): string => {
    const now = Date.now()
    if (cached === undefined || now - cached.at > limits.cacheMs) cached = { at: now, body: JSON.stringify(status(), null, 2) }
    return cached.body
  }
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end()
      return
    }
    if (path === '/api/status') {
      res.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': '*' })
      res.end(body())
      return
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found; try GET /api/status' }))
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
