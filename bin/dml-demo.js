#!/usr/bin/env node
// npm start: three dml peers as separate processes on loopback train MNIST to 97% test accuracy.
import './check-node.js'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
const { PeerProcess } = await import('@dml/node')

const PEERS = 3
const started = Date.now()
const dir = mkdtempSync(join(tmpdir(), 'dml-demo-'))
const common = ['--host', '127.0.0.1', '--port', '0', '--no-mdns', '--min-peers', String(PEERS), '--rounds', '15', '--target-accuracy', '0.97', '--exit-when-done', ...process.argv.slice(2)]
const SHOWN = new Set(['started', 'backend', 'status-api', 'leader-elected', 'round-start', 'train-done', 'round-done', 'model-adopted', 'peer-lost', 'training-finished', 'round-retry', 'gpu-unavailable'])

function show (event, peer) {
  if (SHOWN.has(event.event) || event.level === 'warn') console.log(`${peer.name}  ${event.msg ?? event.event}`)
}

console.log(`dml demo: ${PEERS} peers on 127.0.0.1, data in ${dir}`)
const peers = []
for (let i = 0; i < PEERS; i++) {
  const bootstrap = i === 0 ? [] : ['--bootstrap', await peers[0].multiaddr('127.0.0.1')]
  const httpPort = i === 0 ? '5000' : '0'
  peers.push(new PeerProcess(`peer${i + 1}`, [...common, '--http-port', httpPort, '--data-dir', join(dir, `peer${i + 1}`), ...bootstrap], { onEvent: show }))
}
const stopAll = () => { for (const p of peers) p.kill('SIGTERM') }
process.on('SIGINT', () => { stopAll(); process.exit(130) })

const codes = await Promise.all(peers.map(p => p.exited))
const failed = peers.filter((p, i) => codes[i] !== 0)
for (const p of failed) console.error(`${p.name} exited with code ${codes[peers.indexOf(p)]}:\n  ${p.stderr.slice(-10).join('\n  ')}`)
const rounds = peers.flatMap(p => p.events.filter(e => e.event === 'round-done'))
const last = rounds.at(-1)
const wall = ((Date.now() - started) / 1000).toFixed(1)
console.log('\n=== dml demo summary ===')
console.log(`peers:          ${PEERS} processes on loopback`)
console.log(`rounds:         ${rounds.length}`)
console.log(`test accuracy:  ${last ? (100 * last.accuracy).toFixed(2) + '%' : 'n/a'} (target 97%)`)
console.log(`wall time:      ${wall} s`)
console.log(`model hash:     ${last?.modelHash ?? 'n/a'}`)
process.exit(failed.length > 0 || !last || last.accuracy < 0.97 ? 1 : 0)
