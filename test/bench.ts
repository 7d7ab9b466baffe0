// npm run bench: 4 peers (separate processes on loopback) train each model until 98% test
// accuracy; prints wall time and rounds to 97% and 98%, and where each round's time went.
import { cpus } from 'node:os'
import { LocalNetwork, roundsDone } from './helpers.ts'

const PEERS = 4
const ONLY = process.env.DML_BENCH_MODELS?.split(',')
const MODELS = [
  { model: 'mlp', maxRounds: 30 },
  { model: 'cnn-small', maxRounds: 15 }
]
const extra = process.argv.slice(2)

function seconds (ms: number): string { return (ms / 1000).toFixed(1) }

async function bench (model: string, maxRounds: number): Promise<void> {
  const net = new LocalNetwork()
  const started = Date.now()
  try {
    console.log(`\n${model}: starting ${PEERS} peers`)
    const peers = await net.start(PEERS, ['--model', model, '--min-peers', String(PEERS), '--rounds', String(maxRounds), '--target-accuracy', '0.98', '--exit-when-done', ...extra])
    for (const p of peers) p.onEvent = (e) => { if (e.event === 'round-done') console.log(`  round ${e.round as number}: ${(100 * e.accuracy).toFixed(2)}% after ${seconds(e.finishedAt - started)} s`) }
    const codes = await Promise.all(peers.map(async p => await p.exited))
    peers.forEach((p, i) => { if (codes[i] !== 0) console.log(`${p.name} exited with ${String(codes[i])}: ${p.stderr.slice(-5).join(' | ')}`) })
    const rounds = peers.flatMap(p => roundsDone(p.events)).sort((a, b) => a.round - b.round)
    const backend = peers[0].events.find(e => e.event === 'backend')
    console.log(`\n## ${model}: ${PEERS} peers, backend ${backend?.backend as string} on ${cpus().length} cores`)
    for (const target of [0.97, 0.98]) {
      const hit = rounds.find(r => r.accuracy >= target)
      console.log(hit === undefined
        ? `to ${target * 100}%: not reached in ${rounds.length} rounds (best ${(100 * Math.max(...rounds.map(r => r.accuracy))).toFixed(2)}%)`
        : `to ${target * 100}%: ${hit.round} rounds, ${seconds(hit.finishedAt - started)} s wall time (from process start)`)
    }
    console.log('\nround  accuracy  duration   train  transfer  aggregate  eval   idle   (seconds)')
    for (const r of rounds) {
      console.log(`${String(r.round).padStart(5)}  ${(100 * r.accuracy).toFixed(2).padStart(7)}%  ${seconds(r.durationMs).padStart(8)}  ${seconds(r.trainMs).padStart(6)}  ${seconds(r.transferMs).padStart(8)}  ${seconds(r.aggregateMs).padStart(9)}  ${seconds(r.evalMs).padStart(4)}  ${seconds(r.idleMs).padStart(5)}`)
    }
    const sum = (key: string): number => rounds.reduce((s, r) => s + (r[key] as number), 0)
    const total = sum('durationMs')
    const share = (key: string): string => `${(100 * sum(key) / total).toFixed(1)}%`
    console.log(`split of round time: train ${share('trainMs')}, transfer ${share('transferMs')}, aggregation ${share('aggregateMs')}, evaluation ${share('evalMs')}, idle ${share('idleMs')}`)
  } finally {
    await net.stop()
  }
}

for (const { model, maxRounds } of MODELS) if (ONLY === undefined || ONLY.includes(model)) await bench(model, maxRounds)
