// A lying peer, for the attack tests: a real libp2p process that speaks dml's own protocol (from
// its own packages) and lies. It reads one attack per line on stdin ({"attack": name, ...}) and
// prints JSON events on stdout. Usage: node test/attacker.ts <key file> <bootstrap multiaddr> [swarm key file]
// Besides lies of its own, it can record what the leader signs (record) and send it again later,
// word for word, on gossipsub streams of its own (replay); flood the control topic with
// well-formed messages it signs (flood); and show markup where peers show its words (markup).
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { generateKeyPair, privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { encode } from 'cborg'
import {
  CONTROL_TOPIC, contentHash, decodeMessage, decodeTensors, encodeResult, encodeRoundCert, encodeTensors, encodeTermCert, PROTOCOL_VERSION, resultSigningBytes,
  roundVoteSigningBytes, voteSigningBytes, type ControlMessage, type Heartbeat, type NamedTensor, type Outgoing, type RoundStart, type Task, type Unstamped
} from '@dml/protocol'
import { BLOB_PROTOCOL } from '@dml/protocol'
import { RPC } from '@libp2p/gossipsub/message'
import { startHost } from '@dml/node'
import { readSwarmKey } from '@dml/node/cli'
import { framed, GOSSIPSUB } from '../packages/node/test/support/gossip-rpc.ts'

const [keyFile, bootstrap, swarmKeyFile] = process.argv.slice(2)
const key = privateKeyFromProtobuf(readFileSync(keyFile))
const self = peerIdFromPrivateKey(key).toString()
const say = (event: string, fields: Record<string, unknown> = {}): void => { console.log(JSON.stringify({ ts: Date.now(), event, ...fields })) }

let attack = 'none'
/** the command's parameters (a victim's address, a number of identities) */
let params: Record<string, unknown> = {}
/** where the sybils listen: the attacker's other "machine" */
const SYBIL_HOST = '127.0.0.2'
/** extra identities of this attacker (sybils), each its own libp2p host */
let sybils: Awaited<ReturnType<typeof startHost>>[] = []
/** what the honest network looks like, from its leader's heartbeats */
let leader: Heartbeat | null = null
let lastStart: RoundStart | null = null
let model: NamedTensor[] | null = null

const host = await startHost({ privateKey: key, host: '127.0.0.1', port: 0, bootstrap: [bootstrap], mdns: false, swarmKey: swarmKeyFile === undefined ? undefined : readSwarmKey(swarmKeyFile) }, {
  judge: () => 'accept',
  rejected: () => {},
  subscribed: () => {},
  deliver: (m) => { void onMessage(m) }
})
say('attacker-started', { peerId: self })

const publish = async (m: Outgoing): Promise<void> => {
  try { await host.publish(m) } catch (err) { say('publish-failed', { error: (err as Error).message }) }
}

/** honest peers heard of */
const knownPeers: string[] = []

/** What peers show of this one, for the markup attack: markup, and a string that would break a Prometheus label. */
const MARKUP = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
const LABEL_BREAKER = 'x"} 1\ndml_injected_total 1\n# '
/** The same in a backend's name, which may be 64 characters long. */
const MARKUP_BACKEND = '<img src=x onerror=window.__pwned=1>x"} 1\ndml_injected_total 1\n'

async function onMessage (m: ControlMessage): Promise<void> {
  if (m.type === 'heartbeat' && m.peer !== self && !sybils.some(h => h.peerId === m.peer) && !knownPeers.includes(m.peer)) knownPeers.push(m.peer)
  if (m.type === 'heartbeat' && m.leader === m.peer && m.termCert !== null) leader = m
  if (m.type !== 'round-start') return
  lastStart = m
  const mine = m.assignments.find(a => a.peer === self)
  if (mine === undefined) return
  if (attack === 'markup') {
    say('lied', { round: m.round, lie: attack })
    await publish({ type: 'work-failed', v: PROTOCOL_VERSION, term: m.term, round: m.round, peer: self, reason: `${MARKUP} ${LABEL_BREAKER}` })
    return
  }
  if (attack === 'junk-blob' || attack === 'never-serve') {
    // an update announced, behind which there is junk or nothing (see the blob handler)
    say('lied', { round: m.round, lie: attack })
    await publish({ type: 'update-ready', v: PROTOCOL_VERSION, term: m.term, round: m.round, peer: self, hash: contentHash(new TextEncoder().encode(`junk ${m.round}`)), numSamples: mine.samples, metrics: { loss: 0.01, trainMs: 100, samplesPerSec: 1e6 } })
    return
  }
  if (attack !== 'bad-updates') return
  try {
    model = decodeTensors(await host.fetchBlob(m.modelHash, [m.leader], { timeoutMs: 10_000, maxBytes: 256 * 1024 * 1024 }))
  } catch (err) {
    say('fetch-failed', { error: (err as Error).message })
    return
  }
  // a different lie each round: NaN, Infinity, 1e30, the model x100 claiming 10^12 samples
  const lies = [
    { name: 'nan', map: (): number => NaN, samples: mine.samples },
    { name: 'infinity', map: (): number => Infinity, samples: mine.samples },
    { name: '1e30', map: (): number => 1e30, samples: mine.samples },
    { name: 'x100', map: (v: number): number => 100 * v, samples: 1e12 }
  ]
  const lie = lies[m.round % lies.length]
  const weights = model.map(t => ({ ...t, values: t.values.map(lie.map) }))
  const hash = host.blobs.put(encodeTensors(weights), true)
  say('lied', { round: m.round, lie: lie.name })
  await publish({ type: 'update-ready', v: PROTOCOL_VERSION, term: m.term, round: m.round, peer: self, hash, numSamples: lie.samples, metrics: { loss: 0.01, trainMs: 100, samplesPerSec: 1e6 } })
}

/** A model of the leader's shapes, all zeros: what a fake leader would have everyone adopt. */
function zeros (): NamedTensor[] {
  return (model ?? [{ name: 'w0', shape: [1], values: new Float32Array(1) }]).map(t => ({ ...t, values: new Float32Array(t.values.length) }))
}

/** Certificates signed by this peer alone: genuine signatures, proof of nothing. */
async function selfMadeCerts (term: number, round: number, modelHash: string): Promise<{ termCert: string, roundCert: string }> {
  const termBytes = encodeTermCert({ kind: 'term-cert', v: PROTOCOL_VERSION, term, leader: self, electorate: [self], votes: [{ voter: self, signature: await key.sign(voteSigningBytes(term, self)) }] })
  const termCert = host.blobs.put(termBytes, true)
  const result = encodeResult({ kind: 'round-result', v: PROTOCOL_VERSION, term, round, leader: self, deadline: 0, prevHash: modelHash, modelHash, strategy: { aggregation: 'fedavg', trim: 0.2, byzantine: 1, clip: 1, normBound: 5, serverOptimizer: 'none', serverLr: 1 }, participants: [self], pool: [self], checkers: [self], contributions: [], termCert })
  const resultHash = contentHash(result)
  const roundBytes = encodeRoundCert({ kind: 'round-cert', v: PROTOCOL_VERSION, result, leaderSignature: await key.sign(resultSigningBytes(resultHash)), votes: [{ peer: self, accuracy: 1, loss: 0, samples: 1, signature: await key.sign(roundVoteSigningBytes(resultHash, 1, 0, 1)) }] })
  return { termCert, roundCert: host.blobs.put(roundBytes, true) }
}

function heartbeat (fields: Partial<Unstamped<Heartbeat>>): Unstamped<Heartbeat> {
  return { type: 'heartbeat', v: PROTOCOL_VERSION, term: leader?.term ?? 0, peer: self, leader: leader?.peer ?? null, round: 0, modelHash: null, device: 'gpu', backend: attack === 'markup' ? MARKUP_BACKEND : 'liar', speed: 1e6, examples: 1e9, addrs: host.listenAddrs(), termCert: null, roundCert: null, work: null, everyMs: 1000, ...fields }
}

/** The leader's heartbeats as gossip carried them (signed by the leader), recorded for a replay. */
const recorded: RPC.Message[] = []
host.libp2p.services.pubsub.addEventListener('message', (event) => {
  const msg = event.detail
  if (attack !== 'record' || msg.type !== 'signed' || msg.topic !== CONTROL_TOPIC) return
  const m = (() => { try { return decodeMessage(msg.data) } catch { return undefined } })()
  if (m?.type !== 'heartbeat' || m.leader !== m.peer || m.termCert === null) return
  const seqno = new Uint8Array(8)
  new DataView(seqno.buffer).setBigUint64(0, msg.sequenceNumber, false)
  recorded.push({ from: msg.from.toMultihash().bytes, data: msg.data, seqno, topic: msg.topic, signature: msg.signature })
  if (recorded.length % 20 === 1) say('recorded', { count: recorded.length, of: m.peer })
})


/** Sends the recorded messages again, oldest first, `count` sends one every `everyMs`, to every honest peer it is connected to. */
async function replay (count: number, everyMs: number): Promise<void> {
  const streams = []
  for (const peer of [...new Set(knownPeers)]) {
    if (host.libp2p.getConnections(peerIdFromString(peer)).length === 0) continue
    try { streams.push(await host.libp2p.dialProtocol(peerIdFromString(peer), GOSSIPSUB, { signal: AbortSignal.timeout(5000) })) } catch { /* gone: the next */ }
  }
  say('replaying', { captured: recorded.length, to: streams.length, count })
  for (let sent = 0; sent < count; sent++) {
    const frame = framed(RPC.encode({ subscriptions: [], messages: [recorded[sent % recorded.length]] }))
    for (const stream of streams) if (stream.writeStatus === 'writable' && !stream.send(frame)) await stream.onDrain().catch(() => {})
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
  say('replayed', { sent: count })
}

/** For `ms`: well-formed messages it signs, as fast as it can publish them. */
async function flood (ms: number): Promise<void> {
  const until = Date.now() + ms
  const target = knownPeers[0] ?? self
  let sent = 0
  let refused = 0
  while (Date.now() < until) {
    const term = (leader?.term ?? 0) + 1 + (sent % 60)
    const kind = sent % 3
    try {
      if (kind === 0) await host.publish(heartbeat({}))
      else if (kind === 1) await host.publish({ type: 'vote', v: PROTOCOL_VERSION, term, candidate: target, voter: self, signature: await key.sign(voteSigningBytes(term, target)) })
      else await host.publish({ type: 'round-vote', v: PROTOCOL_VERSION, term: leader?.term ?? 0, round: 1 + sent, peer: self, resultHash: 'e'.repeat(64), accuracy: 1, loss: 0, samples: 1, signature: await key.sign(roundVoteSigningBytes('e'.repeat(64), 1, 0, 1)) })
    } catch {
      refused++
    }
    sent++
    if (sent % 500 === 0) await new Promise(resolve => setImmediate(resolve)) // lets the transport write
  }
  // connections that last: its dialer keeps trying, and a connection the other side refuses may look open here for a moment
  await new Promise(resolve => setTimeout(resolve, 3000))
  const lasting = host.libp2p.getConnections().filter(c => c.status === 'open' && Date.now() - c.timeline.open > 2000)
  say('flooded', { sent, refused, connectedPeers: new Set(lasting.map(c => c.remotePeer.toString())).size })
}

/** One beat of the current attack, every second. */
async function beat (): Promise<void> {
  const term = leader?.term ?? 1
  const round = (leader?.round ?? 0)
  switch (attack) {
    case 'fake-leader': {
      // a higher term, far more rounds, an all-zero model, and certificates signed by itself alone
      const zero = host.blobs.put(encodeTensors(zeros()), true)
      const certs = await selfMadeCerts(term + 1, round + 100, zero)
      await publish(heartbeat({ term: term + 1, leader: self, round: round + 100, modelHash: zero, ...certs }))
      await publish({ type: 'vote-request', v: PROTOCOL_VERSION, term: term + 1, candidate: self, round: round + 100, roundCert: certs.roundCert })
      return
    }
    case 'forged-round-done': {
      // "round done, accuracy 100%, training finished", at the leader's term and the next
      const zero = host.blobs.put(encodeTensors(zeros()), true)
      const certs = await selfMadeCerts(term, round + 1, zero)
      for (const t of [term, term + 1]) {
        await publish({ type: 'round-done', v: PROTOCOL_VERSION, term: t, round: round + 1, leader: self, modelHash: zero, certHash: certs.roundCert, finished: true,
          metrics: { accuracy: 1, loss: 0, federatedAccuracy: 1, federatedLoss: 0, evaluatedSamples: 1000, participants: [self], activeNodes: 1, gpuNodes: 1, cpuNodes: 0, durationMs: 1, trainMs: 1, transferMs: 0, aggregateMs: 0, evalMs: 0, idleMs: 0, finishedAt: Date.now() } })
      }
      await publish(heartbeat({}))
      return
    }
    case 'stall-leader': {
      // a signed round start of our own, whose model we then never serve (see the blob handler)
      const task: Task | undefined = lastStart?.task
      if (task === undefined) return
      for (const t of [term, term + 1]) {
        await publish({ type: 'round-start', v: PROTOCOL_VERSION, term: t, round: round + 1, leader: self, modelHash: 'f'.repeat(64), deadline: Date.now() + 3_600_000, task, assignments: (lastStart?.assignments ?? []).map(a => ({ ...a })), checkers: [self] })
      }
      await publish(heartbeat({}))
      return
    }
    case 'double-vote': {
      // once: signed votes for two honest peers in the next term, unasked
      const candidates = [...new Set(knownPeers)].slice(0, 2)
      if (params.done === true || candidates.length < 2) break
      params.done = true
      const term = (leader?.term ?? 0) + 1
      for (const candidate of candidates) await publish({ type: 'vote', v: PROTOCOL_VERSION, term, candidate, voter: self, signature: await key.sign(voteSigningBytes(term, candidate)) })
      say('lied', { lie: 'double-vote', term, candidates })
      return
    }
    case 'huge-term': {
      const huge = Number.MAX_SAFE_INTEGER - 1
      await publish(heartbeat({ term: huge }))
      await publish({ type: 'vote-request', v: PROTOCOL_VERSION, term: huge, candidate: self, round: round + 1000, roundCert: null })
      return
    }
    case 'third-party-addrs':
    case 'sybils':
      // done by the sybil hosts (see startSybils); this one stays a quiet follower
      await publish(heartbeat({}))
      return
    case 'idle-streams': {
      // blob streams to every honest peer we know, opened and never used
      if (params.done === true) return
      params.done = true
      // only peers connected now: a peer id heard of but not reachable would cost 256 dial timeouts
      const peers = [...new Set(knownPeers)].filter(peer => host.libp2p.getConnections(peerIdFromString(peer)).length > 0)
      let opened = 0
      let refused = 0
      const streams = []
      for (const peer of peers) {
        for (let i = 0; i < 256; i++) {
          try {
            streams.push(await host.libp2p.dialProtocol(peerIdFromString(peer), BLOB_PROTOCOL, { signal: AbortSignal.timeout(5000) }))
            opened++
          } catch {
            refused++
          }
        }
      }
      const started = Date.now()
      // a stream the remote refuses may look open here until its reset arrives: count what is still open after a moment
      await new Promise(resolve => setTimeout(resolve, 1000))
      say('streams-opened', { peers: peers.length, opened, refused, held: streams.filter(s => s.status === 'open').length })
      // how long the honest peers let them stay open
      await Promise.all(streams.map(async (stream) => { for await (const _ of stream) { /* nothing comes */ } }).map(async p => await p.catch(() => {})))
      say('streams-closed', { afterMs: Date.now() - started, count: streams.length })
      return
    }
    case 'storm': {
      const pubsub = host.libp2p.services.pubsub
      for (let i = 0; i < 50; i++) {
        const junk = i % 2 === 0 ? new Uint8Array([0xff, i, 0x01]) : encode({ v: PROTOCOL_VERSION, type: 'heartbeat', term: 'x', i })
        await pubsub.publish(CONTROL_TOPIC, junk).catch(() => {})
      }
      await publish(heartbeat({}))
      return
    }
    default:
      // a follower, as far as anyone can tell (bad-updates answers round starts in onMessage)
      await publish(heartbeat({}))
  }
}

// a blob stream that never answers, for the stalling attack: only when it is on
await host.libp2p.unhandle(BLOB_PROTOCOL)
const honestBlobs = (await import('@dml/node')).serveBlob
await host.libp2p.handle(BLOB_PROTOCOL, async (stream) => {
  if (attack === 'stall-leader' || attack === 'never-serve') {
    await new Promise(resolve => setTimeout(resolve, 600_000))
    return
  }
  if (attack === 'junk-blob') {
    // a header announcing 256 MiB, then junk, as fast as the stream takes it
    const header = encode({ size: 256 * 1024 * 1024 })
    const frame = new Uint8Array(4 + header.byteLength)
    new DataView(frame.buffer).setUint32(0, header.byteLength)
    frame.set(header, 4)
    stream.send(frame)
    const junk = new Uint8Array(1024 * 1024).fill(7)
    for (let i = 0; i < 256 && stream.writeStatus === 'writable'; i++) if (!stream.send(junk)) await stream.onDrain().catch(() => {})
    return
  }
  await honestBlobs(stream, host.blobs)
}, { maxInboundStreams: 256 })

/**
 * Sybils: `count` more identities, each its own libp2p host connected to this one only, so their
 * heartbeats reach the honest peers through this one connection. With `addrs`, they announce
 * those addresses (a victim's) as their own; with `leaveAfterMs`, they go after that long.
 */
async function startSybils (count: number, addrs: string[] | undefined, leaveAfterMs: number | undefined): Promise<void> {
  const mine = host.libp2p.getMultiaddrs()[0].toString()
  for (let i = 0; i < count; i++) {
    // on an address of their own (any 127/8 address is loopback): what the honest peers dial is
    // this one machine, as behind a real attacker's one IP address
    const s = await startHost({ privateKey: await generateKeyPair('Ed25519'), host: SYBIL_HOST, port: 0, bootstrap: [mine], mdns: false, swarmKey: swarmKeyFile === undefined ? undefined : readSwarmKey(swarmKeyFile) }, { judge: () => 'accept', deliver: () => {}, rejected: () => {}, subscribed: () => {} })
    sybils.push(s)
  }
  say('sybils-started', { count, peers: sybils.map(h => h.peerId) })
  const beat = setInterval(() => {
    for (const s of sybils) {
      s.publish({ type: 'heartbeat', v: PROTOCOL_VERSION, term: leader?.term ?? 0, peer: s.peerId, leader: leader?.peer ?? null, round: 0, modelHash: null, device: 'gpu', backend: 'sybil', speed: 1e6, examples: 1e9, addrs: addrs ?? s.listenAddrs(), termCert: null, roundCert: null, work: null, everyMs: 1000 }).catch(() => {})
    }
  }, 1000)
  if (leaveAfterMs !== undefined) {
    setTimeout(() => {
      clearInterval(beat)
      Promise.all(sybils.map(async s => { await s.stop() })).then(() => {
        sybils = []
        say('sybils-gone', {})
      }, () => {})
    }, leaveAfterMs)
  }
}

setInterval(() => { beat().catch((err: unknown) => { say('beat-failed', { error: (err as Error).message }) }) }, 1000)
createInterface({ input: process.stdin }).on('line', (line) => {
  try {
    const command = JSON.parse(line) as { attack: string, target?: string, count?: number, leaveAfterMs?: number, everyMs?: number, ms?: number }
    attack = command.attack
    params = {}
    say('attack', { attack })
    if (attack === 'replay') replay(command.count ?? 600, command.everyMs ?? 100).catch((err: unknown) => { say('replay-failed', { error: String(err) }) })
    if (attack === 'flood') flood(command.ms ?? 120_000).catch((err: unknown) => { say('flood-failed', { error: String(err) }) })
    if (attack === 'third-party-addrs') startSybils(command.count ?? 3, [command.target!], command.leaveAfterMs).catch((err: unknown) => { say('sybils-failed', { error: String(err) }) })
    if (attack === 'sybils') startSybils(command.count ?? 20, undefined, undefined).catch((err: unknown) => { say('sybils-failed', { error: String(err) }) })
  } catch {
    say('bad-command', { line })
  }
})
process.once('SIGTERM', () => { host.stop().then(() => process.exit(0), () => process.exit(1)) })
