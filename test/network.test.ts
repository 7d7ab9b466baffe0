// The whole system on one machine: separate dml-node processes on loopback, real libp2p, real MNIST.
import { expect } from 'chai'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { availableParallelism } from 'node:os'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { encode } from 'cborg'
import { CONTROL_TOPIC, encodeMessage, PROTOCOL_VERSION } from '@dml/protocol'
import { coreShare } from '@dml/trainer'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { webSockets } from '@libp2p/websockets'
import { identify } from '@libp2p/identify'
import { gossipsub, StrictSign } from '@libp2p/gossipsub'
import { multiaddr } from '@multiformats/multiaddr'
import { GOSSIP_GRACE_MS, startHost } from '@dml/node'
import type { PeerProcess, LogEvent } from '@dml/node/launcher'
import { LocalNetwork, TINY_NET_ARGS, getJson, scrapeMetrics, within } from './helpers.ts'

const MINUTE = 60_000

function installed (pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg)
    return true
  } catch {
    return false
  }
}

describe('a network of three peers on loopback', function () {
  this.timeout(6 * MINUTE)
  const net = new LocalNetwork()
  let peers: PeerProcess[]
  after(async () => { await net.stop() })

  it('discovers, elects one leader, trains 3 rounds past 90% accuracy, ends on one model', async () => {
    peers = await net.start(3, ['--min-peers', '3', '--rounds', '3', '--local-epochs', '0.3', '--exit-when-done'])
    const monitor = await net.monitor(['--json'])
    const ids = await Promise.all(peers.map(async p => await p.peerId()))
    expect(new Set(ids).size).to.equal(3)

    // after the first round: one leader, and every peer agrees on who it is
    const firstRound = await Promise.any(peers.map(async p => await p.waitFor('round-done', 3 * MINUTE)))
    const statuses = await Promise.all(peers.map(async p => await getJson(await p.statusUrl())))
    expect(statuses.filter(s => s.isLeader)).to.have.length(1)
    const leader = statuses.find(s => s.isLeader)
    expect(statuses.map(s => s.leader)).to.deep.equal([leader.peerId, leader.peerId, leader.peerId])
    expect(leader).to.include.keys('peerId', 'isLeader', 'round', 'totalRounds', 'progress', 'activeNodes', 'gpuNodes', 'cpuNodes', 'leader', 'term', 'accuracy', 'loss', 'history')
    expect(leader.totalRounds).to.equal(3)
    expect(leader.activeNodes).to.equal(3)
    expect(leader.cpuNodes + leader.gpuNodes).to.equal(3)
    expect(leader.round).to.be.at.least(1)
    expect(leader.progress).to.be.within(0, 1)
    expect(leader.history[0]).to.include({ round: 1, accuracy: firstRound.accuracy })
    expect(leader.accuracy).to.be.a('number')
    expect(leader.backend.name).to.be.oneOf(['tensorflow', 'wasm', 'cpu'])
    expect(leader.nodes).to.have.length(3)
    expect(leader.traffic.control.sent).to.be.greaterThan(0)
    expect(leader.traffic.blobs.received).to.be.greaterThan(0) // the updates
    expect(leader.traffic.total.received).to.be.at.least(leader.traffic.control.received + leader.traffic.blobs.received)

    // /metrics: Prometheus's text format, its counters moving as rounds finish
    const leaderPeer = peers[ids.indexOf(leader.peerId)]
    const metricsUrl = (await leaderPeer.statusUrl()).replace('/api/status', '/metrics')
    const before = await scrapeMetrics(metricsUrl)
    await leaderPeer.waitFor(e => e.event === 'round-done' && (e.round as number) >= 2, 3 * MINUTE)
    const after = await scrapeMetrics(metricsUrl)
    expect(before.get('dml_is_leader')).to.equal(1)
    expect(after.get('dml_peers{device="cpu"}')! + after.get('dml_peers{device="gpu"}')!).to.equal(3)
    expect(after.get('dml_round')).to.be.greaterThan(before.get('dml_round')!)
    expect(after.get('dml_round_phase_seconds_count{phase="train"}')).to.equal(after.get('dml_round')) // each round observed once
    expect(after.get('dml_accuracy')).to.be.within(0.5, 1)
    const meshsub = [...after.keys()].find(k => /^libp2p_data_transfer_bytes_total\{protocol="\/meshsub\/[\d.]+ sent"\}$/.test(k))!
    expect(after.get(meshsub)).to.be.greaterThan(before.get(meshsub)!)
    expect(after.get('libp2p_data_transfer_bytes_total{protocol="/dml/blob/1.0.0 received"}')).to.be.greaterThan(before.get('libp2p_data_transfer_bytes_total{protocol="/dml/blob/1.0.0 received"}')!)
    expect(after.has('process_cpu_seconds_total')).to.equal(true)

    // every peer ends training on the same model
    const finished = await Promise.all(peers.map(async p => await p.waitFor('training-finished', 5 * MINUTE)))
    expect(finished.map(f => f.round)).to.deep.equal([3, 3, 3])
    expect(new Set(finished.map(f => f.modelHash)).size).to.equal(1)

    const rounds = leaderPeer.events.filter(e => e.event === 'round-done')
    expect(rounds.map(r => r.round)).to.deep.equal([1, 2, 3])
    expect(rounds.every(r => r.participants.length === 3)).to.equal(true)
    const accuracy = rounds.map(r => r.accuracy as number)
    // it learned: far above chance from the first round, past 90% by the third. No order between
    // rounds is asserted: one round's accuracy swings by a point or two (at lr 0.15 CI saw 90.1%
    // at round 1, then 89.2% at round 3)
    expect(Math.min(...accuracy)).to.be.greaterThan(0.8)
    expect(Math.max(...accuracy)).to.be.greaterThan(0.9)
    // only the leader finished rounds
    for (const p of peers) if (p !== leaderPeer) expect(p.events.some(e => e.event === 'round-done')).to.equal(false)

    // the monitor saw every round as it happened, with the same figures
    const seen = await monitor.waitFor(e => e.event === 'round' && e.finished === true, MINUTE)
    expect(seen.round).to.equal(3)
    const monitorRounds = monitor.events.filter(e => e.event === 'round')
    expect(monitorRounds.map(r => r.round)).to.deep.equal([1, 2, 3])
    expect(monitorRounds.map(r => r.accuracy)).to.deep.equal(accuracy)
    expect(monitorRounds[0]).to.include.keys('loss', 'activeNodes', 'gpuNodes', 'cpuNodes', 'durationMs')
    expect(await Promise.all(peers.map(async p => await p.exited))).to.deep.equal([0, 0, 0])
    // no peer waits on another to leave: each says its round as it drains, and one that left is
    // waited for by nobody (before, the others waited out the lease of the first to go, 5 s).
    // The goal is under 1 s (0.2 s here); the bound leaves room for a loaded machine
    for (const p of peers) {
      const stopped = p.events.find(e => e.event === 'stopped')!
      expect(stopped.ts - p.events.find(e => e.event === 'training-finished')!.ts, p.name).to.be.below(2500)
    }

    // an honest start: no offence, and no suspicion of the leaders elected as the peers come up
    // (on their own vote, or by fewer than another sees): said at info level (leader-unproven)
    const held = (e: LogEvent): boolean => e.event === 'misbehaviour' || (e.event === 'suspicion' && ['unproven-claim', 'unproven-leader'].includes(e.reason as string))
    for (const p of peers) expect(p.events.filter(held).map(e => e.msg), p.name).to.deep.equal([])
  })
})

