#!/usr/bin/env node
// npm start: three dml peers as separate processes on loopback train MNIST to 97% test accuracy.
// If a peer cannot start (a port in use, a bad option), the demo stops at once and says why. Its
// peers' data directories are removed when it ends, unless it is given --keep.
import './check-node.js'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
const { PeerProcess } = await import('@dml/node/launcher')

const PEERS = 3
const started = Date.now()
const dir = mkdtempSync(join(tmpdir(), 'dml-demo-'))
// --http-port is the first peer's (the others pick free ports); every other option goes to all peers
const args = []
let httpPort = '5000'
let keep = false
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--keep') keep = true
  else if (argv[i] === '--http-port') httpPort = argv[++i]
  else if (argv[i].startsWith('--http-port=')) httpPort = argv[i].slice('--http-port='.length)
  else args.push(argv[i])
}
const common = ['--host', '127.0.0.1', '--port', '0', '--no-mdns', '--min-peers', String(PEERS), '--rounds', '15', '--target-accuracy', '0.97', '--exit-when-done', ...args]
const SHOWN = new Set(['started', 'backend', 'status-api', 'leader-elected', 'round-start', 'train-done', 'round-done', 'model-adopted', 'peer-lost', 'training-finished', 'round-retry', 'gpu-unavailable'])

function show (event, peer) {
  // one peer's training progress, so a round is not 30 silent seconds
  if (event.event === 'train-progress' && peer === peers[0]) console.log(`${peer.name}  ${event.msg}`)
  if (SHOWN.has(event.event) || event.level === 'warn') console.log(`${peer.name}  ${event.msg ?? event.event}`)
}

const peers = []
/** Stops every peer, waits for them (5 s at most), removes their data unless --keep, and exits with `code`. */
async function end (code) {
  for (const p of peers) p.kill('SIGTERM')
  await Promise.race([Promise.all(peers.map(p => p.exited)), new Promise(resolve => setTimeout(resolve, 5000))])
  if (keep) console.log(`the peers' data directories (checkpoints, identities) are kept in ${dir}`)
  else rmSync(dir, { recursive: true, force: true })
  process.exit(code)
}
process.on('SIGINT', () => { void end(130) })

/** The first peer to exit with an error, as soon as it does. */
function firstFailure () {
  return new Promise(resolve => {
    for (const p of peers) p.exited.then(code => { if (code !== 0) resolve(p) })
  })
}

function fail (peer) {
  const why = peer.stderr.filter(l => l.trim() !== '').slice(-5).join('\n  ') || `exit code ${peer.child.exitCode}`
  console.error(`\n${peer.name} could not run:\n  ${why}`)
  if (/--http-port/.test(why)) console.error(`(another program holds port ${httpPort}? try: npm start -- --http-port 5050)`)
  return end(1)
}

console.log(`dml demo: ${PEERS} peers on 127.0.0.1, data in ${dir} (removed at the end; npm start -- --keep keeps it)`)
for (let i = 0; i < PEERS; i++) {
  let bootstrap = []
  if (i > 0) {
    try {
      bootstrap = ['--bootstrap', await peers[0].multiaddr('127.0.0.1')]
    } catch {
      await fail(peers[0]) // it exited before it listened
    }
  }
  peers.push(new PeerProcess(`peer${i + 1}`, [...common, '--http-port', i === 0 ? httpPort : '0', '--data-dir', join(dir, `peer${i + 1}`), ...bootstrap], { onEvent: show }))
}

const outcome = await Promise.race([Promise.all(peers.map(p => p.exited)), firstFailure()])
if (!Array.isArray(outcome)) await fail(outcome)
const rounds = peers.flatMap(p => p.events.filter(e => e.event === 'round-done'))
const last = rounds.at(-1)
const wall = ((Date.now() - started) / 1000).toFixed(1)
console.log('\n=== dml demo summary ===')
console.log(`peers:          ${PEERS} processes on loopback`)
console.log(`rounds:         ${rounds.length}`)
console.log(`test accuracy:  ${last ? (100 * last.accuracy).toFixed(2) + '%' : 'n/a'} (target 97%)`)
console.log(`wall time:      ${wall} s`)
console.log(`model hash:     ${last?.modelHash ?? 'n/a'}`)
await end(!last || last.accuracy < 0.97 ? 1 : 0)
