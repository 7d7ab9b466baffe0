// Fault tolerance on separate hosts: each dml-node in its own network namespace with its own IP,
// discovering the others by mDNS. Peers are killed (SIGKILL, no goodbye), restarted and cut off.
import { expect } from 'chai'
import { readdirSync, truncateSync } from 'node:fs'
import { join } from 'node:path'
import { Hosts, hostsOrSkip } from './hosts.ts'
import { Cluster } from './cluster.ts'

const MINUTE = 60_000
const FAST = ['--rounds', '1000', '--local-epochs', '0.1', '--eval-samples', '2000']


describe('recovery on 4 hosts', function () {
  this.timeout(4 * MINUTE)
  let hosts: Hosts
  let net: Cluster
  before(function () {
    hosts = hostsOrSkip(this, 4)
    net = new Cluster(hosts, ['--min-peers', '2', ...FAST])
  })
  after(async () => {
    await net?.destroy()
    hosts?.destroy()
  })

  it('4 hosts discover each other by mDNS across the bridge and train', async () => {
    net.startAll()
    const round = await net.waitAny(e => e.event === 'round-done' && e.participants.length === 4, 2 * MINUTE)
    expect(round.accuracy).to.be.greaterThan(0.1)
    for (const peer of net.all) expect(peer.events.filter(e => e.event === 'peer-joined')).to.have.length.at.least(3)
    const addrs = net.all.flatMap(p => p.events.filter(e => e.event === 'listening').map(e => e.addr as string))
    expect(addrs.every(a => a.startsWith('/ip4/10.201.0.'))).to.equal(true)
  })

  it('kill a worker mid-round: the round still closes by its deadline and the next one starts', async () => {
    const leader = net.leader()
    const worker = [0, 1, 2, 3].find(i => i !== leader)!
    const start = await net.waitAny(e => e.event === 'round-start', MINUTE, Date.now())
    await net.current[worker]!.waitFor(e => e.event === 'train-start' && e.round === start.round, MINUTE)
    await net.kill(worker)
    const done = await net.waitAny(e => e.event === 'round-done' && e.round === start.round, 2 * MINUTE)
    expect(done.finishedAt).to.be.at.most(start.deadline)
    expect(done.participants).to.have.length(3)
    await net.waitAny(e => e.event === 'round-start' && e.round === start.round + 1, MINUTE)
    net.roundHashes()
  })

  it('restart the killed peer: same peer id, back in a round within two rounds', async () => {
    const killed = net.current.findIndex(p => p === undefined)
    const before = net.all.filter(p => p.name === `host${killed}`)[0]
    const oldId = await before.peerId()
    const lastDone = net.events(e => e.event === 'round-done').at(-1)!.round as number
    const peer = net.start(killed)
    expect(await peer.peerId()).to.equal(oldId)
    const within = await net.waitAny(e => e.event === 'round-done' && e.participants.includes(oldId), 3 * MINUTE)
    expect(within.round).to.be.at.most(lastDone + 2)
    net.roundHashes()
  })

  it('kill the leader: a new leader is elected and the next round starts within 10 s, going on from the last finished round', async () => {
    const start = await net.waitAny(e => e.event === 'round-start', MINUTE, Date.now())
    const leader = net.leader()
    const oldTerm = start.term as number
    const killedAt = Date.now()
    await net.kill(leader)
    const next = await net.waitAny(e => e.event === 'round-start' && e.term > oldTerm, MINUTE, killedAt)
    const electionMs = next.ts - killedAt
    console.log(`      new leader ${next.host} for term ${next.term as number}, round ${next.round as number} started ${electionMs} ms after the kill`)
    expect(electionMs).to.be.below(10_000)
    const finished = Math.max(...net.events(e => e.event === 'round-done' || e.event === 'model-adopted').map(e => e.round as number))
    expect(next.round).to.equal(finished + 1)
    await net.waitAny(e => e.event === 'round-done' && e.term === next.term, 2 * MINUTE)
    net.roundHashes()
    net.start(leader)
    await net.current[leader]!.waitFor('started', MINUTE)
  })

  it('stop all peers and start them again: training resumes at the next round, a corrupt checkpoint is replaced by the previous one', async () => {
    await net.waitAny(e => e.event === 'round-done' && e.participants.length === 4, 3 * MINUTE, Date.now())
    await net.stopAll('SIGTERM')
    const checkpoints = [0, 1, 2, 3].map(i => readdirSync(join(net.dataDir(i), 'checkpoints')).filter(f => f.endsWith('.cbor')).sort())
    // damage host 0's newest checkpoint: it must fall back to the one before
    const newest = checkpoints[0].at(-1)!
    // the newest round any host still holds: a round that only host 0 had checkpointed when the
    // peers stopped (its followers had not adopted it yet) is gone with the damage
    const roundOf = (file: string): number => Number(/(\d+)/.exec(file)![1])
    const lastRound = Math.max(...checkpoints.map((files, i) => roundOf((i === 0 ? files.at(-2) : files.at(-1))!)))
    const accuracy = net.events(e => e.event === 'round-done' && e.round === lastRound)[0].accuracy
    truncateSync(join(net.dataDir(0), 'checkpoints', newest), 100)
    const restartedAt = Date.now()
    net.startAll()
    const corrupt = await net.current[0]!.waitFor('checkpoint-corrupt', MINUTE)
    expect(corrupt.error).to.include(newest)
    const loaded = await net.current[0]!.waitFor('checkpoint-loaded', MINUTE)
    expect(loaded.round).to.equal(roundOf(checkpoints[0].at(-2)!))
    const resumed = await net.waitAny(e => e.event === 'checkpoint-loaded' && e.round === lastRound, MINUTE, restartedAt)
    expect(resumed.accuracy).to.equal(accuracy)
    const next = await net.waitAny(e => e.event === 'round-start', 2 * MINUTE, restartedAt)
    expect(next.round).to.equal(lastRound + 1)
    const status = await net.status(Number(next.host.replace('host', '')))
    expect(status.history.at(-1)).to.include({ round: lastRound, accuracy })
    await net.waitAny(e => e.event === 'round-done' && e.round === lastRound + 1, 2 * MINUTE)
    net.roundHashes()
  })
})

