// HTTP status API: GET /api/status on every peer. The leader's answer is the network's state;
// a follower answers with its own view and says where the leader is.
import { createServer, type Server } from 'node:http'
import type { DmlNode } from './runtime.ts'

export function statusSnapshot (node: DmlNode): Record<string, unknown> {
  const live = node.liveMembers()
  const last = node.history.at(-1)
  const leader = node.election.leader
  const leaderBeat = live.find(h => h.peer === leader)
  const leaderIps = (leaderBeat?.addrs ?? []).flatMap(a => /^\/ip4\/([\d.]+)\//.exec(a)?.[1] ?? [])
  const leaderIp = leaderIps.find(ip => ip !== '127.0.0.1') ?? leaderIps[0]
  const leading = node.leading
  const inProgress = leading !== null
    ? { round: leading.start.round, state: 'collecting updates', updates: leading.updates.size, expected: leading.start.assignments.length, deadline: leading.start.deadline }
    : node.phase
  const totalRounds = node.task.totalRounds
  return {
    peerId: node.peerId,
    isLeader: node.election.isLeader,
    leader,
    leaderStatusUrl: leaderIp !== undefined && node.config.httpPort > 0 ? `http://${leaderIp}:${node.config.httpPort}/api/status` : null,
    term: node.election.term,
    state: node.finished ? 'finished' : leader === null ? 'electing' : live.length < node.config.minPeers ? 'waiting-for-peers' : 'training',
    round: node.round,
    totalRounds,
    progress: Math.min(1, node.round / totalRounds),
    currentRound: inProgress,
    accuracy: last?.metrics.accuracy ?? null,
    loss: last?.metrics.loss ?? null,
    modelHash: node.global?.hash ?? null,
    activeNodes: live.length,
    gpuNodes: live.filter(h => h.device === 'gpu').length,
    cpuNodes: live.filter(h => h.device === 'cpu').length,
    nodes: live.map(h => ({ peerId: h.peer, device: h.device, backend: h.backend, round: h.round, samplesPerSec: Math.round(h.speed), isLeader: h.peer === leader })),
    backend: { name: node.backend.backend, device: node.backend.device, source: node.backend.source, warning: node.backend.warning ?? null },
    task: node.task,
    recovery: { ...node.counters, electionsWon: node.election.elections },
    rejectedMessages: node.host.rejected,
    listenAddrs: node.host.listenAddrs(),
    history: node.history.map(r => ({ round: r.round, term: r.term, modelHash: r.modelHash, ...r.metrics }))
  }
}

export async function startStatusServer (node: DmlNode, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end()
      return
    }
    if (path === '/api/status') {
      res.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': '*' })
      res.end(JSON.stringify(statusSnapshot(node), null, 2))
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