describe('a CNN larger than gossipsub\'s 4 MiB limit', function () {
  this.timeout(6 * MINUTE)
  const net = new LocalNetwork()
  after(async () => { await net.stop() })

  it('crosses between peers in chunks and both end on the same model', async () => {
    const peers = await net.start(2, ['--model', 'cnn', '--min-peers', '2', '--rounds', '1', '--local-epochs', '0.005', '--eval-samples', '200', '--exit-when-done'])
    const init = await Promise.any(peers.map(async p => await p.waitFor('model-initialised', 2 * MINUTE)))
    expect(init.bytes).to.be.greaterThan(4 * 1024 * 1024)
    const finished = await Promise.all(peers.map(async p => await p.waitFor('training-finished', 4 * MINUTE)))
    expect(finished[0].modelHash).to.equal(finished[1].modelHash)
    const done = peers.flatMap(p => p.events.filter(e => e.event === 'round-done'))
    expect(done).to.have.length(1)
    expect(done[0].participants).to.have.length(2)
  })
})

describe('hostile input on the control topic', function () {
  this.timeout(3 * MINUTE)
  const net = new LocalNetwork()
  after(async () => { await net.stop() })

  it('rejects and counts malformed and spoofed messages, names the sender, and keeps running', async () => {
    const [peer] = await net.start(1, ['--rounds', '1000', '--local-epochs', '0.01', '--eval-samples', '100'])
    const statusUrl = await peer.statusUrl()
    const attacker = await startHost({ privateKey: await generateKeyPair('Ed25519'), host: '127.0.0.1', port: 0, bootstrap: [await peer.multiaddr('127.0.0.1')], mdns: false }, { judge: () => 'accept', deliver: () => {}, rejected: () => {}, subscribed: () => {} })
    try {
      const pubsub = attacker.libp2p.services.pubsub
      const victim = await peer.peerId()
      const hostile = [
        new Uint8Array([0xff, 0xfe, 0x01]), // not CBOR
        encode({ v: PROTOCOL_VERSION, type: 'heartbeat', term: 'x' }), // CBOR, not a valid message
        // a well-formed heartbeat that claims to come from the peer itself, with a huge term
        encodeMessage({ type: 'heartbeat', v: PROTOCOL_VERSION, seq: Date.now(), term: 99, peer: victim, leader: victim, round: 99, modelHash: null, device: 'gpu', backend: 'x', speed: 1, examples: 0, addrs: [], termCert: null, roundCert: null, work: null, everyMs: 1000 })
      ]
      // an offence is named once per peer and reason
      const rejected = (reason: string) => (e: LogEvent): boolean => e.event === 'misbehaviour' && e.reason === reason && e.peer === attacker.peerId
      const deadline = Date.now() + MINUTE
      // publish until the peer has judged them: the first publishes may go out before the
      // attacker's pubsub stream to the peer is open, and reach no one
      while (!peer.events.some(rejected('malformed')) || !peer.events.some(rejected('spoofed'))) {
        if (Date.now() > deadline) throw new Error(`rejections not seen: ${JSON.stringify((await getJson(statusUrl)).rejectedMessages)}`)
        for (const bytes of hostile) await pubsub.publish(CONTROL_TOPIC, bytes)
        await peer.waitFor(rejected('spoofed'), 2000, peer.events.length).catch(() => {})
      }
      const status = await getJson(statusUrl)
      expect(status.rejectedMessages.malformed).to.be.at.least(2)
      expect(status.rejectedMessages.spoofed).to.be.at.least(1)
      expect(status.term).to.be.below(99)
      expect(status.gpuNodes).to.equal(0)
      expect(status.misbehaviour.peers.find((p: any) => p.peer === attacker.peerId).offences).to.include.keys('malformed', 'spoofed')
      expect(peer.running).to.equal(true)
    } finally {
      await attacker.stop()
    }
  })
})

