// The blob protocol over real libp2p hosts on loopback: one deadline per source covers the dial,
// the header and every byte; a source that stalls is left for the next one.
import { expect } from 'chai'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { BLOB_PROTOCOL, encodeCbor } from '@dml/protocol'
import { startHost, type DmlHost, type MessageHandlers } from '@dml/node'

const quiet: MessageHandlers = { judge: () => 'ignore', deliver: () => {}, rejected: () => {}, subscribed: () => {} }

async function host (minTransferRate = 0): Promise<DmlHost> {
  return await startHost({ privateKey: await generateKeyPair('Ed25519'), host: '127.0.0.1', port: 0, bootstrap: [], mdns: false, minTransferRate }, quiet)
}

/** A host whose blob handler takes the request, maybe says a size, and then sends nothing more. */
async function staller (withHeader: boolean): Promise<DmlHost> {
  const h = await host()
  await h.libp2p.unhandle(BLOB_PROTOCOL)
  await h.libp2p.handle(BLOB_PROTOCOL, async (stream) => {
    if (withHeader) {
      const header = encodeCbor({ size: 1_000_000 })
      const frame = new Uint8Array(4 + header.byteLength)
      new DataView(frame.buffer).setUint32(0, header.byteLength)
      frame.set(header, 4)
      stream.send(frame)
      stream.send(new Uint8Array(1000)) // a little of the body, then silence
    }
    await new Promise(resolve => setTimeout(resolve, 30_000))
  })
  return h
}

describe('blob transfer between real hosts', function () {
  this.timeout(30_000)
  const hosts: DmlHost[] = []
  let requester: DmlHost
  let good: DmlHost
  let served = 0
  /** A new 3 MiB blob on the good host (the requester keeps what it fetched, so each test needs its own). */
  const serve = (): { blob: Uint8Array, hash: string } => {
    const blob = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i + ++served) % 251)
    return { blob, hash: good.blobs.put(blob) }
  }

  before(async () => {
    requester = await host()
    good = await host()
    hosts.push(requester, good)
    await requester.libp2p.dial(good.libp2p.getMultiaddrs()[0])
  })
  after(async () => { await Promise.all(hosts.map(async h => { await h.stop() })) })

  async function connected (h: DmlHost): Promise<DmlHost> {
    hosts.push(h)
    await requester.libp2p.dial(h.libp2p.getMultiaddrs()[0])
    return h
  }

  for (const withHeader of [false, true]) {
    it(`a source that stalls ${withHeader ? 'mid-body' : 'before answering'} is given up at its deadline and the next one asked`, async () => {
      const slow = await connected(await staller(withHeader))
      const { blob, hash } = serve()
      const started = Date.now()
      const bytes = await requester.fetchBlob(hash, [slow.peerId, good.peerId], { timeoutMs: 700, maxBytes: 4 * 1024 * 1024 })
      const took = Date.now() - started
      expect(bytes).to.deep.equal(blob)
      expect(took).to.be.within(650, 5000)
    })
  }

  it('a fetch from stalling sources only fails with the reason of each, after one deadline each', async () => {
    const a = await connected(await staller(true))
    const b = await connected(await staller(false))
    const started = Date.now()
    let error: Error | undefined
    try {
      await requester.fetchBlob('f'.repeat(64), [a.peerId, b.peerId], { timeoutMs: 500, maxBytes: 4 * 1024 * 1024 })
    } catch (err) {
      error = err as Error
    }
    expect(error?.name).to.equal('BlobError')
    expect(error?.message).to.match(/no complete answer within 500 ms.*no complete answer within 500 ms/)
    expect(Date.now() - started).to.be.within(950, 5000)
  })

  it('a source announcing more than the blob can be is left at its header, before a byte of it is kept', async () => {
    const big = await connected(await staller(true)) // announces 1 MB, sends a little, stalls
    const started = Date.now()
    let error: Error | undefined
    try {
      await requester.fetchBlob('c'.repeat(64), [big.peerId], { timeoutMs: 30_000, maxBytes: 100_000 })
    } catch (err) {
      error = err as Error
    }
    expect(error?.message).to.match(/announces 1000000 bytes, more than the 100000 expected/)
    expect(Date.now() - started).to.be.below(2000)
  })

  it('a source that trickles its bytes is left once it falls under the minimum rate, long before the deadline', async () => {
    const trickler = await host()
    await trickler.libp2p.unhandle(BLOB_PROTOCOL)
    await trickler.libp2p.handle(BLOB_PROTOCOL, async (stream) => {
      const header = encodeCbor({ size: 1_000_000 })
      const frame = new Uint8Array(4 + header.byteLength)
      new DataView(frame.buffer).setUint32(0, header.byteLength)
      frame.set(header, 4)
      stream.send(frame)
      for (let i = 0; i < 60 && stream.writeStatus === 'writable'; i++) { // a hundred bytes a second
        stream.send(new Uint8Array(100))
        await new Promise(resolve => setTimeout(resolve, 1000))
      }
    })
    hosts.push(trickler)
    const strict = await host(64 * 1024)
    hosts.push(strict)
    await strict.libp2p.dial(trickler.libp2p.getMultiaddrs()[0])
    const started = Date.now()
    let error: Error | undefined
    try {
      await strict.fetchBlob('a'.repeat(64), [trickler.peerId], { timeoutMs: 60_000, maxBytes: 4 * 1024 * 1024 })
    } catch (err) {
      error = err as Error
    }
    expect(error?.message).to.match(/sends under 64 KiB\/s/)
    expect(Date.now() - started).to.be.within(5000, 8000)
  })

  it('a fetch waiting on a stalled source ends as soon as the blob lands here by other means, with no source blamed', async () => {
    const slow = await staller(false)
    const blob = new Uint8Array(50_000).map((_, i) => (i * 7 + ++served) % 251)
    const hash = slow.blobs.put(blob) // its handler stalls whatever it holds
    const blamed: string[] = []
    const waiting = await startHost({ privateKey: await generateKeyPair('Ed25519'), host: '127.0.0.1', port: 0, bootstrap: [], mdns: false, minTransferRate: 0 },
      { ...quiet, limited: (reason) => { blamed.push(reason) } })
    hosts.push(slow, waiting)
    await waiting.libp2p.dial(slow.libp2p.getMultiaddrs()[0])
    setTimeout(() => { waiting.blobs.put(blob) }, 300) // this peer made it itself, meanwhile
    const started = Date.now()
    const bytes = await waiting.fetchBlob(hash, [slow.peerId], { timeoutMs: 60_000, maxBytes: 4 * 1024 * 1024 })
    expect(bytes).to.deep.equal(blob)
    expect(Date.now() - started).to.be.below(2000)
    expect(blamed).to.deep.equal([])
  })

  it('the round\'s signal ends a fetch at once, whatever the deadline', async () => {
    const slow = await connected(await staller(false))
    const controller = new AbortController()
    setTimeout(() => { controller.abort(new Error('round 7 is over')) }, 300)
    const started = Date.now()
    let error: Error | undefined
    try {
      await requester.fetchBlob('e'.repeat(64), [slow.peerId, good.peerId], { timeoutMs: 60_000, signal: controller.signal, maxBytes: 4 * 1024 * 1024 })
    } catch (err) {
      error = err as Error
    }
    expect(error?.message).to.equal('round 7 is over')
    expect(Date.now() - started).to.be.below(2000)
  })
})
