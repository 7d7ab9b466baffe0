// A node that takes browsers relays for the peers connected to it over WebSockets (tabs), so that
// tabs reach each other through it; a member connected over TCP gets no reservation from it unless
// the node has --relay. Real libp2p hosts on loopback (in Node, a tab's host has no WebRTC: its
// circuit is what is tested here; test/tab.test.ts has two Chromium tabs on WebRTC).
import { expect } from 'chai'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { startHost, type DmlHost, type MessageHandlers } from '@dml/node'
import { within } from '../../../test/helpers.ts'

const quiet: MessageHandlers = { judge: () => 'ignore', deliver: () => {}, rejected: () => {}, subscribed: () => {} }

/** Resolves once `holds()` is true, looked at now and at each of `h`'s connection and address events; fails naming `what` after 10 s. */
async function once (h: DmlHost, what: string, holds: () => boolean): Promise<void> {
  const events = ['connection:open', 'self:peer:update', 'peer:identify'] as const
  let look = (): void => {}
  const seen = new Promise<void>(resolve => { look = () => { if (holds()) resolve() } })
  for (const e of events) h.libp2p.addEventListener(e, look)
  try {
    look()
    await within(seen, 10_000, what)
  } finally {
    for (const e of events) h.libp2p.removeEventListener(e, look)
  }
}

describe('a node relays for tabs', function () {
  this.timeout(30_000)
  const hosts: DmlHost[] = []
  const start = async (options: { port?: number, wsPort?: number, relay?: boolean, bootstrap?: string[] }): Promise<DmlHost> => {
    const h = await startHost({ privateKey: await generateKeyPair('Ed25519'), host: '127.0.0.1', bootstrap: [], mdns: false, ...options }, quiet)
    hosts.push(h)
    return h
  }
  after(async () => { await Promise.all(hosts.map(async h => { await h.stop() })) })

  /** Tries to take a reservation on `relay`'s circuit at `addr`, as libp2p does for a listen address naming one relay. */
  const reserve = async (h: DmlHost, addr: string): Promise<void> => {
    const manager = (h.libp2p as unknown as { components: { transportManager: { listen: (addrs: unknown[]) => Promise<void> } } }).components.transportManager
    await manager.listen([multiaddr(`${addr}/p2p-circuit`)])
  }

  it('a tab that dialed over WebSockets holds a reservation and another tab reaches it through the node; a member over TCP is refused one', async () => {
    const node = await start({ port: 0, wsPort: 0 })
    const [tcpAddr, wsAddr] = ['/tcp/', '/ws/'].map(kind => node.listenAddrs().find(a => a.includes(kind) && (kind === '/ws/' || !a.includes('/ws'))))
    expect(wsAddr, node.listenAddrs().join(' ')).to.include('/ws/')
    const tab = await start({ bootstrap: [wsAddr!] })
    await once(tab, 'the tab\'s reservation on the node', () => tab.relayState().via.includes(node.peerId))
    expect(node.relayState().reservations).to.equal(1)
    const circuit = tab.listenAddrs().find(a => a.startsWith(wsAddr!) && a.includes('/p2p-circuit/'))
    expect(circuit, tab.listenAddrs().join(' ')).to.not.equal(undefined)

    const other = await start({ bootstrap: [wsAddr!] })
    await once(other, 'the second tab connected to the node', () => other.connectedPeers().includes(node.peerId))
    await other.libp2p.dial(multiaddr(circuit!))
    expect(other.reach()[tab.peerId]).to.equal('relayed')

    const member = await start({ port: 0, bootstrap: [tcpAddr!] })
    await once(member, 'the member connected to the node', () => member.connectedPeers().includes(node.peerId))
    let refusal: unknown
    await reserve(member, tcpAddr!).catch((err: unknown) => { refusal = err })
    expect(String(refusal), 'a reservation for a member over TCP').to.match(/reserv|refused|denied|permission/i)
    expect(member.relayState().via).to.deep.equal([])
  })

  it('with --relay, a member over TCP is granted one too', async () => {
    const node = await start({ port: 0, wsPort: 0, relay: true })
    const tcpAddr = node.listenAddrs().find(a => !a.includes('/ws'))!
    const member = await start({ port: 0, bootstrap: [tcpAddr] })
    await once(member, 'the member connected to the node', () => member.connectedPeers().includes(node.peerId))
    await once(member, 'the member\'s reservation on the node', () => member.relayState().via.includes(node.peerId))
  })
})
