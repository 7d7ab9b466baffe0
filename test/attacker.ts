// A lying peer, for the attack tests: a real libp2p process that speaks dml's own protocol (from
// its own packages) and lies. It reads one attack per line on stdin ({"attack": name}) and prints
// JSON events on stdout. Usage: node test/attacker.ts <key file> <bootstrap multiaddr> [swarm key file]
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { encode } from 'cborg'
import {
  CONTROL_TOPIC, contentHash, decodeTensors, encodeResult, encodeRoundCert, encodeTensors, encodeTermCert, PROTOCOL_VERSION, resultSigningBytes,
  roundVoteSigningBytes, voteSigningBytes, type ControlMessage, type Heartbeat, type NamedTensor, type RoundStart, type Task
} from '@dml/protocol'
import { BLOB_PROTOCOL } from '@dml/protocol'
import { readSwarmKey, startHost } from '@dml/node'

const [keyFile, bootstrap, swarmKeyFile] = process.argv.slice(2)
const key = privateKeyFromProtobuf(readFileSync(keyFile))
const self = peerIdFromPrivateKey(key).toString()
const say = (event: string, fields: Record<string, unknown> = {}): void => { console.log(JSON.stringify({ ts: Date.now(), event, ...fields })) }

let attack = 'none'
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

const publish = async (m: ControlMessage): Promise<void> => {
  try { await host.publish(m) } catch (err) { say('publish-failed', { error: (err as Error).message }) }
}

async function onMessage (m: ControlMessage): Promise<void> {
  if (m.type === 'heartbeat' && m.leader === m.peer && m.termCert !== null) leader = m
  if (m.type !== 'round-start') return
  lastStart = m
  if (attack !== 'bad-updates') return
  const mine = m.assignments.find(a => a.peer === self)
  if (mine === undefined) return
  try {
    model = decodeTensors(await host.fetchBlob(m.modelHash, [m.leader], { timeoutMs: 10_000 }))
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
  const result = encodeResult({ kind: 'round-result', v: PROTOCOL_VERSION, term, round, leader: self, prevHash: modelHash, modelHash, aggregation: 'fedavg', trim: 0.2, byzantine: 1, clip: 1, normBound: 5, participants: [self], contributions: [], termCert })
  const resultHash = contentHash(result)
  const roundBytes = encodeRoundCert({ kind: 'round-cert', v: PROTOCOL_VERSION, result, leaderSignature: await key.sign(resultSigningBytes(resultHash)), votes: [{ peer: self, accuracy: 1, loss: 0, samples: 1, signature: await key.sign(roundVoteSigningBytes(resultHash, 1, 0, 1)) }] })
  return { termCert, roundCert: host.blobs.put(roundBytes, true) }
}

function heartbeat (fields: Partial<Heartbeat>): Heartbeat {
  return { type: 'heartbeat', v: PROTOCOL_VERSION, term: leader?.term ?? 0, peer: self, leader: leader?.peer ?? null, round: 0, modelHash: null, device: 'gpu', backend: 'liar', speed: 1e6, addrs: host.listenAddrs(), termCert: null, roundCert: null, ...fields }
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
          metrics: { accuracy: 1, loss: 0, participants: [self], activeNodes: 1, gpuNodes: 1, cpuNodes: 0, durationMs: 1, trainMs: 1, transferMs: 0, aggregateMs: 0, evalMs: 0, idleMs: 0, finishedAt: Date.now() } })
      }
      await publish(heartbeat({}))
      return
    }
    case 'stall-leader': {
      // a signed round start of our own, whose model we then never serve (see the blob handler)
      const task: Task | undefined = lastStart?.task
      if (task === undefined) return
      for (const t of [term, term + 1]) {
        await publish({ type: 'round-start', v: PROTOCOL_VERSION, term: t, round: round + 1, leader: self, modelHash: 'f'.repeat(64), deadline: Date.now() + 3_600_000, task, assignments: (lastStart?.assignments ?? []).map(a => ({ ...a })) })
      }
      await publish(heartbeat({}))
      return
    }
    case 'huge-term': {
      const huge = Number.MAX_SAFE_INTEGER - 1
      await publish(heartbeat({ term: huge }))
      await publish({ type: 'vote-request', v: PROTOCOL_VERSION, term: huge, candidate: self, round: round + 1000, roundCert: null })
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
  if (attack === 'stall-leader') {
    await new Promise(resolve => setTimeout(resolve, 600_000))
    return
  }
  await honestBlobs(stream, host.blobs)
}, { maxInboundStreams: 256 })

setInterval(() => { beat().catch((err: unknown) => { say('beat-failed', { error: (err as Error).message }) }) }, 1000)
createInterface({ input: process.stdin }).on('line', (line) => {
  try {
    attack = (JSON.parse(line) as { attack: string }).attack
    say('attack', { attack })
  } catch {
    say('bad-command', { line })
  }
})
process.once('SIGTERM', () => { host.stop().then(() => process.exit(0), () => process.exit(1)) })
