// npm run bench:start (part of npm run bench): from launch to the first round's start on a fresh
// network. Four peers are launched at the same moment; the first listens on a port chosen
// beforehand and its identity is made beforehand, so the others can bootstrap from it at once.
// Twice: as this checkout runs (TypeScript stripped as it loads) and as users run it, the built
// package (npm run package's bundle; its dependencies are this checkout's node_modules).
import { DML_NODE_BIN } from '@dml/node/launcher'
import { buildPackage, LocalNetwork } from './helpers.ts'

const PEERS = 4
const RUNS = 3

/** Milliseconds from launch to the leader's first round-start (and to its election). */
async function once (bin: string): Promise<{ elected: number, roundStart: number }> {
  const net = new LocalNetwork()
  try {
    const { peers, launched } = await net.startTogether(PEERS, ['--model', 'mlp', '--min-peers', String(PEERS)], bin)
    const at = async (event: string): Promise<number> => {
      const seen = await Promise.any(peers.map(async p => await p.waitFor(event, 60_000)))
      return (seen.ts as number) - launched
    }
    const [elected, roundStart] = await Promise.all([at('leader-elected'), at('round-start')])
    return { elected, roundStart }
  } finally {
    await net.stop()
  }
}

const packaged = buildPackage()
const forms = [{ name: 'the checkout (bin/dml-node.js)', bin: DML_NODE_BIN }, { name: 'the built package (dml-node.js)', bin: packaged.bin }]
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const results: Record<string, Array<{ elected: number, roundStart: number }>> = {}
try {
  for (let i = 0; i < RUNS; i++) {
    // the two forms in turn, so that a drift of the machine's speed touches both
    for (const form of forms) (results[form.name] ??= []).push(await once(form.bin))
  }
} finally {
  packaged.remove()
}
console.log(`## Start: ${PEERS} peers launched together, fresh data directories, ${RUNS} runs`)
console.log('\n| run from | a leader elected (median) | the first round\'s start (median) | runs (first round) |')
console.log('| --- | --- | --- | --- |')
for (const form of forms) {
  const runs = results[form.name]
  console.log(`| ${form.name} | ${(median(runs.map(r => r.elected)) / 1000).toFixed(1)} s | ${(median(runs.map(r => r.roundStart)) / 1000).toFixed(1)} s | ${runs.map(r => (r.roundStart / 1000).toFixed(1)).join(', ')} |`)
}
console.log(`\n${JSON.stringify({ start: results })}`)
