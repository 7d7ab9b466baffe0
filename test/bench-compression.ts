// npm run bench:compression: 4 peers train the same job with each --compression (none, fp16,
// int8) for a fixed number of rounds; prints the bytes of an update, their ratio to float32
// updates, and the test accuracy after the last round (the leader's, on MNIST's 10,000 test
// examples). DML_BENCH_MODELS=mlp,cnn picks the models; DML_BENCH_ROUNDS the rounds.
import { cpus } from 'node:os'
import { LocalNetwork, roundsDone } from './helpers.ts'

const PEERS = 4
const ROUNDS = Number(process.env.DML_BENCH_ROUNDS ?? 8)
const MODELS = process.env.DML_BENCH_MODELS?.split(',') ?? ['mlp']
const COMPRESSIONS = ['none', 'fp16', 'int8']

interface Outcome { updateBytes: number, accuracy: number, seconds: number }

async function run (model: string, compression: string): Promise<Outcome> {
  const net = new LocalNetwork()
  const started = Date.now()
  try {
    const peers = await net.start(PEERS, ['--model', model, '--min-peers', String(PEERS), '--rounds', String(ROUNDS), '--compression', compression, '--exit-when-done'])
    for (const p of peers) p.onEvent = (e) => { if (e.event === 'round-done') console.log(`  ${model} ${compression} round ${e.round as number}: ${(100 * (e.accuracy as number)).toFixed(2)}%`) }
    const codes = await Promise.all(peers.map(async p => await p.exited))
    if (codes.some(c => c !== 0)) throw new Error(`a peer exited with ${codes.join(', ')}: ${peers.flatMap(p => p.stderr.slice(-2)).join(' | ')}`)
    const sizes = peers.flatMap(p => p.events.filter(e => e.event === 'train-done').map(e => e.updateBytes as number))
    const last = roundsDone(peers.flatMap(p => p.events)).find(r => r.round === ROUNDS)!
    return { updateBytes: sizes.reduce((a, b) => a + b, 0) / sizes.length, accuracy: last.accuracy, seconds: (Date.now() - started) / 1000 }
  } finally {
    await net.stop()
  }
}

const rows: string[] = []
for (const model of MODELS) {
  const outcomes = new Map<string, Outcome>()
  for (const compression of COMPRESSIONS) {
    const o = await run(model, compression)
    outcomes.set(compression, o)
    console.log(`${model} --compression ${compression}: updates of ${Math.round(o.updateBytes)} bytes, ${(100 * o.accuracy).toFixed(2)}% after ${ROUNDS} rounds (${o.seconds.toFixed(0)} s)`)
  }
  const none = outcomes.get('none')!
  for (const [compression, o] of outcomes) {
    rows.push(`| ${model} | ${compression} | ${(o.updateBytes / 1e6).toFixed(3)} MB | ${(none.updateBytes / o.updateBytes).toFixed(2)}x | ${(100 * o.accuracy).toFixed(2)}% | ${(100 * (o.accuracy - none.accuracy)).toFixed(2)} |`)
  }
}
console.log(`\n## Update compression: ${PEERS} peers, ${ROUNDS} rounds, ${cpus().length} cores, one machine`)
console.log('\n| model | --compression | update | smaller by | accuracy | points vs none |')
console.log('| --- | --- | --- | --- | --- | --- |')
for (const row of rows) console.log(row)
