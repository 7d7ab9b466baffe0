// The round engine (Coordinator, Worker, Replica, Membership, wired by DmlNode) on an in-memory
// network with fake time. Every fault ends in a closed round or a handed-over leadership.
import { expect } from 'chai'
import { decodeMessage, encodeMessage, encodeTermCert, MAX_ROUND_CHECKERS, PROTOCOL_VERSION, roundCheckers, voteSigningBytes, type Heartbeat, type NamedTensor, type RoundStart } from '@dml/protocol'
import { graceMs, MAX_FAILURES_IN_A_ROW } from '@dml/node'
import { modelPart } from '@dml/trainer'
import { addIdler, addLiar, addSybil, CONFIG, TASK, TestCluster, type TestPeer } from './support/cluster.ts'

/** Tensors of the given shapes, all zero but the first value. */
const tensors = (first: number, fill = 0) => (shapes: number[][]): NamedTensor[] =>
  shapes.map((shape, i) => {
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(fill)
    if (i === 0) values[0] = first
    return { name: `w${i}`, shape, values }
  })

/** A training that ends with `value` in the first weight. */
const trainsTo = (value: number) => (weights: NamedTensor[]): NamedTensor[] =>
  weights.map((w, i) => ({ ...w, values: w.values.map((v, j) => i === 0 && j === 0 ? value : v + 1) }))

/** The leader's RoundStart messages, in order. */
function roundStarts (peer: TestPeer): RoundStart[] {
  return peer.net.published.filter((m): m is RoundStart => m.type === 'round-start')
}

