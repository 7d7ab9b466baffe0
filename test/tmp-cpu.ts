import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PeerProcess } from '@dml/node/launcher'
import { roundsDone } from './helpers.ts'
process.env.NODE_OPTIONS = '--cpu-prof --cpu-prof-dir=/tmp/sim/prof4 --cpu-prof-interval 1000'
const dir = mkdtempSync(join(tmpdir(), 'dml-cpu-'))
const extra = process.argv.slice(2)
const common = ['--host', '127.0.0.1', '--no-mdns', '--http-port', '0', '--model', 'mlp', '--min-peers', '4', '--rounds', '6', '--exit-when-done', ...extra]
const wrap = ['/usr/bin/time', '-f', 'CPU %U %S']
const peers = [new PeerProcess('peer1', [...common, '--port', '0', '--data-dir', join(dir, 'p1')], { wrap })]
const addr = await peers[0].multiaddr('127.0.0.1')
for (let i = 2; i <= 4; i++) peers.push(new PeerProcess(`peer${i}`, [...common, '--port', '0', '--data-dir', join(dir, `p${i}`), '--bootstrap', addr], { wrap }))
await Promise.all(peers.map(async p => await p.exited))
let cpu = 0; let train = 0
for (const p of peers) {
  const line = p.stderr.find(l => l.startsWith('CPU'))!; const [u, s] = line.split(' ').slice(1).map(Number); cpu += u + s
  const t = p.events.filter(e => e.event === 'train-done').reduce((a, e) => a + (e.ms ?? e.durationMs ?? 0), 0)
  train += t
  console.log(p.name, line, 'train-done events', p.events.filter(e => e.event === 'train-done').length, JSON.stringify(p.events.find(e => e.event === 'train-done')).slice(0, 300))
}
const rounds = peers.flatMap(p => roundsDone(p.events))
console.log('total CPU s', cpu.toFixed(1), 'rounds', rounds.length, 'wall', ((rounds.at(-1)!.finishedAt - peers[0].events[0].ts) / 1000).toFixed(1))