// gossipsub takes a peer on once identify says it speaks gossipsub, and opens its stream to it
// once, giving up silently if that fails: the peers stay connected and never hear each other (one
// of 32 peers under load, for 10 minutes). A peer gossip never took on is hung up on.
describe('a connection that gossip never reaches', function () {
  this.timeout(3 * MINUTE)
  const net = new LocalNetwork()
  after(async () => { await net.stop() })

  it('is hung up on after the grace, counted, and the peer keeps running', async () => {
    const [peer] = await net.start(1, ['--rounds', '1000', '--local-epochs', '0.01', '--eval-samples', '100'])
    // a libp2p node without gossipsub: connected, and never a word on the control topic
    const mute = await createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
    try {
      const closed = new Promise<void>(resolve => { mute.addEventListener('peer:disconnect', () => { resolve() }, { once: true }) })
      const started = Date.now()
      await mute.dial(multiaddr(await peer.multiaddr('127.0.0.1')))
      const silent = await peer.waitFor(e => e.event === 'suspicion' && e.reason === 'gossip-silent', MINUTE)
      expect(silent.peer).to.equal(mute.peerId.toString())
      await within(closed, 10_000, 'the peer hangs up on the mute connection')
      expect(Date.now() - started).to.be.at.least(GOSSIP_GRACE_MS)
      const status = await getJson(await peer.statusUrl())
      expect(status.limits['gossip-silent']).to.be.at.least(1)
      expect(peer.running).to.equal(true)
    } finally {
      await mute.stop()
    }
  })
})

