// npm run bench:speed: 4 peers (separate processes on loopback) train each model until 98% test
// accuracy (cnn, when asked for by DML_BENCH_MODELS=cnn, for two rounds); prints wall time and
// rounds to 97% and 98%, and where each round's time went. Where the reference design's runner
// is found (../shared/bench/reference/run.sh beside the clone, or DML_REFERENCE), it runs the
// same job first, and the two are compared as a ratio from one run.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'
import { LocalNetwork, roundsDone } from './helpers.ts'

const REFERENCE = process.env.DML_REFERENCE ?? fileURLToPath(new URL('../../shared/bench/reference/run.sh', import.meta.url))
/** The reference's target per model: the job the issue compares (mlp to 97%, cnn-small to 98%). */
const REFERENCE_TARGET: Record<string, number> = { mlp: 0.97, 'cnn-small': 0.98 }

const PEERS = 4
const ONLY = process.env.DML_BENCH_MODELS?.split(',')
const MODELS = [
  { model: 'mlp', maxRounds: 30 },
  { model: 'cnn-small', maxRounds: 15 },
  // the 6.6 MB model, for the cost of a round besides training and evaluation: only when asked
  // (DML_BENCH_MODELS=cnn), as a round of it takes minutes on wasm
  { model: 'cnn', maxRounds: 2, whenAsked: true }
]
const extra = process.argv.slice(2)

function seconds (ms: number): string { return (ms / 1000).toFixed(1) }

/** Seconds from launch to the target for the reference design, or why it was not run. */
function reference (model: string): { seconds?: number, rounds?: number, skipped?: string } {
  if (!existsSync(REFERENCE)) return { skipped: `no reference runner at ${REFERENCE} (set DML_REFERENCE)` }
  try {
    const out = execFileSync('bash', [REFERENCE, model, String(PEERS), String(REFERENCE_TARGET[model]), '1', '0.15'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 1_200_000 })
    const line = JSON.parse(out.trim().split('\n').pop()!) as { reached: boolean, rounds: number, secondsFromStart: number }
    return line.reached ? { seconds: line.secondsFromStart, rounds: line.rounds } : { skipped: `the reference did not reach the target in ${line.rounds} rounds` }
  } catch (err) {
    return { skipped: `the reference could not run (Python or PyTorch missing?): ${String((err as Error).message).split('\n')[0]}` }
  }
}

async function bench (model: string, maxRounds: number): Promise<void> {
  const ref = REFERENCE_TARGET[model] === undefined ? { skipped: `the reference runs the issue's jobs only (${Object.keys(REFERENCE_TARGET).join(', ')})` } : reference(model)
  console.log(ref.skipped !== undefined ? `\n${model}: reference skipped: ${ref.skipped}` : `\n${model}: reference (Flask + PyTorch) reached ${REFERENCE_TARGET[model] * 100}% in ${ref.rounds!} rounds, ${ref.seconds!.toFixed(1)} s from launch`)
  const net = new LocalNetwork()
  const started = Date.now()
  try {
    console.log(`\n${model}: starting ${PEERS} peers`)
    const peers = await net.start(PEERS, ['--model', model, '--min-peers', String(PEERS), '--rounds', String(maxRounds), '--target-accuracy', '0.98', '--exit-when-done', ...extra])
    for (const p of peers) {
      p.onEvent = (e) => {
        if (e.event === 'round-done') console.log(`  round ${e.round as number}: ${(100 * e.accuracy).toFixed(2)}% after ${seconds(e.finishedAt - started)} s`)
        // what cost time besides rounds (retries, elections, peers lost) is worth seeing beside the figures
        else if (e.level === 'warn' || e.level === 'error') console.log(`  ${p.name} at ${seconds(Date.now() - started)} s: ${String(e.msg)}`)
      }
    }
    const codes = await Promise.all(peers.map(async p => await p.exited))
    peers.forEach((p, i) => { if (codes[i] !== 0) console.log(`${p.name} exited with ${String(codes[i])}: ${p.stderr.slice(-5).join(' | ')}`) })
    const rounds = peers.flatMap(p => roundsDone(p.events)).sort((a, b) => a.round - b.round)
    const backend = peers[0].events.find(e => e.event === 'backend')
    console.log(`\n## ${model}: ${PEERS} peers, backend ${backend?.backend as string} on ${cpus().length} cores`)
    const refHit = rounds.find(r => r.accuracy >= REFERENCE_TARGET[model])
    if (ref.seconds !== undefined && refHit !== undefined) {
      const ours = (refHit.finishedAt - started) / 1000
      console.log(`side by side, to ${REFERENCE_TARGET[model] * 100}%: dml ${ours.toFixed(1)} s (${refHit.round} rounds), reference ${ref.seconds.toFixed(1)} s (${ref.rounds!} rounds): dml takes ${(ours / ref.seconds).toFixed(2)}x the reference's time`)
    }
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
    const overhead = (sum('transferMs') + sum('aggregateMs') + sum('idleMs')) / total
    console.log(`neither local training nor evaluation: ${(100 * overhead).toFixed(1)}% of round time (goal for cnn: at most 5%)`)
  } finally {
    await net.stop()
  }
}

for (const { model, maxRounds, whenAsked } of MODELS) if (ONLY === undefined ? whenAsked !== true : ONLY.includes(model)) await bench(model, maxRounds)