describe('a partition of 4 hosts into 2+2', function () {
  this.timeout(6 * MINUTE)
  let hosts: Hosts
  let net: Cluster
  before(function () {
    hosts = hostsOrSkip(this, 4)
    net = new Cluster(hosts, ['--min-peers', '3', ...FAST])
  })
  after(async () => {
    await net?.destroy()
    hosts?.destroy()
  })

  it('waits on both sides while cut for 30 s; after healing, one leader and one model, with all four peers within three rounds', async () => {
    net.startAll()
    await net.waitAny(e => e.event === 'round-done' && e.participants.length === 4, 2 * MINUTE)
    const leader = net.leader()
    const side = [0, 1, 2, 3].filter(i => i !== leader).slice(0, 2) // the side without the leader
    const cutAt = Date.now()
    hosts.cut(side)
    // the leaderless side elects its own leader, and neither side (2 < --min-peers 3) finishes rounds
    await net.waitAny(e => e.event === 'leader-elected' && side.includes(Number(e.host.replace('host', ''))), MINUTE, cutAt)
    await new Promise(resolve => setTimeout(resolve, Math.max(0, cutAt + 30_000 - Date.now()))) // the partition lasts 30 s
    const doneWhileCut = net.events(e => e.event === 'round-done' && e.ts > cutAt + 10_000)
    expect(doneWhileCut, 'rounds finished during the partition').to.have.length(0)
    // the old leader says why nothing happens: its round can't close, it waits for peers
    const said = net.events(e => e.host === `host${leader}` && e.ts > cutAt && (e.event === 'round-retry' || e.event === 'waiting-for-peers'))
    expect(said.length, 'the leader says it is waiting').to.be.greaterThan(0)
    const healedAt = Date.now()
    hosts.heal()
    const lastBefore = Math.max(...net.events(e => e.event === 'round-done').map(e => e.round as number))
    // all four in one round within three rounds of the heal (a peer of the cut-off side may still be
    // catching up on the first round or two)
    const converged = await net.waitAny(e => e.event === 'round-done' && (e.participants as string[]).length === 4 && e.round > lastBefore, 4 * MINUTE, healedAt)
    console.log(`      healed; round ${converged.round as number} done with all 4 peers ${converged.ts - healedAt} ms later by ${converged.host} (term ${converged.term as number})`)
    expect(converged.round).to.be.at.most(lastBefore + 3)
    const statuses = await Promise.all([0, 1, 2, 3].map(async i => await net.status(i)))
    expect(new Set(statuses.map(s => s.leader)).size).to.equal(1)
    expect(statuses.filter(s => s.isLeader)).to.have.length(1)
    // and the recovery is counted: peers lost and rejoined; the cut-off side changed leaders twice
    // (its own, then back to the side with more finished rounds), the other side kept its leader
    for (const [i, s] of statuses.entries()) {
      expect(s.recovery.peersLost).to.be.at.least(2)
      expect(s.recovery.peersJoined).to.be.at.least(5)
      expect(s.recovery.leaderChanges, `host${i}`).to.be.at.least(side.includes(i) ? 2 : 1)
    }
    // every peer holds the model of the round just finished (or is fetching the next one)
    await Promise.all([0, 1, 2, 3].map(async i => await net.current[i]!.waitFor(e => (e.event === 'model-adopted' || e.event === 'round-done') && e.round === converged.round, MINUTE)))
    expect(net.roundHashes().get(converged.round)).to.equal(converged.modelHash)
  })
})