describe('round engine', function () {
  let net: TestCluster
  beforeEach(async () => { net = await TestCluster.create() })
  afterEach(async () => { await net.stop() })

  it('neighbours that subscribe within a quarter interval of the last heartbeat hear one at its end, not a whole interval later', async () => {
    const peer = net.add({ config: { minPeers: 2 } }) // alone, it waits: only heartbeats go out
    const beats = (): number => peer.net.published.filter(m => m.type === 'heartbeat' && m.peer === peer.id).length
    await net.clock.advance(10)
    const first = beats()
    expect(first).to.be.at.least(1) // its first, as it started: before it had neighbours
    peer.node.subscribed()
    peer.node.subscribed()
    await net.clock.advance(200)
    expect(beats()).to.equal(first) // within the quarter interval: held
    await net.clock.advance(60)
    expect(beats()).to.equal(first + 1) // at its end, one for both (the next tick is at 1000 ms)
    await net.clock.advance(300)
    peer.node.subscribed() // long after the last: at once
    await net.clock.advance(1)
    expect(beats()).to.equal(first + 2)
  })

  it('three peers elect one leader, finish every round, and end on one model', async () => {
    const peers = [net.add(), net.add(), net.add()]
    await net.until('5 rounds done', () => peers.every(p => p.node.replica.finished))
    const done = net.roundsDone()
    expect(done.map(d => d.round)).to.deep.equal([1, 2, 3, 4, 5])
    expect(done.every(d => (d.participants as string[]).length === 3)).to.equal(true)
    expect(new Set(peers.map(p => p.node.replica.global!.hash)).size).to.equal(1)
    expect(peers.filter(p => p.node.status().isLeader)).to.have.length(1)
    expect(peers.map(p => p.node.status().recovery.electionsWon).reduce((a, b) => a + b)).to.equal(1) // one election, won once
    // every peer checkpointed every round
    for (const p of peers) expect(p.checkpoints.map(c => c.round)).to.include.members([1, 2, 3, 4, 5])
    // a finished run: every round done, nothing in progress
    expect(peers[0].node.status()).to.deep.include({ progress: 1, roundProgress: null })
    // a live leader's announcement comes first: nobody certifies a round on its own
    expect(net.events('round-self-certified')).to.have.length(0)
  })

  for (const serverOptimizer of ['momentum', 'adam']) {
    it(`with a server optimizer (${serverOptimizer}), its state travels in the model blob: every participant computes the same step and signs`, async () => {
      const task = { ...TASK, strategy: { ...TASK.strategy, serverOptimizer, serverLr: serverOptimizer === 'adam' ? 0.01 : 1 } }
      const peers = [0, 1, 2].map(() => net.add({ config: { task } }))
      await net.until('5 rounds done', () => peers.every(p => p.node.replica.finished))
      const done = net.roundsDone()
      expect(done.map(d => d.round)).to.deep.equal([1, 2, 3, 4, 5])
      expect(new Set(peers.map(p => p.node.replica.global!.hash)).size).to.equal(1)
      const blob = peers[0].node.replica.global!.weights
      expect(blob.map(w => w.name)).to.include('server/m/w0')
      // momentum carries the model further than the updates alone: each update adds 1 to every value
      const first = modelPart(blob)[1].values[0]
      if (serverOptimizer === 'momentum') expect(first).to.be.above(5)
      else expect(first).to.be.above(0)
      expect(net.events('proposal-rejected')).to.have.length(0)
    })
  }

  for (const [what, value, reason] of [['NaN', NaN, 'non-finite'], ['Infinity', Infinity, 'non-finite'], ['-Infinity', -Infinity, 'non-finite']] as const) {
    it(`an update holding ${what} is dropped and named; the round closes with the rest`, async () => {
      const leader = net.add()
      net.add()
      // this peer lies: its update holds a non-finite value, its metrics look fine
      const liar = addLiar(net, { weights: tensors(value) })
      await net.until('two of its updates dropped', () => net.events('update-rejected', e => e.node === leader.id).length >= 2)
      const dropped = net.events('update-rejected', e => e.node === leader.id)
      expect(dropped.length).to.be.at.least(2)
      expect(dropped[0]).to.include({ reason, peer: liar.peerId })
      expect(dropped[0].msg).to.include(liar.peerId.slice(-6)).and.include(reason)
      for (const d of net.roundsDone()) expect(d.participants).to.not.include(liar.peerId)
      expect(net.roundsDone()[0].participants).to.have.length(2)
      expect(leader.node.status().rejectedUpdates[reason]).to.be.at.least(2)
      // the round did not wait for its deadline (60 s): it closed once every peer had reported
      expect(net.roundsDone()[0].durationMs).to.be.below(10_000)
    })
  }

  it('an update claiming more samples than assigned is dropped: one peer cannot dominate FedAvg', async () => {
    const leader = net.add()
    net.add()
    const liar = addLiar(net, { weights: tensors(1e6, 1e6), numSamples: () => Number.MAX_SAFE_INTEGER })
    await net.until('2 rounds done', () => net.roundsDone().length >= 2)
    expect(net.events('update-rejected', e => e.node === leader.id)[0]).to.include({ reason: 'too-many-samples', peer: liar.peerId })
    // the aggregate is the honest peers' (every value + 1 per round), untouched by the liar's 1e6
    expect(leader.node.replica.global!.weights[0].values[0]).to.be.below(10)
  })

  it('an update whose blob never arrives is dropped at the transfer deadline, and the round closes', async () => {
    const leader = net.add()
    net.add()
    const silent = net.add()
    await net.until('round 1 done', () => net.roundsDone().length >= 1)
    silent.net.serving = 'stall' // announces its update, then never serves it
    const before = net.roundsDone().length
    await net.until('the next round done', () => net.roundsDone().length > before)
    const next = net.roundsDone()[before]
    expect(next.participants).to.have.length(2)
    expect(net.events('update-rejected', e => e.node === leader.id && e.reason === 'fetch-failed')[0].detail).to.match(/no complete answer within 10000 ms/)
    expect(next.durationMs).to.be.below(60_000) // not the round's deadline: the transfer's
  })

  it('an assigned peer that never reports: once the others are in, the round waits for it about as long again, not until its deadline', async () => {
    net.add()
    net.add()
    const stuck = net.add({ behaviour: { train: 'hang' } })
    await net.until('round 1 done', () => net.roundsDone().length >= 1, 200_000)
    const first = net.roundsDone()[0]
    expect(first.participants).to.not.include(stuck.id)
    expect(first.participants).to.have.length(2)
    expect(first.durationMs).to.be.within(3500, 5000) // the others trained 2 s; the deadline is a minute
  })

  it('how long a round waits for its missing peers once enough are in: as long again, or longer for more work', () => {
    const work = (samples: number) => ({ peer: `p${samples}`, samples, shard: [0, 1] as [number, number] })
    // the missing peer has the typical work: twice the time it took
    expect(graceMs(2000, [work(100)], [work(90), work(100), work(110)], 1000)).to.equal(4000)
    // it was given four times the typical work (more data of its own): six times
    expect(graceMs(2000, [work(400)], [work(90), work(100), work(110)], 1000)).to.equal(12_000)
    // a quick round still waits the minimum more; with nothing delivered, twice
    expect(graceMs(100, [work(100)], [work(100)], 1000)).to.equal(1100)
    expect(graceMs(2000, [work(100)], [], 1000)).to.equal(4000)
  })

  it('a follower that takes work and never delivers is waited for only briefly, and benched: only every other round, then fewer, wait for it', async () => {
    net.add()
    net.add()
    const idle = net.add({ behaviour: { train: 'hang' } })
    await net.until('4 rounds done', () => net.roundsDone().length >= 4, 600_000)
    const [r1, r2, r3, r4] = net.roundsDone()
    expect(r1.durationMs).to.be.within(3500, 5000) // nobody proven yet: it was given work, and the round waited for it as long again as the others took
    expect(r2.durationMs).to.be.below(3000) // benched for one round: nothing to wait for
    // given work again, as a newcomer now (it never brought an update): waited for only as long again as the others took
    expect(r3.durationMs).to.be.within(3500, 5000)
    expect(r4.durationMs).to.be.below(3000) // benched for two rounds now
    const benched = net.events('peer-benched', e => e.peer === idle.id)
    expect(benched.map(b => b.rounds)).to.deep.equal([1, 2])
  })

  it('made-up identities outnumbering the peers: one newcomer a round, at a typical speed; no election, no stalled round', async () => {
    const long = { config: { task: { ...TASK, totalRounds: 12 } } }
    const honest = [net.add(long), net.add(long), net.add(long)]
    await net.until('round 2 done', () => net.roundsDone().length >= 2)
    const leader = net.leader()!
    const sybils = Array.from({ length: 8 }, () => addSybil(net))
    const ids = new Set(sybils.map(s => s.peerId))
    await net.until('training finished', () => honest.every(p => p.node.replica.finished), 600_000)
    const later = roundStarts(leader).filter(s => s.round > 3)
    for (const start of later) {
      const newcomers = start.assignments.filter(a => ids.has(a.peer))
      expect(newcomers.length, `newcomers in round ${start.round}`).to.be.at.most(1)
      // capped at the median speed of the proven peers: the newcomer takes no more than an honest peer's share
      const share = Math.max(...start.assignments.filter(a => !ids.has(a.peer)).map(a => a.samples))
      for (const n of newcomers) expect(n.samples).to.be.at.most(share)
    }
    expect(later.some(s => s.assignments.some(a => ids.has(a.peer))), 'newcomers get a chance').to.equal(true)
    // the one leader all along: the identities count nowhere in a quorum
    expect(net.events('leader-elected')).to.have.length(1)
    expect(net.events('round-retry')).to.have.length(0)
    // a round with a newcomer waits for it about as long again as the others took (2 s here), no more
    for (const d of net.roundsDone().filter(d => (d.round as number) > 3)) expect(d.durationMs, `round ${String(d.round)}`).to.be.at.most(4000)
    expect(leader.node.status().nodes.filter(n => n.proven).map(n => n.peerId).sort()).to.deep.equal(honest.map(p => p.id).sort())
  })

  it('a worker that cannot do its work says why; the leader names it and does not wait for the deadline', async () => {
    const leader = net.add()
    net.add()
    const broken = net.add({ behaviour: { train: 'throw' } })
    await net.until('round 1 done', () => net.roundsDone().length >= 1)
    const failed = net.events('work-failed', e => e.node === leader.id)[0]
    expect(failed).to.include({ peer: broken.id })
    expect(failed.reason).to.match(/unknown model "tiny-net"/)
    expect(failed.msg).to.include(broken.id.slice(-6))
    expect(net.roundsDone()[0].durationMs).to.be.below(10_000)
    expect(leader.node.status().rejectedUpdates['work-failed']).to.equal(1)
  })

  it('a diverged local training is reported as such, not sent', async () => {
    const leader = net.add()
    const diverged = net.add({ behaviour: { update: trainsTo(NaN) } })
    await net.until('round 1 done', () => net.roundsDone().length >= 1)
    expect(net.events('train-error', e => e.node === diverged.id)[0].msg).to.match(/training diverged/)
    expect(net.events('work-failed', e => e.node === leader.id)[0]).to.include({ peer: diverged.id })
    expect(diverged.net.published.some(m => m.type === 'update-ready')).to.equal(false)
  })

  it('a checker fetches each update as it is announced, ahead of the proposal: its check finds them here', async () => {
    const config = { minPeers: 3, task: { ...TASK, totalRounds: 1 } }
    const peers = [net.add({ config }), net.add({ config }), net.add({ config, behaviour: { trainMs: 6000 } })]
    const fetches: Array<{ peer: string, hash: string, at: number, here: boolean }> = []
    for (const p of peers) {
      const fetchBlob = p.net.fetchBlob.bind(p.net)
      p.net.fetchBlob = async (hash, from, options) => {
        fetches.push({ peer: p.id, hash, at: net.clock.now(), here: p.net.blobs.get(hash) !== undefined })
        return await fetchBlob(hash, from, options)
      }
    }
    await net.until('round 1 done', () => net.roundsDone().length >= 1)
    const leader = net.leader()!
    const proposedAt = net.events('round-proposed')[0].ts
    const announced = peers.flatMap(p => p.net.published.filter(m => m.type === 'update-ready').map(m => ({ from: p.id, hash: (m as { hash: string }).hash })))
    // the followers' (the leader hands its own to itself)
    expect(announced.map(u => u.from).sort()).to.deep.equal(peers.filter(p => p !== leader).map(p => p.id).sort())
    // the slow peer checks the update the fast follower announced seconds before the proposal
    const [fast, slow] = [peers[1], peers[2]]
    expect(leader).to.equal(peers[0])
    const update = announced.find(u => u.from === fast.id)!
    const mine = fetches.filter(f => f.peer === slow.id && f.hash === update.hash)
    expect(mine[0].at, 'fetched ahead of the proposal').to.be.below(proposedAt - 1000)
    // the check's own fetch finds it here
    expect(mine.length).to.be.at.least(2)
    expect(mine.slice(1).every(f => f.here)).to.equal(true)
  })

  it('a stalled transfer of the start model falls over to the next source', async () => {
    // rounds long enough for a newcomer's stalled fetch (a newcomer is waited for only about as long as the round took)
    const long = { config: { task: { ...TASK, totalRounds: 30 } }, behaviour: { trainMs: 15_000 } }
    const [a, b] = [net.add(long), net.add(long)]
    await net.until('round 1 done', () => net.roundsDone().length >= 1)
    const leader = net.leader()!
    const other = leader === a ? b : a
    await net.until('the other peer holds round 1', () => other.node.replica.round >= 1)
    // a newcomer must fetch the model; the leader (asked first) stalls towards it, the other peer serves
    const late = net.add({ ...long, behaviour: { trainMs: 1000 } })
    leader.net.serving = (requester) => requester === late.id ? 'stall' : 'serve'
    await net.until('the newcomer trained a round', () => net.events('train-done', e => e.node === late.id).length > 0)
    const assigned = roundStarts(leader).find(s => s.assignments.some(x => x.peer === late.id))!
    const startedAt = net.events('round-start', e => e.node === leader.id && e.round === assigned.round)[0].ts
    const trainStart = net.events('train-start', e => e.node === late.id)[0].ts
    // one transfer deadline (10 s) for the leader, then the other peer answered at once
    expect(trainStart - startedAt).to.be.within(10_000, 11_000)
  })

  it('evaluation that throws: the round is retried, and after repeated failures leadership passes to another peer', async () => {
    const first = net.add({ behaviour: { evaluate: 'throw' } })
    net.add()
    net.add()
    await net.until('a round done', () => net.roundsDone().length >= 1, 300_000)
    const failures = net.events('round-failed', e => e.node === first.id)
    expect(failures).to.have.length(MAX_FAILURES_IN_A_ROW)
    expect(failures[0].error).to.match(/the test set is unreadable/)
    const resigned = net.events('leader-resigned', e => e.node === first.id)
    expect(resigned).to.have.length(1)
    expect(resigned[0].reason).to.match(/failed in a row.*the test set is unreadable/)
    const done = net.roundsDone()[0]
    expect(done.node).to.not.equal(first.id)
    expect(done.term).to.be.greaterThan(resigned[0].term as number)
    expect(first.node.status().recovery.resignations).to.equal(1)
  })

  it('a round start that comes while its leader is not proven to this peer is kept, and trained once it is', async () => {
    // as when more peers join than voted for the term: the follower drops the leader until its
    // next heartbeat proves it again, and the leader's next round start can come in between
    const first = net.add()
    const second = net.add()
    net.add()
    const receive = second.net.receive.bind(second.net)
    let lost = false
    second.net.receive = (bytes, from) => {
      const message = decodeMessage(bytes)
      if (message.type === 'round-start' && message.round === 2 && !lost) {
        lost = true
        second.node.election.leaderLost()
      }
      receive(bytes, from)
    }
    await net.until('2 rounds done', () => net.roundsDone().length >= 2, 300_000)
    const [one, two] = net.roundsDone()
    expect(lost).to.equal(true)
    expect(one.node).to.equal(first.id)
    expect(two.participants).to.include(second.id)
    expect(two.durationMs).to.be.at.most(2 * (one.durationMs as number)) // nobody waited for a lost start
    expect(second.node.status().misbehaviour.offences).to.deep.equal({})
  })

  it('a checker that missed its leader\'s new start of a round (a retry, with other checkers) takes the result for none of its business, not for a lie, and adopts the certified round', async () => {
    // as after a partition heals: the peer took the round's first start, followed another leader
    // while the round was started again, and came back to see the retried round's result
    const config = { config: { minPeers: 2 } }
    const peers = [net.add(config), net.add(config), net.add(config), net.add(config)]
    await net.until('a leader', () => net.leader() !== undefined)
    const leader = net.leader()!
    const [missing, gone, other] = peers.filter(p => p !== leader)
    // the round's first start goes without updates (its deadline passes), and one peer leaves
    // meanwhile, so that the second start draws its checkers from another pool
    let firstStart = true
    for (const p of [missing, gone, other]) {
      const publish = p.net.publish.bind(p.net)
      p.net.publish = async (m) => { if (!(m.type === 'update-ready' && m.round === 2 && firstStart)) await publish(m) }
    }
    const leaderPublish = leader.net.publish.bind(leader.net)
    leader.net.publish = async (m) => {
      if (m.type === 'update-ready' && m.round === 2 && firstStart) return
      if (m.type === 'round-start' && m.round === 2) gone.net.disconnect()
      await leaderPublish(m)
    }
    const receive = missing.net.receive.bind(missing.net)
    let starts = 0
    missing.net.receive = (bytes, from) => {
      const m = decodeMessage(bytes)
      if (m.type === 'round-start' && m.round === 2 && ++starts > 1) return // the second start never reaches it
      receive(bytes, from)
    }
    await net.until('the round started again', () => net.events('round-retry', e => e.round === 2).length > 0, 300_000)
    firstStart = false
    await net.until('round 2 done', () => net.roundsDone().some(d => d.round === 2), 300_000)
    const done = net.roundsDone().find(d => d.round === 2)!
    expect(starts).to.equal(2)
    await net.until('the peer that missed the start adopts round 2', () => missing.node.replica.round >= 2, 300_000)
    expect(missing.node.replica.history.find(r => r.round === 2)?.modelHash).to.equal(done.modelHash)
    expect(missing.node.status().misbehaviour.offences).to.deep.equal({})
    expect(net.events('leader-distrusted')).to.deep.equal([])
    expect(net.events('proposal-skipped', e => e.node === missing.id && e.round === 2)).to.have.length(1)
    expect(net.events('round-signed', e => e.node === other.id && e.round === 2)).to.have.length(1)
  })

  it('browser tabs train, check and sign like any peer, and never lead: not at the start, nor when the leader dies', async () => {
    const tabs = [net.add({ device: 'browser' }), net.add({ device: 'browser' })]
    const nodes = [net.add(), net.add()]
    await net.until('two rounds', () => net.roundsDone().length >= 2)
    expect(nodes).to.include(net.leader())
    const done = net.roundsDone()[1]
    expect(done.participants).to.include.members(tabs.map(t => t.id))
    expect(net.events('round-signed', e => tabs.some(t => t.id === e.node)).length).to.be.at.least(2)
    expect(nodes[0].node.status().browserNodes).to.equal(2)
    // the leader dies: the other node leads, though each tab ranks as high as it does
    const leader = net.leader()!
    leader.net.disconnect()
    const rounds = net.roundsDone().length
    await net.until('a round by the other node', () => net.roundsDone().length > rounds + 1, 300_000)
    expect(net.leader()).to.equal(nodes.find(n => n !== leader))
    expect(net.events('election-started', e => tabs.some(t => t.id === e.node))).to.deep.equal([])
    expect(net.events('voted', e => tabs.some(t => t.id === e.candidate))).to.deep.equal([])
  })

  it('a peer restarted during a round it was given work in (a reloaded tab) gets the round start again, and the round does not wait out its deadline', async () => {
    const config = { minPeers: 3 }
    const peers = [net.add({ config }), net.add({ config }), net.add({ config, device: 'browser' })]
    await net.until('round 1 done', () => peers.every(p => p.node.replica.round >= 1))
    const tab = peers[2]
    await net.until('round 2 started, the tab training', () => tab.node.status().nodes.find(n => n.peerId === tab.id)?.work?.round === 2)
    const started = net.events('round-start', e => e.round === 2).at(-1)!
    // it reloads before it sends its update: a new page, the same key, no memory of the round
    await tab.node.stop()
    tab.net.disconnect()
    const back = net.add({ config, device: 'browser', restarting: tab })
    await net.until('round 2 done', () => net.roundsDone().some(e => e.round === 2))
    const done = net.roundsDone().find(e => e.round === 2)!
    expect(done.participants).to.include(back.id)
    expect(done.ts - started.ts, 'round 2 took').to.be.below(15_000) // its deadline was 36 s after its start
    expect(net.events('round-retry')).to.deep.equal([])
    expect(net.events('round-start-resent', e => e.round === 2 && e.peer === back.id).length).to.be.at.least(1)
    // the peers that held the start took the one sent again as the same: none trained twice
    const trained = net.events('train-start', e => e.round === 2).map(e => e.node)
    expect(trained.filter(id => id !== tab.id).sort()).to.deep.equal(peers.slice(0, 2).map(p => p.id).sort())
  })

  it('a peer that stops says so: the others drop it at once; a leader that stops is replaced without waiting out its lease', async () => {
    const peers = [net.add(), net.add(), net.add(), net.add()]
    await net.until('round 1 done', () => net.roundsDone().length >= 1)
    const leader = net.leader()!
    const follower = peers.find(p => p !== leader)!
    const stoppedAt = net.clock.now()
    await follower.node.stop()
    follower.net.disconnect()
    await net.until('the others drop the follower', () => net.events('peer-left', e => e.peer === follower.id).length === 3)
    expect(net.clock.now() - stoppedAt).to.be.below(1000)
    expect(net.events('peer-lost', e => e.peer === follower.id)).to.deep.equal([])
    const handedAt = net.clock.now()
    await leader.node.stop()
    leader.net.disconnect()
    await net.until('a new leader', () => net.leader() !== undefined && net.leader() !== leader)
    // the lease is 5 s: a leader that vanished without a word is replaced after it
    expect(net.clock.now() - handedAt, `handed over in ${net.clock.now() - handedAt} ms`).to.be.below(5000)
    expect(net.events('peer-lost', e => e.peer === leader.id)).to.deep.equal([])
  })

  it('the status shows the round in progress: examples trained of those assigned, over every peer, and an ETA', async () => {
    const peers = [net.add(), net.add(), net.add()]
    await net.until('round 1 done', () => peers.every(p => p.node.replica.round >= 1))
    await net.until('round 2 half trained', () => (peers[0].node.status().roundProgress?.fraction ?? 0) >= 0.45)
    const status = peers[0].node.status()
    const progress = status.roundProgress!
    expect(progress.round).to.equal(2)
    expect(progress.done).to.be.at.most(progress.total)
    expect(status.progress).to.be.above(1 / 5).and.below(2 / 5)
    expect(status.nodes.every(n => n.work !== null && n.work.round === 2)).to.equal(true)
    expect(progress.trainingEtaSeconds).to.be.a('number')
  })

  it('a leader that dies as it announces a certified round: the round stands, as certified, and training goes on from it', async () => {
    // the participants saw a quorum sign the result; the announcement (and the certificate) died with the leader
    const peers = [net.add(), net.add(), net.add()]
    await net.until('a leader', () => net.leader() !== undefined)
    const leader = net.leader()!
    const publish = leader.net.publish.bind(leader.net)
    leader.net.publish = async (message) => {
      if (message.type === 'round-done' && message.round === 2) leader.net.disconnect()
      await publish(message)
    }
    const rest = peers.filter(p => p !== leader)
    await net.until('round 3 done without the old leader', () => rest.every(p => p.node.replica.round >= 3), 300_000)
    const announced = net.events('round-done', e => e.node === leader.id && e.round === 2)
    expect(announced).to.have.length(1)
    for (const p of rest) {
      expect(p.node.replica.history.find(r => r.round === 2)?.modelHash).to.equal(announced[0].modelHash)
    }
    expect(net.events('round-done', e => e.round === 2)).to.have.length(1) // nobody did round 2 again
    expect(net.events('round-self-certified').length).to.be.at.least(1)
  })

  it('a leader cut off as its announcement goes out: its followers, whose fetch of the certificate stalls, adopt the round they certified themselves at once, not after the transfer timeout', async () => {
    // as when a partition falls between a round's announcement and the fetch of its certificate:
    // judged only after the stalled fetch, the certificate no longer proved anything to peers that
    // by then saw too few of its signers
    const peers = [net.add(), net.add(), net.add()]
    await net.until('a leader', () => net.leader() !== undefined)
    const leader = net.leader()!
    const publish = leader.net.publish.bind(leader.net)
    let cut = false
    leader.net.publish = async (message) => {
      if (cut) return
      if (message.type === 'round-done' && message.round === 2) {
        cut = true
        leader.net.serving = 'stall'
      }
      await publish(message)
    }
    const rest = peers.filter(p => p !== leader)
    await net.until('round 2 announced', () => cut)
    const announcedAt = net.clock.now()
    await net.until('round 2 adopted by the others', () => rest.every(p => p.node.replica.round >= 2), 300_000)
    expect(net.clock.now() - announcedAt).to.be.below(CONFIG.transferTimeoutMs / 2)
    expect(net.events('round-self-certified', e => e.round === 2).length).to.be.at.least(1)
  })

  it('a participant whose round signature is forged: the leader and the other participants name it, and rounds go on with the rest', async () => {
    const peers = [net.add(), net.add(), net.add()]
    await net.until('a leader', () => net.leader() !== undefined)
    const liar = peers.find(p => p !== net.leader())!
    const publish = liar.net.publish.bind(liar.net)
    liar.net.publish = async (message) => {
      await publish(message.type === 'round-vote' ? { ...message, signature: new Uint8Array(64).fill(7) } : message)
    }
    await net.until('2 rounds done', () => net.roundsDone().length >= 2, 300_000)
    for (const p of peers.filter(p => p !== liar)) expect(p.node.status().misbehaviour.offences['bad-vote'], p === net.leader() ? 'the leader' : 'the other participant').to.be.at.least(1)
    expect(net.roundsDone().every(d => (d.signers as number) === 2)).to.equal(true)
  })

  it('a leader that evaluates slowly: the participants\' signatures that come first still count', async () => {
    const first = net.add({ behaviour: { evaluateMs: 5000 } })
    net.add()
    net.add()
    await net.until('first is leading', () => first.node.isLeading)
    await net.until('a round done', () => net.roundsDone().length >= 1, 300_000)
    expect(net.events('round-failed')).to.have.length(0)
    const done = net.roundsDone()[0]
    expect(done.node).to.equal(first.id)
    expect(done.signers).to.equal(3)
  })

  it('evaluation that never returns: the watchdog hands leadership over', async () => {
    const first = net.add({ behaviour: { evaluate: 'hang' } })
    net.add()
    net.add() // two of three sign without the first: with two peers, both would have to
    await net.until('a round done', () => net.roundsDone().length >= 1, 600_000)
    const resigned = net.events('leader-resigned', e => e.node === first.id)
    expect(resigned).to.have.length(1)
    expect(resigned[0].reason).to.match(/made no progress in its evaluating phase/)
    expect(net.roundsDone()[0].node).to.not.equal(first.id)
  })

  it('a result that no participant can check gets no certificate: the round does not count, and leadership passes on', async () => {
    const first = net.add()
    const others = [net.add(), net.add()]
    await net.until('first is leading', () => first.node.isLeading)
    first.net.serving = 'fail' // nobody can fetch the leader's result or its model
    await net.until('a round done', () => net.roundsDone().length >= 1, 600_000)
    // no round finished on the leader's word alone: its attempts failed, none was announced
    expect(first.net.published.some(m => m.type === 'round-done')).to.equal(false)
    expect(net.events('round-failed', e => e.node === first.id)[0].error).to.match(/only 1 of 3 checkers signed the result of round 1/)
    expect(net.events('leader-resigned', e => e.node === first.id)).to.have.length(1)
    // nobody could check it: nobody is benched for not signing
    expect(net.events('peer-benched', e => e.reason === 'no signature')).to.have.length(0)
    const done = net.roundsDone()[0]
    expect(done.round).to.equal(1)
    expect(others.map(o => o.id)).to.include(done.node)
    expect(done.signers).to.be.at.least(2)
  })

  it('a leader whose training has finished stays leader and does not resign', async () => {
    const peers = [net.add({ config: { task: { ...TASK, totalRounds: 2 } } }), net.add({ config: { task: { ...TASK, totalRounds: 2 } } })]
    await net.until('finished', () => peers.every(p => p.node.replica.finished))
    const leader = net.leader()!
    await net.clock.advance(300_000)
    expect(net.events('leader-resigned')).to.have.length(0)
    expect(net.leader()).to.equal(leader)
    expect(leader.node.status().state).to.equal('finished')
  })

  it('a finished network whose leader leaves first: the others, on their way out too, elect no one', async () => {
    const task = { ...TASK, totalRounds: 2 }
    const peers = [0, 1, 2].map(() => net.add({ config: { task } }))
    await net.until('finished', () => peers.every(p => p.node.replica.finished))
    const leader = net.leader()!
    // as --exit-when-done does: each waits until the live peers hold its model, then leaves
    let drained = false
    const draining = Promise.all(peers.filter(p => p !== leader).map(async p => { await p.node.drain(15_000) })).then(() => { drained = true })
    await net.until('the others drained', () => drained)
    await draining
    const left = net.clock.now()
    leader.net.disconnect()
    await net.clock.advance(60_000)
    expect(net.events('leader-lost', e => e.ts >= left)).to.have.length.above(0)
    expect(net.events('election-started', e => e.ts >= left)).to.have.length(0)
  })

  it('in a network of twelve, followers beat every other interval (the leader every one), none is dropped for it, and rounds go on', async () => {
    const peers = Array.from({ length: 12 }, () => net.add({ config: { task: { ...TASK, totalRounds: 100 } } }))
    await net.until('2 rounds done', () => net.roundsDone().length >= 2)
    const from = peers.map(p => p.net.published.length)
    const start = net.clock.now()
    await net.clock.advance(20_000)
    const beats = peers.map((p, i) => p.net.published.slice(from[i]).filter(m => m.type === 'heartbeat'))
    const leader = peers.indexOf(net.leader()!)
    expect(beats[leader].length).to.be.at.least(19)
    for (const [i, sent] of beats.entries()) {
      if (i === leader) continue
      // ten in 20 s, and one more for each round held or leader followed
      expect(sent.length).to.be.within(9, 16)
      expect(sent.map(h => h.type === 'heartbeat' && h.everyMs)).to.include(2000)
    }
    expect(net.events('peer-lost')).to.have.length(0)
    expect(net.roundsDone().filter(d => d.ts >= start).length).to.be.at.least(2)
  })

  it('in a network of ten, each round is checked and signed by its seven checkers alone; the others take the certified model', async () => {
    const peers = Array.from({ length: 10 }, () => net.add())
    await net.until('5 rounds done', () => peers.every(p => p.node.replica.finished))
    const leader = net.leader()!
    const starts = new Map(roundStarts(leader).map(s => [s.round, s]))
    for (const done of net.roundsDone()) {
      const start = starts.get(done.round as number)!
      // drawn by hash from the round's members when it started, as its start says
      const checkers = start.checkers
      expect(new Set(checkers)).to.deep.equal(new Set(roundCheckers(peers.map(p => p.id), start.modelHash)))
      expect(checkers).to.have.length(MAX_ROUND_CHECKERS)
      // only checkers check (the leader's own signature is not a round-signed event), and a quorum of them signs
      const signers = net.events('round-signed', e => e.round === done.round).map(e => e.node)
      expect(signers.every(s => checkers.includes(s))).to.equal(true)
      expect(done.signers).to.be.within(4, MAX_ROUND_CHECKERS)
    }
    expect(new Set(peers.map(p => p.node.replica.global!.hash)).size).to.equal(1)
  })

  it('checkers that check and never sign: the round fails once, they are benched, and the round is done again with other checkers', async () => {
    const peers = Array.from({ length: 10 }, () => net.add())
    // four of round 1's checkers (other than the leader) never sign: without them no quorum of seven
    const silent = new Set<string>()
    for (const p of peers) {
      const publish = p.net.publish.bind(p.net)
      p.net.publish = async (message) => {
        if (message.type !== 'round-vote') return await publish(message)
        if (silent.size === 0) {
          const leader = net.leader()!
          const first = roundStarts(leader).find(s => s.round === 1)!
          for (const c of first.checkers.filter(c => c !== leader.id).slice(0, 4)) silent.add(c)
        }
        if (!silent.has(p.id)) await publish(message)
      }
    }
    await net.until('3 rounds done', () => net.roundsDone().length >= 3, 600_000)
    expect(net.events('round-failed', e => /checkers signed the result of round 1/.test(e.error as string))).to.have.length(1)
    const benched = net.events('peer-benched', e => e.reason === 'no signature').map(e => e.peer as string)
    expect(benched).to.include.members([...silent])
    expect(net.roundsDone()[0].round).to.equal(1)
  })

  it('a leader\'s heartbeat from before its term, delivered late, is not taken for its giving up: its followers keep their work', async () => {
    const peers = [net.add(), net.add(), net.add()]
    await net.until('a round done', () => net.roundsDone().length >= 1)
    const leader = net.leader()!
    const follower = peers.find(p => p !== leader)!
    // what the leader said before it led (following no one, in an older term), arriving now
    const stale = leader.net.published.find(m => m.type === 'heartbeat' && m.leader === null && m.term < leader.node.status().term)!
    expect(stale, 'a heartbeat of the leader from before its term').to.not.equal(undefined)
    const rounds = net.roundsDone().length
    follower.net.receive(encodeMessage(stale), leader.id)
    await net.until('two more rounds', () => net.roundsDone().length >= rounds + 2)
    expect(net.events('leader-lost', e => e.node === follower.id)).to.have.length(0)
    expect(net.roundsDone().slice(rounds).every(d => (d.participants as string[]).includes(follower.id))).to.equal(true)
  })

  it('a follower that took its leader for lost mid-round, and follows it again in the same term, takes the round up again', async () => {
    const peers = [net.add(), net.add(), net.add()]
    await net.until('a round done', () => net.roundsDone().length >= 1)
    const leader = net.leader()!
    const follower = peers.find(p => p !== leader)!
    const round = net.roundsDone().length + 1
    await net.until(`the follower trains round ${round}`, () => net.events('train-start', e => e.node === follower.id && e.round === round).length > 0)
    // the leader seems to give up its term (what a follower hears when it stands again), then leads on
    const current = leader.net.published.filter((m): m is Heartbeat => m.type === 'heartbeat' && m.leader === leader.id).at(-1)!
    follower.net.receive(encodeMessage(leader.net.stamp({ ...current, leader: null, termCert: null })), leader.id)
    expect(net.events('leader-lost', e => e.node === follower.id)).to.have.length(1)
    await net.until(`round ${round} done`, () => net.roundsDone().length >= round)
    expect(net.events('round-start-replayed', e => e.node === follower.id && e.round === round && e.resumed === true)).to.have.length(1)
    expect(net.roundsDone()[round - 1].participants).to.include(follower.id)
    expect(net.events('train-done', e => e.node === follower.id && e.round === round)).to.have.length(1)
  })

  it('a follower whose update was sent before it took its leader for lost does not train that round again', async () => {
    const peers = [net.add(), net.add(), net.add()]
    await net.until('a round done', () => net.roundsDone().length >= 1)
    const leader = net.leader()!
    const follower = peers.find(p => p !== leader)!
    leader.trainer.behaviour.trainMs = 6000 // the round stays open after the follower's update
    const round = net.roundsDone().length + 1
    await net.until(`the follower sent its update of round ${round}`, () => net.events('train-done', e => e.node === follower.id && e.round === round).length > 0)
    expect(net.roundsDone()).to.have.length(round - 1)
    const current = leader.net.published.filter((m): m is Heartbeat => m.type === 'heartbeat' && m.leader === leader.id).at(-1)!
    follower.net.receive(encodeMessage(leader.net.stamp({ ...current, leader: null, termCert: null })), leader.id)
    expect(net.events('leader-lost', e => e.node === follower.id)).to.have.length(1)
    await net.until('the follower follows its leader again', () => net.events('leader-followed', e => e.node === follower.id).length >= 2)
    await net.until(`round ${round} done`, () => net.roundsDone().length >= round)
    expect(net.events('round-start-replayed', e => e.node === follower.id)).to.have.length(0)
    expect(net.events('train-start', e => e.node === follower.id && e.round === round)).to.have.length(1)
    expect(net.roundsDone()[round - 1].participants).to.include(follower.id)
  })

  it('a follower that claims a tiny speed and never does its work holds a round to the longest deadline once at most', async () => {
    const config = { minPeers: 4 } // every round waits for all four: the idler's missing update ends each at its deadline
    for (let i = 0; i < 3; i++) net.add({ config })
    addIdler(net, { device: 'cpu', backend: 'wasm', speed: 1e-6 })
    await net.until('round 1 started three times', () => net.events('round-start').length >= 3, 600_000)
    const timeouts = net.events('round-start').map(e => (e.deadline as number) - e.ts)
    // the first start knows no speed but the idler's claim; by the next the others have trained
    expect(timeouts[0]).to.equal(CONFIG.roundTimeoutMs)
    for (const t of timeouts.slice(1)) expect(t).to.be.below(CONFIG.roundTimeoutMs * 0.7)
  })

  it('a peer restarted after voting in a term does not vote in that term again; its votes are written down before they are sent', async () => {
    const other = net.identity()
    const candidate = net.hub.join(other.id)
    candidate.bind({ judge: () => 'accept', rejected: () => {}, subscribed: () => {}, deliver: () => {} })
    // it voted for someone else in term 3 before it went down
    const peer = net.add({ vote: { term: 3, candidate: 'someone-else' } })
    const request = (term: number): void => { peer.net.receive(encodeMessage(candidate.stamp({ type: 'vote-request', v: PROTOCOL_VERSION, term, candidate: other.id, round: 0, roundCert: null })), other.id) }
    const votesFor = (term: number): number => peer.net.published.filter(m => m.type === 'vote' && m.term === term && m.candidate === other.id).length
    request(3)
    request(4)
    await net.until('its vote in term 4', () => votesFor(4) === 1)
    expect(votesFor(3)).to.equal(0)
    expect(peer.votes).to.deep.equal([{ term: 4, candidate: other.id }])
  })

  it('a peer restarted with its saved vote unreadable votes in no term it may have voted in: none for a lease, and its own candidacy goes past every term it heard of', async () => {
    const other = net.identity()
    const candidate = net.hub.join(other.id)
    candidate.bind({ judge: () => 'accept', rejected: () => {}, subscribed: () => {}, deliver: () => {} })
    const started = net.clock.now()
    const peer = net.add({ vote: 'lost' })
    peer.net.receive(encodeMessage(candidate.stamp({ type: 'vote-request', v: PROTOCOL_VERSION, term: 3, candidate: other.id, round: 0, roundCert: null })), other.id)
    await net.until('it stands', () => net.events('election-started', e => e.node === peer.id).length > 0)
    const stood = net.events('election-started', e => e.node === peer.id)[0]
    expect(stood.ts - started).to.be.at.least(CONFIG.leaseMs)
    expect(stood.term).to.equal(4)
    expect(peer.net.published.filter(m => m.type === 'vote')).to.have.length(0)
    expect(peer.votes).to.deep.equal([{ term: 4, candidate: peer.id }])
  })

  it('voters whose signed votes put two leaders in one term are banned at once; the leaders, who voted once each, are not', async () => {
    net.add()
    const [x, y, a, b, c] = Array.from({ length: 5 }, () => net.identity())
    const term = 7
    // a, b and c voted for both x and y in term 7: two certificates, each a majority of its electorate
    for (const leader of [x, y]) {
      const votes = await Promise.all([leader, a, b, c].map(async v => ({ voter: v.id, signature: await v.signer.sign(voteSigningBytes(term, leader.id)) })))
      const bytes = encodeTermCert({ kind: 'term-cert', v: PROTOCOL_VERSION, term, leader: leader.id, electorate: [x, y, a, b, c].map(i => i.id), votes })
      const endpoint = net.hub.join(leader.id)
      endpoint.bind({ judge: () => 'accept', rejected: () => {}, subscribed: () => {}, deliver: () => {} })
      const termCert = endpoint.blobs.put(bytes, true)
      const beat = (): void => {
        endpoint.publish({ type: 'heartbeat', v: PROTOCOL_VERSION, term, peer: leader.id, leader: leader.id, round: 0, modelHash: null, device: 'cpu', backend: 'fake', speed: 0, examples: 0, addrs: [], termCert, roundCert: null, work: null, everyMs: 1000 }).catch(() => {})
        net.clock.setTimeout(beat, 1000)
      }
      beat()
    }
    await net.until('the three double voters banned', () => net.events('peer-banned').length >= 3)
    expect(net.events('peer-banned').map(e => e.peer)).to.have.members([a.id, b.id, c.id])
    expect(net.events('misbehaviour', e => e.reason === 'equivocation').map(e => e.peer)).to.have.members([a.id, b.id, c.id])
  })

  it('a voter heard voting for two candidates in one term is banned on its votes alone, before any certificate; votes of other terms, or the same vote again, are no offence', async () => {
    net.add()
    const [liar, x, y] = Array.from({ length: 3 }, () => net.identity())
    const endpoint = net.hub.join(liar.id)
    endpoint.bind({ judge: () => 'accept', rejected: () => {}, subscribed: () => {}, deliver: () => {} })
    const vote = async (term: number, candidate: string): Promise<void> => {
      await endpoint.publish({ type: 'vote', v: PROTOCOL_VERSION, term, candidate, voter: liar.id, signature: await liar.signer.sign(voteSigningBytes(term, candidate)) })
    }
    await vote(1, y.id)
    await vote(2, x.id)
    await vote(2, x.id)
    await vote(2, y.id)
    await net.until('the double voter banned', () => net.events('peer-banned', e => e.peer === liar.id).length === 1)
    const named = net.events('misbehaviour', e => e.peer === liar.id)
    expect(named.map(e => [e.reason, e.detail])).to.deep.equal([['equivocation', `voted in term 2 for both ${x.id.slice(-6)} and ${y.id.slice(-6)}`]])
  })

  it('votes for another candidate that lie: a forged signature is the author\'s offence and counts as no vote; a term out of reach is not kept', async () => {
    net.add()
    const [liar, x, y] = Array.from({ length: 3 }, () => net.identity())
    const endpoint = net.hub.join(liar.id)
    endpoint.bind({ judge: () => 'accept', rejected: () => {}, subscribed: () => {}, deliver: () => {} })
    const publish = async (term: number, candidate: string, signature: Uint8Array): Promise<void> => {
      await endpoint.publish({ type: 'vote', v: PROTOCOL_VERSION, term, candidate, voter: liar.id, signature })
    }
    // signed for x, claimed for y: then a genuine vote for x, which must not meet a forged one for y
    await publish(2, y.id, await liar.signer.sign(voteSigningBytes(2, x.id)))
    await net.until('the forged vote named', () => net.events('misbehaviour', e => e.peer === liar.id && e.reason === 'bad-vote').length === 1)
    await publish(2, x.id, await liar.signer.sign(voteSigningBytes(2, x.id)))
    // far beyond reach, genuine, for two candidates: ignored, as a term that cannot be reached
    const huge = Number.MAX_SAFE_INTEGER - 1
    await publish(huge, x.id, await liar.signer.sign(voteSigningBytes(huge, x.id)))
    await publish(huge, y.id, await liar.signer.sign(voteSigningBytes(huge, y.id)))
    // a genuine double vote afterwards is still caught: the liar's vote for x in term 2 was kept
    await publish(2, y.id, await liar.signer.sign(voteSigningBytes(2, y.id)))
    await net.until('the double voter banned', () => net.events('peer-banned', e => e.peer === liar.id).length === 1)
    const named = net.events('misbehaviour', e => e.peer === liar.id).map(e => [e.reason, e.detail])
    expect(named).to.deep.equal([['bad-vote', 'its vote for term 2 does not check out'], ['equivocation', `voted in term 2 for both ${x.id.slice(-6)} and ${y.id.slice(-6)}`]])
  })

  it('a liar that votes for every candidate, with two peers cut off from each other: banned once both its votes of a term are heard; once the two hear each other, one leader leads', async () => {
    const a = net.add()
    const b = net.add()
    // a and b do not hear each other (a partition); both hear the liar
    let healed = false
    for (const [peer, other] of [[a, b], [b, a]]) {
      const receive = peer.net.receive.bind(peer.net)
      peer.net.receive = (bytes, from) => { if (healed || from !== other.id) receive(bytes, from) }
    }
    const liar = net.identity()
    const endpoint = net.hub.join(liar.id)
    endpoint.bind({
      judge: () => 'accept',
      rejected: () => {},
      subscribed: () => {},
      deliver: (m) => {
        if (m.type !== 'vote-request') return
        void liar.signer.sign(voteSigningBytes(m.term, m.candidate)).then(async signature => {
          await endpoint.publish({ type: 'vote', v: PROTOCOL_VERSION, term: m.term, candidate: m.candidate, voter: liar.id, signature })
        })
      }
    })
    const beat = (): void => {
      endpoint.publish({ type: 'heartbeat', v: PROTOCOL_VERSION, term: 0, peer: liar.id, leader: null, round: 0, modelHash: null, device: 'cpu', backend: 'liar', speed: 0, examples: 0, addrs: [], termCert: null, roundCert: null, work: null, everyMs: 1000 }).catch(() => {})
      net.clock.setTimeout(beat, 1000)
    }
    beat()
    // each hears the liar's votes for both: whether one of them made a leader first is a race
    await net.until('the liar banned by both', () => net.events('peer-banned', e => e.peer === liar.id).length >= 2)
    healed = true
    await net.until('one leader, followed by the other', () => {
      const leaders = [a, b].filter(p => p.node.isLeading)
      return leaders.length === 1 && [a, b].every(p => p.node.status().leader === leaders[0].id)
    }, 300_000)
    expect(net.events('peer-banned', e => e.peer === liar.id).map(e => e.node)).to.include.members([a.id, b.id])
    expect(net.events('misbehaviour', e => e.reason === 'equivocation' && e.peer === liar.id)).to.have.length.at.least(2)
  })

  it('a newcomer not yet proven that stands and wins is in its own electorate: its certificate checks out, and the others follow it', async () => {
    const config = { task: { ...TASK, totalRounds: 100 } }
    const peers = [net.add({ config }), net.add({ config }), net.add({ config })]
    await net.until('two rounds', () => net.roundsDone().length >= 2)
    const newcomer = net.add({ config })
    const leader = net.leader()!
    await net.until('the newcomer holds the rounds', () => newcomer.node.replica.round >= 2)
    // Under load a newcomer's turn to stand can come before the proven peers' (32 peers on two
    // cores showed it): here the proven peers hold off, and vote.
    type Inside = { election: { holdOffUntil: number, stand: (now: number) => number, leaderLive: (now: number) => boolean }, leadership: { voting: { stand: (term: number) => void } } }
    const inside = (p: typeof newcomer): Inside => p.node as unknown as Inside
    const others = peers.filter(p => p !== leader)
    for (const p of others) inside(p).election.holdOffUntil = Infinity
    leader.net.disconnect()
    await net.until('the leader\'s lease ran out', () => others.every(p => !inside(p).election.leaderLive(net.clock.now())))
    inside(newcomer).leadership.voting.stand(inside(newcomer).election.stand(net.clock.now()))
    await net.until('the newcomer leads', () => newcomer.node.isLeading)
    await net.until('the others follow it', () => others.every(p => p.node.status().leader === newcomer.id))
    expect(net.events('misbehaviour', e => e.reason === 'bad-certificate')).to.have.length(0)
  })

  it('a peer follows the leader it voted for, though its vote came too late for the certificate and the leader is not proven to it', async () => {
    // The chaos suite's fork: a peer back from a restart voted for the new leader, too late to be
    // in its certificate; the leader was not proven to it (its rounds were ones the peer had
    // skipped), so of the two peers it counted, one endorsed the leader. It never followed; the
    // leader certified rounds with the one other peer, and those rounds were lost when that peer
    // died and the peer elected another leader in a newer term.
    const config = { minPeers: 2, task: { ...TASK, totalRounds: 100 } }
    const peers = [net.add({ config }), net.add({ config }), net.add({ config }), net.add({ config })]
    await net.until('two rounds', () => net.roundsDone().length >= 2)
    const old = net.leader()!
    const [leader, voter, late] = peers.filter(p => p !== old)
    type Inside = { election: { holdOffUntil: number, stand: (now: number) => number, leaderLive: (now: number) => boolean }, leadership: { voting: { stand: (term: number) => void }, leaderCert: { cert: { votes: Array<{ voter: string }> } } | null }, replica: { proven: { lastRound: Map<string, number> } } }
    const inside = (p: TestPeer): Inside => p.node as unknown as Inside
    for (const p of [leader, voter, late]) inside(p).election.holdOffUntil = Infinity
    old.net.disconnect()
    await net.until('the old leader\'s lease ran out', () => [leader, voter, late].every(p => !inside(p).election.leaderLive(net.clock.now())))
    inside(late).replica.proven.lastRound.delete(leader.id)
    inside(leader).leadership.voting.stand(inside(leader).election.stand(net.clock.now()))
    await net.until('it leads', () => leader.node.isLeading)
    // the votes came in the order the peers joined: the late one's after the quorum
    expect(inside(leader).leadership.leaderCert!.cert.votes.map(v => v.voter)).to.have.members([leader.id, voter.id])
    await net.until('the late voter follows it', () => late.node.status().leader === leader.id, 20_000)
  })

  it('a voter that stood for higher terms but holds fewer rounds does not block the peer with more rounds: the candidates\' terms pass each other', async () => {
    // The chaos suite's stall: after a leader's death the two live peers stood in turn for 300 s,
    // the one with fewer rounds always a term ahead. Each refused the other: the one with more
    // rounds for fewer rounds, the other for a stale term; a term in a vote request was not heard.
    const config = { minPeers: 2, task: { ...TASK, totalRounds: 100 } }
    const peers = [net.add({ config }), net.add({ config }), net.add({ config })]
    await net.until('two rounds', () => net.roundsDone().length >= 2)
    const leader = net.leader()!
    const [ahead, behind] = peers.filter(p => p !== leader)
    type Inside = { election: { stand: (now: number) => number } }
    // `behind` has stood for five terms (its candidacies lost while it was cut off) and misses two rounds
    for (let i = 0; i < 5; i++) (behind.node as unknown as Inside).election.stand(net.clock.now())
    behind.net.disconnect()
    const missed = net.roundsDone().length + 2
    await net.until('two rounds without it', () => net.roundsDone().length >= missed)
    leader.net.disconnect()
    behind.net.connected = true
    const done = net.roundsDone().length
    // a lease for the leader's death, a few for the two to stand in turn; without terms heard
    // from vote requests, it took 35 candidacies here
    await net.until('a round done by the peer with more rounds, with the other', () => net.roundsDone().slice(done).some(r => r.node === ahead.id && (r.participants as string[]).includes(behind.id)), 30_000)
    expect(behind.node.replica.round).to.be.at.least(missed)
  })

  it('a peer that sees more peers than the leader did at its election follows it when the others do: it is not left out for good', async () => {
    const config = { task: { ...TASK, totalRounds: 100 } }
    const peers = Array.from({ length: 7 }, () => net.add({ config }))
    await net.until('2 rounds done', () => net.roundsDone().length >= 2)
    const first = net.leader()!
    const straggler = peers[6]
    // the straggler's connections to the others drop, and come back only on its side: the
    // others do not count it, it counts them all
    for (const p of peers) if (p !== straggler) p.net.unconnected.add(straggler.id)
    first.net.disconnect()
    const others = peers.filter(p => p !== first && p !== straggler)
    await net.until('another leader', () => others.some(p => p.node.isLeading))
    const leader = net.leader()!
    await net.until('every other peer follows it', () => others.every(p => p.node.status().leader === leader.id))
    await net.until('the straggler follows it', () => straggler.node.status().leader === leader.id, 30_000)
    const rounds = net.roundsDone().length
    await net.until('the straggler holds a round of the new leader', () => straggler.node.replica.round > rounds, 60_000)
  })

  it('a fresh network\'s leader that proves nothing to a newcomer: the newcomer follows it at the next heartbeat of another peer that makes the claim hold, not at the leader\'s next one', async () => {
    const config = { minPeers: 3, task: { ...TASK, totalRounds: 3 } }
    const first = net.add({ config })
    // the second beats 400 ms after the first, each interval
    await net.clock.advance(400)
    const second = net.add({ config })
    await net.until('a leader of two', () => first.node.status().leader === first.id && second.node.status().leader === first.id)
    // the newcomer is not connected to the other voter yet: one vote of the two peers it counts
    const newcomer = net.add({ config })
    newcomer.net.unconnected.add(second.id)
    await net.until('the claim proves nothing to it', () => net.events('leader-unproven', e => e.node === newcomer.id).length > 0)
    const connected = net.clock.now()
    newcomer.net.unconnected.delete(second.id)
    await net.until('it follows the leader', () => newcomer.node.status().leader === first.id)
    // at the second's heartbeat, 400 ms on, not at the leader's, a whole interval on
    const followed = net.events('leader-followed', e => e.node === newcomer.id)[0]
    expect(followed.ts - connected).to.be.below(CONFIG.heartbeatMs / 2)
    await net.until('round 1 done', () => net.roundsDone().length >= 1)
    expect(net.roundsDone()[0].participants).to.have.length(3)
  })

  it('a peer alone says that its rounds prove nothing to others, and goes on', async () => {
    const alone = net.add({ config: { task: { ...TASK, totalRounds: 2 } } })
    await net.until('finished', () => alone.node.replica.finished)
    expect(net.events('alone')).to.have.length(1)
    expect(net.roundsDone()).to.have.length(2)
  })

  it('a leader that trained alone takes in a peer that joins: it stands again for its vote, and the joiner trains and signs', async () => {
    const long = { config: { task: { ...TASK, totalRounds: 40 } } }
    const first = net.add(long)
    await net.until('round 2 done', () => net.roundsDone().length >= 2)
    const joiner = net.add(long)
    await net.until('a round with the joiner', () => net.roundsDone().some(d => (d.participants as string[]).includes(joiner.id)), 300_000)
    const joint = net.roundsDone().find(d => (d.participants as string[]).includes(joiner.id))!
    await net.until('the joiner holds that round', () => (joiner.node.replica.round) >= (joint.round as number))
    expect(net.leader()).to.equal(first)
    expect(net.events('re-election')).to.have.length(1)
    expect(net.events('misbehaviour')).to.have.length(0)
  })

  it('a peer that joins a leader that trained alone and never votes: the leader stands for it at most once in ten leases and once a round, and trains on', async () => {
    const long = { config: { task: { ...TASK, totalRounds: 40 } } }
    const first = net.add(long)
    await net.until('round 2 done', () => net.roundsDone().length >= 2)
    addSybil(net)
    const from = net.clock.now()
    await net.until('training finished', () => first.node.replica.finished, 3_000_000)
    const leases = (net.clock.now() - from) / 5000
    const rounds = net.roundsDone().length
    expect(net.events('re-election').length).to.be.within(1, Math.min(Math.ceil(leases / 10), rounds))
    expect(net.roundsDone().map(d => d.round)).to.include(40)
  })

  it('rounds do not pile listeners on the term\'s signal', async () => {
    // count, per signal, the abort listeners added and not removed while 40 rounds run
    const held = new Map<AbortSignal, number>()
    const add = AbortSignal.prototype.addEventListener
    const remove = AbortSignal.prototype.removeEventListener
    const count = (signal: AbortSignal, type: string, by: number): void => {
      if (type === 'abort' && !signal.aborted) held.set(signal, (held.get(signal) ?? 0) + by)
    }
    AbortSignal.prototype.addEventListener = function (this: AbortSignal, type: string, ...rest: unknown[]) { count(this, type, 1); return (add as Function).call(this, type, ...rest) } as typeof add
    AbortSignal.prototype.removeEventListener = function (this: AbortSignal, type: string, ...rest: unknown[]) { count(this, type, -1); return (remove as Function).call(this, type, ...rest) } as typeof remove
    try {
      const a = net.add({ config: { task: { ...TASK, totalRounds: 40 } }, behaviour: { trainMs: 10 } })
      await net.until('40 rounds', () => a.node.replica.finished, 600_000)
    } finally {
      AbortSignal.prototype.addEventListener = add
      AbortSignal.prototype.removeEventListener = remove
    }
    expect(Math.max(...held.values())).to.be.below(5)
  })

  it('a newer round start aborts the worker\'s training of the old one', async () => {
    const a = net.add({ behaviour: { trainMs: 30_000 } })
    await net.until('a is training', () => a.node.worker.phase?.state === 'training')
    const old = roundStarts(a)[0]
    a.node.worker.start({ ...old, round: old.round, deadline: old.deadline + 1, assignments: [] })
    await net.clock.advance(100)
    expect(net.events('train-aborted', e => e.node === a.id)).to.have.length(1)
  })

  it('a checkpoint that cannot be written is said and counted; training goes on', async () => {
    const fullDisk = { save: async () => { throw new Error('--data-dir /x: ENOSPC: no space left on device') } }
    const a = net.add({ config: { task: { ...TASK, totalRounds: 2 } }, store: fullDisk })
    await net.until('finished', () => a.node.replica.finished)
    expect(net.events('checkpoint-failed')[0].msg).to.match(/ENOSPC/)
    expect(a.node.status().recovery.checkpointErrors).to.equal(2)
  })

  it('every update passes the same checks, the leader\'s own too', async () => {
    // the leader's trainer claims more samples than it was assigned: its own update is dropped too
    const greedy = net.add({ behaviour: { claim: n => n + 1 } })
    const honest = net.add()
    await net.until('round 1 done', () => net.roundsDone().length >= 1)
    expect(greedy.node.isLeading).to.equal(true)
    expect(net.events('update-rejected', e => e.node === greedy.id)[0]).to.include({ peer: greedy.id, reason: 'too-many-samples' })
    expect(net.roundsDone()[0].participants).to.deep.equal([honest.id])
  })

  it('an update of the wrong shapes is dropped as such', async () => {
    const leader = net.add()
    net.add()
    addLiar(net, { weights: () => tensors(0)([[4], [3]]) })
    await net.until('round 1 done', () => net.roundsDone().length >= 1)
    expect(net.events('update-rejected', e => e.node === leader.id)[0]).to.include({ reason: 'wrong-shape' })
  })
})
