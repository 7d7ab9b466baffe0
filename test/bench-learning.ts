// npm run bench:learning (also the second part of npm run bench): rounds and wall time to 97%
// test accuracy (mlp) for 4 peers, IID and Dirichlet(0.3) partitions of MNIST, for each strategy:
// FedAvg with the defaults (local momentum) and with local SGD, FedProx, FedAvgM and FedAdam (each
// on top of the defaults).
// `-- --only fedavg,fedadam` runs some strategies; `-- --partitions dirichlet:0.3` some partitions.
import { cpus } from 'node:os'
import { finishedRounds, LocalNetwork } from './helpers.ts'

const PEERS = 4
const TARGET = 0.97
const MAX_ROUNDS = 30

/** Each strategy's options: FedAvgM at an effective server rate of 1 (0.1 / (1 - 0.9)), FedAdam and FedProx as Reddi et al. and Li et al. suggest, local SGD at the rate that was its default. */
const STRATEGIES: Record<string, string[]> = {
  fedavg: [],
  'fedavg-sgd': ['--optimizer', 'sgd', '--lr', '0.3'],
  fedprox: ['--prox-mu', '0.01'],
  fedavgm: ['--server-optimizer', 'momentum', '--server-lr', '0.1'],
  fedadam: ['--server-optimizer', 'adam', '--server-lr', '0.01']
}

function argument (name: string): string[] | undefined {
  const i = process.argv.indexOf(name)
  return i < 0 ? undefined : process.argv[i + 1].split(',')
}
const strategies = argument('--only') ?? Object.keys(STRATEGIES)
const partitions = argument('--partitions') ?? ['iid', 'dirichlet:0.3']

interface Outcome { rounds: number | null, seconds: number | null, best: number, ran: number }

async function run (strategy: string, partition: string): Promise<Outcome> {
  const net = new LocalNetwork()
  const started = Date.now()
  try {
    const peers = await net.start(PEERS, ['--model', 'mlp', '--min-peers', String(PEERS), '--rounds', String(MAX_ROUNDS), '--target-accuracy', String(TARGET),
      '--partition', partition, '--exit-when-done', ...STRATEGIES[strategy]])
    for (const p of peers) p.onEvent = (e) => { if (e.event === 'round-done') console.log(`  ${strategy} ${partition} round ${e.round as number}: ${(100 * (e.accuracy as number)).toFixed(2)}% after ${((Date.now() - started) / 1000).toFixed(0)} s`) }
    const codes = await Promise.all(peers.map(async p => await p.exited))
    peers.forEach((p, i) => { if (codes[i] !== 0) console.log(`  ${p.name} exited with ${String(codes[i])}: ${p.stderr.slice(-3).join(' | ')}`) })
    const rounds = finishedRounds(peers)
    const hit = rounds.find(r => r.accuracy >= TARGET)
    return { rounds: hit?.round ?? null, seconds: hit === undefined ? null : (hit.finishedAt - started) / 1000, best: Math.max(0, ...rounds.map(r => r.accuracy)), ran: rounds.length }
  } finally {
    await net.stop()
  }
}

const results = new Map<string, Outcome>()
for (const partition of partitions) {
  for (const strategy of strategies) {
    const outcome = await run(strategy, partition)
    results.set(`${strategy} ${partition}`, outcome)
    console.log(`${strategy} on ${partition}: ${outcome.rounds === null ? `not reached in ${outcome.ran} rounds (best ${(100 * outcome.best).toFixed(2)}%)` : `${outcome.rounds} rounds, ${outcome.seconds!.toFixed(1)} s`}`)
  }
}

const cell = (o: Outcome | undefined): string => o === undefined ? '' : o.rounds === null ? `> ${o.ran} (best ${(100 * o.best).toFixed(1)}%)` : `${o.rounds} (${o.seconds!.toFixed(0)} s)`
console.log(`\n## Rounds (wall time) to ${100 * TARGET}%: mlp, ${PEERS} peers, ${cpus().length} cores, one machine`)
console.log(`\n| strategy | ${partitions.join(' | ')} |`)
console.log(`| --- | ${partitions.map(() => '---').join(' | ')} |`)
for (const strategy of strategies) console.log(`| ${strategy} (${STRATEGIES[strategy].join(' ') || 'defaults'}) | ${partitions.map(p => cell(results.get(`${strategy} ${p}`))).join(' | ')} |`)
const iid = Math.min(...strategies.map(s => results.get(`${s} iid`)?.rounds ?? Infinity))
const skewed = partitions.filter(p => p !== 'iid').map(p => Math.min(...strategies.map(s => results.get(`${s} ${p}`)?.rounds ?? Infinity)))
for (const [i, rounds] of skewed.entries()) {
  if (Number.isFinite(iid) && Number.isFinite(rounds)) console.log(`\nbest on ${partitions.filter(p => p !== 'iid')[i]}: ${rounds} rounds, ${(rounds / iid).toFixed(2)}x the best on IID (${iid})`)
}
