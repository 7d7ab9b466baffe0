// npm run bench:scale: 4, 8, 16 and 32 peers (separate processes on this machine) train 5 rounds
// of little local work each; prints, per network size, the time per round, the control bytes
// (gossipsub) each peer receives per round and per second, and what the leader receives per round (control and
// blobs), and what a follower receives in blobs (updates it checks, models), on average and the median. Bytes are counted on the wire by libp2p (see /api/status "traffic"), from the end of the
// first round to the end of the last; a size where a peer does not finish says how many did. DML_BENCH_SIZES=4,8 picks the sizes; DML_BENCH_EVENTS=<path>
// writes every peer's events to <path>-<size>.json.
import { writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { getJson, LocalNetwork } from './helpers.ts'
import type { PeerProcess } from '@dml/node/launcher'

const SIZES = (process.env.DML_BENCH_SIZES ?? '4,8,16,32').split(',').map(Number)
const ROUNDS = 5
/** DML_BENCH_LEASE_MS: a longer lease (and heartbeat a fifth of it) for a machine with far more peers than cores */
const LEASE = process.env.DML_BENCH_LEASE_MS === undefined ? [] : ['--lease-ms', process.env.DML_BENCH_LEASE_MS, '--heartbeat-ms', String(Number(process.env.DML_BENCH_LEASE_MS) / 5)]
const MINUTE = 60_000

interface Traffic { control: { sent: number, received: number }, blobs: { sent: number, received: number }, total: { sent: number, received: number } }
interface Snapshot { peerId: string, isLeader: boolean, round: number, traffic: Traffic }
interface Row { peers: number, secondsPerRound: number, controlIn: number, controlInMax: number, controlOut: number, leaderControlIn: number, leaderBlobsIn: number, followerBlobsIn: number, followerBlobsInMedian: number, startSeconds: number }

async function snapshot (peers: PeerProcess[]): Promise<Snapshot[]> {
  return await Promise.all(peers.map(async p => await getJson(await p.statusUrl()) as Snapshot))
}

async function run (size: number): Promise<Row> {
  const net = new LocalNetwork()
  const launched = Date.now()
  let peers: PeerProcess[] = []
  try {
    // little local work and evaluation: the bench is about the network, not training; every peer
    // is on 127.0.0.1, so no bound on peers per address. Rounds start once half the peers follow
    // the leader (the others join the next round): with all of them required, one peer that
    // elected itself alone early (under 32 processes on 2 cores) held every round back
    peers = await net.start(size, ['--min-peers', String(Math.ceil(size / 2)), '--rounds', String(ROUNDS), '--local-epochs', '0.02', '--eval-samples', '200', '--round-timeout', '120', '--max-peers-per-ip', '0', ...LEASE])
    const first = await Promise.any(peers.map(async p => await p.waitFor('round-done', 10 * MINUTE)))
    const startSeconds = (first.ts as number - launched) / 1000 - (first.durationMs as number) / 1000
    // every peer holds round 1 before the first snapshot
    await Promise.all(peers.map(async p => await p.waitFor(e => (e.event === 'model-adopted' || e.event === 'round-done') && (e.round as number) >= 1, 10 * MINUTE)))
    const before = await snapshot(peers)
    const startedAt = Date.now()
    const finished = await Promise.allSettled(peers.map(async p => await p.waitFor('training-finished', 20 * MINUTE)))
    const behind = finished.filter(f => f.status === 'rejected').length
    if (behind > 0) throw new Error(`${size - behind} of ${size} peers finished the ${ROUNDS} rounds within 20 minutes`)
    const after = await snapshot(peers)
    const leader = after.findIndex(s => s.isLeader)
    const rounds = Math.max(1, after[leader].round - before[leader].round)
    const delta = (i: number, pick: (t: Traffic) => number): number => (pick(after[i].traffic) - pick(before[i].traffic)) / rounds
    const controlIn = after.map((_, i) => delta(i, t => t.control.received))
    const followers = after.map((_, i) => i).filter(i => i !== leader)
    // a round's checkers (at most 7) fetch every update; the other followers only the new model
    const followerBlobs = followers.map(i => delta(i, t => t.blobs.received)).sort((a, b) => a - b)
    return {
      peers: size,
      secondsPerRound: (Date.now() - startedAt) / 1000 / rounds,
      controlIn: controlIn.reduce((a, b) => a + b, 0) / size,
      controlInMax: Math.max(...controlIn),
      controlOut: after.map((_, i) => delta(i, t => t.control.sent)).reduce((a, b) => a + b, 0) / size,
      leaderControlIn: delta(leader, t => t.control.received),
      leaderBlobsIn: delta(leader, t => t.blobs.received),
      followerBlobsIn: followerBlobs.reduce((a, b) => a + b, 0) / followers.length,
      followerBlobsInMedian: followerBlobs[followerBlobs.length >> 1],
      startSeconds
    }
  } finally {
    // written whether the size finished or not: the events say why not
    if (process.env.DML_BENCH_EVENTS !== undefined) writeFileSync(`${process.env.DML_BENCH_EVENTS}-${size}.json`, JSON.stringify(peers.map(p => p.events)))
    await net.stop()
  }
}

const kb = (bytes: number): string => (bytes / 1024).toFixed(1)
const rows: Array<Row | { peers: number, failed: string }> = []
for (const size of SIZES) {
  let row: Row
  try {
    row = await run(size)
  } catch (err) {
    // a size that does not finish is a figure too: say why and go on to the next
    const why = err instanceof AggregateError ? `${(err.errors[0] as Error).message.split(';')[0]} (every peer)` : String((err as Error).message ?? err).split('\n')[0]
    rows.push({ peers: size, failed: why })
    console.log(`${size} peers: ${why}`)
    continue
  }
  rows.push(row)
  console.log(`${size} peers: ${row.secondsPerRound.toFixed(1)} s a round; control in per peer ${kb(row.controlIn)} KiB a round (most ${kb(row.controlInMax)}); leader in: control ${kb(row.leaderControlIn)} KiB, blobs ${kb(row.leaderBlobsIn)} KiB a round; a follower's blobs in ${kb(row.followerBlobsIn)} KiB a round (median ${kb(row.followerBlobsInMedian)})`)
}
console.log(`\n## Scale: ${ROUNDS} rounds of mlp with little local work (--local-epochs 0.02), ${cpus().length} cores, one machine; bytes on the wire per round, rounds 2-${ROUNDS}`)
// control bytes a second too: a round's length grows with the peers sharing this machine's cores
console.log('\n| peers | first round starts | s / round | control in / peer | (most) | control in / peer / s | control out / peer | leader control in | leader blobs in | follower blobs in | (median) |')
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
for (const r of rows) {
  if ('failed' in r) console.log(`| ${r.peers} | ${r.failed} | | | | | | | | | |`)
  else console.log(`| ${r.peers} | ${r.startSeconds.toFixed(1)} s | ${r.secondsPerRound.toFixed(1)} | ${kb(r.controlIn)} KiB | ${kb(r.controlInMax)} KiB | ${kb(r.controlIn / r.secondsPerRound)} KiB | ${kb(r.controlOut)} KiB | ${kb(r.leaderControlIn)} KiB | ${kb(r.leaderBlobsIn)} KiB | ${kb(r.followerBlobsIn)} KiB | ${kb(r.followerBlobsInMedian)} KiB |`)
}
