// How a host tells gossip messages apart (host.ts: fastMsgIdFn, a message named by its signature),
// against a liar: real libp2p hosts on loopback, raw gossipsub RPCs written on a stream of its own.
// Naming a message by its signature is safe only if a copy whose signature does not verify is
// never remembered as seen: else a liar that copies an honest peer's signature onto other data
// and gets it in first would have the honest message dropped as a duplicate (censored).
import { expect } from 'chai'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { RPC } from '@libp2p/gossipsub/message'
import { CONTROL_TOPIC, encodeMessage, PROTOCOL_VERSION, type ControlMessage, type Heartbeat } from '@dml/protocol'
import { startHost, type DmlHost, type MessageHandlers } from '@dml/node'
import { framed, GOSSIPSUB } from './support/gossip-rpc.ts'

const SIGN_PREFIX = new TextEncoder().encode('libp2p-pubsub:')

/** A gossipsub message on the control topic, signed by `key` as gossipsub signs (StrictSign). */
async function signed (key: PrivateKey, message: ControlMessage, seqno: bigint): Promise<RPC.Message> {
  const seq = new Uint8Array(8)
  new DataView(seq.buffer).setBigUint64(0, seqno, false)
  const unsigned: RPC.Message = { from: peerIdFromPrivateKey(key).toMultihash().bytes, data: encodeMessage(message), seqno: seq, topic: CONTROL_TOPIC }
  const bytes = RPC.Message.encode(unsigned)
  const toSign = new Uint8Array(SIGN_PREFIX.length + bytes.length)
  toSign.set(SIGN_PREFIX)
  toSign.set(bytes, SIGN_PREFIX.length)
  return { ...unsigned, signature: await key.sign(toSign) }
}


function heartbeat (peer: string, round: number): Heartbeat {
  return { type: 'heartbeat', v: PROTOCOL_VERSION, seq: round, term: 1, peer, leader: null, round, modelHash: null, device: 'cpu', backend: 'wasm', speed: 0, examples: 0, addrs: [], termCert: null, roundCert: null, work: null, everyMs: 1000 }
}

describe('gossip message ids', function () {
  this.timeout(60_000)
  const hosts: DmlHost[] = []
  const delivered: ControlMessage[] = []
  let waiters: Array<() => void> = []
  const handlers: MessageHandlers = {
    judge: () => 'accept',
    deliver: (m) => { delivered.push(m); for (const w of waiters.splice(0)) w() },
    rejected: () => {},
    subscribed: () => {}
  }
  const quiet: MessageHandlers = { judge: () => 'ignore', deliver: () => {}, rejected: () => {}, subscribed: () => {} }
  const start = async (key: PrivateKey, h: MessageHandlers): Promise<DmlHost> => {
    const host = await startHost({ privateKey: key, host: '127.0.0.1', port: 0, bootstrap: [], mdns: false }, h)
    hosts.push(host)
    return host
  }
  /** Waits until `done`, checked on every delivery and every 100 ms, failing loudly after 10 s. */
  const until = async (what: string, done: () => boolean): Promise<void> => {
    const deadline = Date.now() + 10_000
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`not within 10 s: ${what}; delivered heartbeats of rounds ${JSON.stringify(delivered.map(m => m.type === 'heartbeat' ? m.round : m.type))}`)
      await new Promise<void>(resolve => { waiters.push(resolve); setTimeout(resolve, 100) })
    }
  }
  const deliveredOne = async (what: string, match: (m: ControlMessage) => boolean): Promise<void> => { await until(`${what} delivered`, () => delivered.some(match)) }
  after(async () => { waiters = []; await Promise.all(hosts.map(async h => { await h.stop() })) })

  it('a forged copy of an honest message, sent first, does not get the honest message dropped; a true copy is dropped', async () => {
    const receiver = await start(await generateKeyPair('Ed25519'), handlers)
    const honestKey = await generateKeyPair('Ed25519')
    const honest = await start(honestKey, quiet)
    const liar = await start(await generateKeyPair('Ed25519'), quiet)
    const send = async (from: DmlHost, messages: RPC.Message[]): Promise<void> => {
      const stream = await from.libp2p.dialProtocol(receiver.libp2p.getMultiaddrs()[0], GOSSIPSUB, { signal: AbortSignal.timeout(10_000) })
      if (!stream.send(framed(RPC.encode({ subscriptions: [], messages })))) await stream.onDrain()
    }

    const genuine = await signed(honestKey, heartbeat(honest.peerId, 7), 1n)
    // the liar's copy: the honest peer's signature, seqno and name on other data
    const forged: RPC.Message = { ...genuine, data: encodeMessage(heartbeat(honest.peerId, 666)) }
    await send(liar, [forged])
    // the forged copy is handled before the genuine message is sent, else the genuine one might
    // simply arrive first on its own stream: gossipsub counts it against the liar (read from its
    // score's records, which its interface does not export)
    const invalid = (peer: string): number => (receiver.libp2p.services.pubsub as unknown as { score: { peerStats: Map<string, { topics: Record<string, { invalidMessageDeliveries: number }> }> } })
      .score.peerStats.get(peer)?.topics[CONTROL_TOPIC]?.invalidMessageDeliveries ?? 0
    await until('the forged copy rejected', () => invalid(liar.peerId) > 0)
    await send(honest, [genuine])
    await deliveredOne('the genuine heartbeat (round 7)', m => m.type === 'heartbeat' && m.round === 7)
    expect(delivered.some(m => m.type === 'heartbeat' && m.round === 666)).to.equal(false)

    // and a message named by its signature is still delivered once: the same one again is a duplicate
    const second = await signed(honestKey, heartbeat(honest.peerId, 8), 2n)
    await send(honest, [second])
    await deliveredOne('the second heartbeat (round 8)', m => m.type === 'heartbeat' && m.round === 8)
    await send(liar, [second, genuine])
    const marker = await signed(honestKey, heartbeat(honest.peerId, 9), 3n)
    await send(liar, [marker])
    await deliveredOne('the third heartbeat (round 9)', m => m.type === 'heartbeat' && m.round === 9)
    expect(delivered.filter(m => m.type === 'heartbeat' && m.round === 8)).to.have.length(1)
    expect(delivered.filter(m => m.type === 'heartbeat' && m.round === 7)).to.have.length(1)
  })
})