describe('WebSockets, the transport a browser has', function () {
  this.timeout(3 * MINUTE)
  const net = new LocalNetwork()
  after(async () => { await net.stop() })

  it('a libp2p peer with WebSockets alone connects over Noise, and hears the control topic; --ws-port off listens on none', async () => {
    const peer = await net.add(['--rounds', '1000', '--local-epochs', '0.01', '--eval-samples', '100'])
    const addr = await peer.multiaddr('127.0.0.1')
    const ws = (await peer.waitFor(e => e.event === 'listening' && String(e.addr).includes('/ws/'), MINUTE)).addr as string
    expect(ws).to.match(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/ws\/p2p\//)
    expect(ws.split('/')[4]).to.not.equal(addr.split('/')[4])
    const tab = await createLibp2p({
      transports: [webSockets()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: { identify: identify(), pubsub: gossipsub({ globalSignaturePolicy: StrictSign, emitSelf: false }) }
    })
    try {
      const heard = new Promise<void>(resolve => {
        tab.services.pubsub.addEventListener('message', (e) => { if (e.detail.topic === CONTROL_TOPIC) resolve() })
      })
      tab.services.pubsub.subscribe(CONTROL_TOPIC)
      const connection = await tab.dial(multiaddr(ws))
      expect(connection.encryption).to.equal('/noise')
      await within(heard, 30_000, 'a message on the control topic over WebSockets')
    } finally {
      await tab.stop()
    }
    const off = await net.add(['--ws-port', 'off'])
    await off.multiaddr('127.0.0.1')
    expect(off.events.filter(e => e.event === 'listening').map(e => String(e.addr)).some(a => a.includes('/ws/'))).to.equal(false)
  })
})

describe('a private network (--swarm-key)', function () {
  this.timeout(3 * MINUTE)
  const net = new LocalNetwork()
  after(async () => { await net.stop() })

  it('admits a peer holding the key and keeps out one with another key', async () => {
    const key = (name: string): string => {
      const path = join(net.dir, name)
      writeFileSync(path, `/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString('hex')}\n`)
      return path
    }
    const ours = key('ours.key')
    const theirs = key('theirs.key')
    const a = await net.add(['--swarm-key', ours, '--rounds', '1000', '--local-epochs', '0.01', '--eval-samples', '100'])
    const outsider = await net.add(['--swarm-key', theirs])
    const b = await net.add(['--swarm-key', ours])
    const [aId, bId, outsiderId] = await Promise.all([a.peerId(), b.peerId(), outsider.peerId()])
    // the outsider started first and dials the same bootstrap peer: were it let in, it would be seen first
    await a.waitFor(e => e.event === 'peer-joined' && e.peer === bId, MINUTE)
    await b.waitFor(e => e.event === 'peer-joined' && e.peer === aId, MINUTE)
    const status = await getJson(await a.statusUrl())
    expect(status.nodes.map((n: any) => n.peerId).sort()).to.deep.equal([aId, bId].sort())
    expect(a.events.some(e => e.event === 'peer-joined' && e.peer === outsiderId)).to.equal(false)
    expect((await getJson(await outsider.statusUrl())).activeNodes).to.equal(1)
  })

  it('refuses a malformed key file with a clear error', async () => {
    const path = join(net.dir, 'bad.key')
    writeFileSync(path, 'not a key')
    const bad = await net.add(['--swarm-key', path])
    expect(await bad.exited).to.equal(2)
    expect(bad.stderr.join('\n')).to.match(/is not a libp2p swarm key/)
  })
})

describe('--gpu on a machine without the GPU build', function () {
  this.timeout(2 * MINUTE)
  const net = new LocalNetwork()
  after(async () => { await net.stop() })

  it('says plainly that it trains on the CPU, and reports so in /api/status', async function () {
    if (installed('@tensorflow/tfjs-node-gpu')) this.skip() // the GPU build is here: nothing to fall back from
    const peer = await net.add(['--gpu'])
    const warning = await peer.waitFor('gpu-unavailable', MINUTE)
    expect(warning.warning).to.match(/--gpu was asked for but @tensorflow\/tfjs-node-gpu could not be loaded .*training on the CPU/)
    const status = await getJson(await peer.statusUrl())
    expect(status.backend.device).to.equal('cpu')
    expect(status.backend.warning).to.equal(warning.warning)
    expect(status).to.include({ gpuNodes: 0, cpuNodes: 1 })
  })
})

describe('training threads (--threads)', function () {
  this.timeout(3 * MINUTE)
  const net = new LocalNetwork()
  after(async () => { await net.stop() })

  it('two peers, one training on two threads: their rounds finish on one model, and status says how many threads', async () => {
    const peers = [await net.add(['--threads', '2', '--min-peers', '2', '--rounds', '2', '--local-epochs', '0.2', '--exit-when-done'])]
    peers.push(await net.add(['--min-peers', '2', '--rounds', '2', '--local-epochs', '0.2', '--exit-when-done']))
    const started = await peers[0].waitFor('threads', MINUTE)
    expect(started.threads).to.equal(2)
    const status = await getJson(await peers[0].statusUrl())
    expect(status.backend.threads).to.equal(2)
    const finished = await Promise.all(peers.map(async p => await p.waitFor('training-finished', 2 * MINUTE)))
    expect(new Set(finished.map(f => f.modelHash)).size).to.equal(1)
    expect(finished[0].accuracy).to.be.above(0.85)
    expect(peers[1].events.some(e => e.event === 'threads')).to.equal(false) // the launcher's one thread
  })

  it('refuses a thread count out of range, naming the flag', async () => {
    const peer = net.alone('bad-threads', ['--threads', '-1'])
    expect(await peer.exited).to.equal(2)
    expect(peer.stderr.join('\n')).to.match(/--threads.*must be from 0 \(one per core\) to 256/)
  })
})

describe('peers that share a machine (--threads 0, the default)', function () {
  this.timeout(3 * MINUTE)
  const net = new LocalNetwork()
  after(async () => { await net.stop() })

  it('two peers on one machine share its cores: each trains on its share, and status says so', async () => {
    const options = ['--threads', '0', '--min-peers', '2', '--rounds', '1', '--local-epochs', '0.1', '--eval-samples', '500', '--exit-when-done']
    const peers = [await net.add(options), await net.add(options)]
    const share = coreShare(availableParallelism(), 1)
    const said = await Promise.all(peers.map(async p => await p.waitFor('threads', 2 * MINUTE)))
    expect(said.map(s => [s.threads, s.peersOnThisHost])).to.deep.equal([[share, 1], [share, 1]])
    expect((await getJson(await peers[0].statusUrl())).backend.threads).to.equal(share)
    expect(await Promise.all(peers.map(async p => await p.exited))).to.deep.equal([0, 0])
  })
})

describe('a non-IID partition (--partition dirichlet:0.3)', function () {
  this.timeout(6 * MINUTE)
  const net = new LocalNetwork()
  after(async () => { await net.stop() })

  it('splits MNIST by Dirichlet proportions of each class; the peers train on it to one model', async () => {
    const peers = await net.start(3, ['--min-peers', '3', '--rounds', '2', '--local-epochs', '0.1', '--eval-samples', '500', '--partition', 'dirichlet:0.3', '--exit-when-done'])
    const finished = await Promise.all(peers.map(async p => await p.waitFor('training-finished', 4 * MINUTE)))
    expect(new Set(finished.map(f => f.modelHash)).size).to.equal(1)
    expect(finished.map(f => f.round)).to.deep.equal([2, 2, 2])
  })

  it('refuses a partition it does not know, naming the forms it takes', async () => {
    const peer = net.alone('bad-partition', ['--partition', 'noniid'])
    expect(await peer.exited).to.equal(2)
    expect(peer.stderr.join('\n')).to.match(/--partition.*"noniid" is not one of iid, dirichlet:<alpha>/)
  })
})

describe('every strategy at once on Dirichlet(0.3): local momentum, FedProx, FedAdam, a learning-rate schedule', function () {
  this.timeout(6 * MINUTE)
  const net = new LocalNetwork()
  after(async () => { await net.stop() })

  it('trains to one model; every participant computes the server step from the certified state and signs', async () => {
    const peers = await net.start(3, ['--min-peers', '3', '--rounds', '2', '--local-epochs', '0.1', '--eval-samples', '500', '--partition', 'dirichlet:0.3', '--exit-when-done',
      '--optimizer', 'momentum', '--lr', '0.02', '--prox-mu', '0.01', '--server-optimizer', 'adam', '--lr-schedule', 'exp:0.9'])
    const finished = await Promise.all(peers.map(async p => await p.waitFor('training-finished', 4 * MINUTE)))
    expect(new Set(finished.map(f => f.modelHash)).size).to.equal(1)
    expect(finished.map(f => f.round)).to.deep.equal([2, 2, 2])
    expect(peers.flatMap(p => p.events.filter(e => e.event === 'proposal-rejected'))).to.have.length(0)
    expect(peers.flatMap(p => p.events.filter(e => e.event === 'round-signed')).length).to.be.at.least(2)
  })
})

describe('compressed updates (--compression)', function () {
  this.timeout(6 * MINUTE)
  const net = new LocalNetwork()
  after(async () => { await net.stop() })

  it('a peer sending float32, one float16 and one int8 train one model; the updates are 2x and 4x smaller, and every participant signs', async () => {
    const common = ['--min-peers', '3', '--rounds', '2', '--local-epochs', '0.1', '--eval-samples', '500', '--exit-when-done']
    const peers = []
    for (const compression of ['none', 'fp16', 'int8']) peers.push(await net.add([...common, '--compression', compression]))
    const finished = await Promise.all(peers.map(async p => await p.waitFor('training-finished', 4 * MINUTE)))
    expect(new Set(finished.map(f => f.modelHash)).size).to.equal(1)
    expect(finished.map(f => f.round)).to.deep.equal([2, 2, 2])
    const all = peers.flatMap(p => p.events)
    expect(all.filter(e => e.event === 'proposal-rejected' || e.event === 'update-rejected')).to.have.length(0)
    expect(all.filter(e => e.event === 'round-signed').length).to.be.at.least(2)
    const [none, fp16, int8] = peers.map(p => p.events.find(e => e.event === 'train-done')!.updateBytes as number)
    expect(none / fp16).to.be.within(1.95, 2.05)
    expect(none / int8).to.be.within(3.9, 4.1)
  })

  it('refuses a compression it does not know, naming the ones it has', async () => {
    const peer = net.alone('bad-compression', ['--compression', 'zip'])
    expect(await peer.exited).to.equal(2)
    expect(peer.stderr.join('\n')).to.match(/--compression.*must be one of none, fp16, int8/)
  })
})

// A certificate signed by one peer proves nothing to another. A first peer that trained alone
// (--min-peers 1, the default) once locked every later peer out: the newcomer could not follow a
// leader whose rounds it had certified alone, and that leader, whose proven view was itself, never
// stood again for the newcomer's vote. Now it stands again and keeps the newcomer's vote in its
// term certificate, and the newcomer follows on that certificate, counting the rounds as none.
describe('a network whose rounds one peer certified alone', function () {
  this.timeout(5 * MINUTE)
  const net = new LocalNetwork()
  after(async () => { await net.stop() })

  it('takes a second peer into its rounds, which then proves them', async () => {
    const [first] = await net.start(1, TINY_NET_ARGS)
    await first.waitFor(e => e.event === 'round-done' && (e.round as number) >= 3, 2 * MINUTE)
    const second = await net.add(TINY_NET_ARGS)
    const id = await second.peerId()
    const joint = await first.waitFor(e => e.event === 'round-done' && (e.participants as string[]).includes(id), MINUTE)
    // the round both trained is certified by both: the newcomer holds it as proven
    await second.waitFor(e => e.event === 'model-adopted' && (e.round as number) >= (joint.round as number), MINUTE)
    expect(second.events.some(e => e.event === 'misbehaviour')).to.equal(false)
  })
})

// A round of more than 7 peers is checked and signed by 7 of them (roundCheckers); the others take
// the certified model, whose signers they cannot all have seen check it.
describe('a network of nine peers', function () {
  this.timeout(6 * MINUTE)
  const net = new LocalNetwork()
  after(async () => { await net.stop() })

  it('each round is signed by its seven checkers; all nine end on one model', async () => {
    // rounds start with 8 followers or more (more than 7, so that checkers are drawn), and close
    // with 8 updates and a grace for the ninth: a peer that misses a round does not hold it up
    const peers = await net.start(9, ['--rounds', '2', '--min-peers', '8', '--local-epochs', '0.02', '--eval-samples', '200', '--max-peers-per-ip', '0', '--exit-when-done'])
    await Promise.all(peers.map(async p => await p.waitFor('training-finished', 5 * MINUTE)))
    const ids = await Promise.all(peers.map(async p => await p.peerId()))
    const done = [...new Map(peers.flatMap(p => p.events.filter(e => e.event === 'round-done')).map(e => [e.round, e])).values()]
    expect(done.map(d => d.round).sort()).to.deep.equal([1, 2])
    for (const d of done) {
      // (participants here: whose updates counted; a late one may have been left out)
      expect((d.participants as string[]).length, `round ${d.round as number}'s updates`).to.be.at.least(8)
      // and 8 or 9 were assigned work, so 7 of them were drawn to check
      expect(d.signers as number).to.be.within(4, 7)
      // only checkers check: at most 7 peers sign a round, and the others took its model certified
      const signers = ids.filter((_, i) => peers[i].events.some(e => e.event === 'round-signed' && e.round === d.round))
      expect(signers.length).to.be.at.most(7)
    }
    // every peer but the leader took round 2 on its certificate
    const adopted = peers.flatMap(p => p.events.filter(e => e.event === 'model-adopted' && e.round === 2))
    expect(adopted).to.have.length(8)
    expect(adopted.every(e => (e.signers as number) >= 4 && (e.signers as number) <= 7)).to.equal(true)
    const models = peers.map(p => p.events.findLast(e => e.event === 'training-finished')!.modelHash)
    expect(new Set(models).size).to.equal(1)
  })
})
