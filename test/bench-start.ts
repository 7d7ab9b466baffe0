// npm run bench:start (part of npm run bench): from launch to the first round's start on a fresh
// network. Four peers are launched at the same moment; the first listens on a port chosen
// beforehand and its identity is made beforehand, so the others can bootstrap from it at once.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
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
async function once (): Promise<{ elected: number, roundStart: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'dml-start-'))
  const peers: PeerProcess[] = []
  try {
    const first = join(dir, 'peer1')
    const id = execFileSync(process.execPath, [DML_NODE_BIN, 'keygen', '--data-dir', first], { encoding: 'utf8' }).trim()
    const port = await freePort()
    const common = ['--host', '127.0.0.1', '--no-mdns', '--http-port', '0', '--model', 'mlp', '--min-peers', String(PEERS)]
    const launched = Date.now()
    peers.push(new PeerProcess('peer1', [...common, '--port', String(port), '--data-dir', first]))
    for (let i = 2; i <= PEERS; i++) {
      peers.push(new PeerProcess(`peer${i}`, [...common, '--port', '0', '--data-dir', join(dir, `peer${i}`), '--bootstrap', `/ip4/127.0.0.1/tcp/${port}/p2p/${id}`]))
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

const runs: Array<{ elected: number, roundStart: number }> = []
for (let i = 0; i < RUNS; i++) runs.push(await once())
const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]
console.log(`## Start: ${PEERS} peers launched together, fresh data directories, ${RUNS} runs`)
console.log('\n| from launch to | median | runs |')
console.log('| --- | --- | --- |')
console.log(`| a leader elected | ${(median(runs.map(r => r.elected)) / 1000).toFixed(1)} s | ${runs.map(r => (r.elected / 1000).toFixed(1)).join(', ')} |`)
console.log(`| the first round's start | ${(median(runs.map(r => r.roundStart)) / 1000).toFixed(1)} s | ${runs.map(r => (r.roundStart / 1000).toFixed(1)).join(', ')} |`)
console.log(`\n${JSON.stringify({ start: runs })}`)
