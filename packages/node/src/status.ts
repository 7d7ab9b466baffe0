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

export async function startStatusServer (status: StatusSource, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end()
      return
    }
    if (path === '/api/status') {
      res.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': '*' })
      res.end(JSON.stringify(status(), null, 2))
      return
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found; try GET /api/status' }))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  return server
}
