// npm run bench:start (part of npm run bench): from launch to the first round's start on a fresh
// network. Four peers are launched at the same moment; the first listens on a port chosen
// beforehand and its identity is made beforehand, so the others can bootstrap from it at once.
// Twice: as this checkout runs (TypeScript stripped as it loads) and as users run it, the built
// package (npm run package's bundle; its dependencies are this checkout's node_modules).
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DML_NODE_BIN, PeerProcess } from '@dml/node/launcher'

const PEERS = 4
const RUNS = 3

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise(resolve => server.close(resolve))
  return port
}

/** Milliseconds from launch to the leader's first round-start (and to its election). */
async function once (bin: string): Promise<{ elected: number, roundStart: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'dml-start-'))
  const peers: PeerProcess[] = []
  try {
    const first = join(dir, 'peer1')
    const id = execFileSync(process.execPath, [bin, 'keygen', '--data-dir', first], { encoding: 'utf8' }).trim()
    const port = await freePort()
    const common = ['--host', '127.0.0.1', '--no-mdns', '--http-port', '0', '--model', 'mlp', '--min-peers', String(PEERS)]
    const launched = Date.now()
    peers.push(new PeerProcess('peer1', [...common, '--port', String(port), '--data-dir', first], { bin }))
    for (let i = 2; i <= PEERS; i++) {
      peers.push(new PeerProcess(`peer${i}`, [...common, '--port', '0', '--data-dir', join(dir, `peer${i}`), '--bootstrap', `/ip4/127.0.0.1/tcp/${port}/p2p/${id}`], { bin }))
    }
    const at = async (event: string): Promise<number> => {
      const seen = await Promise.any(peers.map(async p => await p.waitFor(event, 60_000)))
      return (seen.ts as number) - launched
    }
    const [elected, roundStart] = await Promise.all([at('leader-elected'), at('round-start')])
    return { elected, roundStart }
  } finally {
    for (const p of peers) p.kill('SIGKILL')
    await Promise.all(peers.map(async p => await p.exited))
    rmSync(dir, { recursive: true, force: true })
  }
}

const root = fileURLToPath(new URL('..', import.meta.url))
// inside the checkout, so that the bundle finds its dependencies in node_modules
const cache = join(root, 'node_modules', '.cache')
mkdirSync(cache, { recursive: true })
const packaged = mkdtempSync(join(cache, 'dml-bench-package-'))
execFileSync(process.execPath, [join(root, 'scripts', 'build-package.ts'), packaged], { stdio: 'ignore' })
const forms = [{ name: 'the checkout (bin/dml-node.js)', bin: DML_NODE_BIN }, { name: 'the built package (dml-node.js)', bin: join(packaged, 'dml-node.js') }]
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const results: Record<string, Array<{ elected: number, roundStart: number }>> = {}
try {
  for (let i = 0; i < RUNS; i++) {
    // the two forms in turn, so that a drift of the machine's speed touches both
    for (const form of forms) (results[form.name] ??= []).push(await once(form.bin))
  }
} finally {
  rmSync(packaged, { recursive: true, force: true })
}
console.log(`## Start: ${PEERS} peers launched together, fresh data directories, ${RUNS} runs`)
console.log('\n| run from | a leader elected (median) | the first round\'s start (median) | runs (first round) |')
console.log('| --- | --- | --- | --- |')
for (const form of forms) {
  const runs = results[form.name]
  console.log(`| ${form.name} | ${(median(runs.map(r => r.elected)) / 1000).toFixed(1)} s | ${(median(runs.map(r => r.roundStart)) / 1000).toFixed(1)} s | ${runs.map(r => (r.roundStart / 1000).toFixed(1)).join(', ')} |`)
}
console.log(`\n${JSON.stringify({ start: results })}`)
