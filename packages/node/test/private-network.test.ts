// The private network's cipher and protocol: the same bytes as @libp2p/pnet's, any chunking, and
// real hosts that stay up under heavy traffic over many connections.
import { expect } from 'chai'
import fc from 'fast-check'
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { xsalsa20 } from '@noble/ciphers/salsa.js'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { preSharedKey } from '@libp2p/pnet'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { startHost, XSalsa20Stream, type DmlHost, type MessageHandlers } from '@dml/node'

const quiet: MessageHandlers = { judge: () => 'ignore', deliver: () => {}, rejected: () => {}, subscribed: () => {} }
const swarmKey = (): Uint8Array => new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString('hex')}`)

describe('the private network', function () {
  this.timeout(60_000)

  it('streams XSalsa20 in chunks of any size, to the same bytes as in one piece', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 2000 }), fc.array(fc.nat({ max: 300 }), { maxLength: 12 }), (data, cuts) => {
      const key = Uint8Array.from(randomBytes(32))
      const nonce = Uint8Array.from(randomBytes(24))
      const stream = new XSalsa20Stream(key, nonce)
      const pieces: Uint8Array[] = []
      let at = 0
      for (const cut of [...cuts, data.length]) {
        const end = Math.min(data.length, at + cut)
        pieces.push(stream.update(data.subarray(at, end)))
        at = end
      }
      expect(Buffer.concat(pieces)).to.deep.equal(Buffer.from(xsalsa20(key, nonce, data)))
    }), { numRuns: 500 })
  })

  it('gives the bytes of the xsalsa20 package that @libp2p/pnet uses', () => {
    // the reference, as a dependency of @libp2p/pnet: a CommonJS module
    const reference = createRequire(createRequire(import.meta.url).resolve('@libp2p/pnet')).call(null, 'xsalsa20') as (nonce: Uint8Array, key: Uint8Array) => { update: (d: Uint8Array) => Uint8Array }
    for (let i = 0; i < 20; i++) {
      const key = Uint8Array.from(randomBytes(32))
      const nonce = Uint8Array.from(randomBytes(24))
      const data = Uint8Array.from(randomBytes(1 + i * 97))
      const theirs = reference(nonce, key)
      const ours = new XSalsa20Stream(key, nonce)
      expect(Buffer.from(ours.update(data.subarray(0, 10 + i)))).to.deep.equal(Buffer.from(theirs.update(data.subarray(0, 10 + i))))
      expect(Buffer.from(ours.update(data.subarray(10 + i)))).to.deep.equal(Buffer.from(theirs.update(data.subarray(10 + i))))
    }
  })

  it('talks to a libp2p node that uses @libp2p/pnet with the same key, and not with another', async () => {
    const key = swarmKey()
    const ours = await startHost({ privateKey: await generateKeyPair('Ed25519'), host: '127.0.0.1', port: 0, bootstrap: [], mdns: false, swarmKey: key }, quiet)
    const make = async (psk: Uint8Array): Promise<Awaited<ReturnType<typeof createLibp2p>>> => await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()], connectionProtector: preSharedKey({ psk })
    })
    const theirs = await make(key)
    const stranger = await make(swarmKey())
    try {
      const connection = await theirs.dial(ours.libp2p.getMultiaddrs()[0], { signal: AbortSignal.timeout(10_000) })
      expect(connection.remotePeer.toString()).to.equal(ours.peerId)
      let refused = false
      await stranger.dial(ours.libp2p.getMultiaddrs()[0], { signal: AbortSignal.timeout(3_000) }).catch(() => { refused = true })
      expect(refused).to.equal(true)
    } finally {
      await Promise.all([ours.stop(), theirs.stop(), stranger.stop()])
    }
  })

  it('stays up while six hosts fetch megabytes from each other at once (the load that crashed @libp2p/pnet\'s cipher)', async () => {
    const key = swarmKey()
    const hosts: DmlHost[] = []
    try {
      for (let i = 0; i < 6; i++) hosts.push(await startHost({ privateKey: await generateKeyPair('Ed25519'), host: '127.0.0.1', port: 0, bootstrap: [], mdns: false, swarmKey: key }, quiet))
      for (const a of hosts) for (const b of hosts) if (a !== b) await a.libp2p.dial(b.libp2p.getMultiaddrs()[0])
      for (let round = 0; round < 3; round++) {
        const blobs = hosts.map(h => ({ host: h, hash: h.blobs.put(Uint8Array.from(randomBytes(3 * 1024 * 1024))) }))
        await Promise.all(hosts.flatMap(a => blobs.filter(b => b.host !== a).map(async b => await a.fetchBlob(b.hash, [b.host.peerId], { timeoutMs: 30_000, maxBytes: 4 * 1024 * 1024 }))))
      }
    } finally {
      await Promise.all(hosts.map(async h => { await h.stop() }))
    }
  })
})
