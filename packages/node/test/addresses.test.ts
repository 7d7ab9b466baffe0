// The addresses a peer's signed heartbeat names, as the host takes them to dial it: its own only.
import { expect } from 'chai'
import { multiaddr } from '@multiformats/multiaddr'
import { announcedAddrs, ipOf } from '@dml/node'

const PEER = '12D3KooWN5i3tb5gETU8rZRMgMyvn34rGfgjzCgRSXzt89tLbNKM'
const RELAY = '12D3KooWDWG31EDrNyzFQKcBHtq2P5n2x9Vz6Y8JpRPQVhGmdHcK'
const OTHER = '12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK'

describe('the addresses a heartbeat announces', () => {
  it('a direct address, with or without its own /p2p/ part; one naming another peer is dropped', () => {
    expect(announcedAddrs(PEER, ['/ip4/10.0.0.5/tcp/4001', `/ip4/10.0.0.5/tcp/4002/p2p/${PEER}`, `/ip4/10.0.0.6/tcp/4001/p2p/${OTHER}`]))
      .to.deep.equal(['/ip4/10.0.0.5/tcp/4001', '/ip4/10.0.0.5/tcp/4002'])
  })

  it('a relayed address names its relay, then may name only this peer', () => {
    expect(announcedAddrs(PEER, [
      `/ip4/203.0.113.7/tcp/4001/p2p/${RELAY}/p2p-circuit/p2p/${PEER}`,
      `/ip4/203.0.113.7/tcp/4001/p2p/${RELAY}/p2p-circuit`,
      `/ip4/203.0.113.7/tcp/4001/p2p/${RELAY}/p2p-circuit/p2p/${OTHER}`, // another peer's
      '/ip4/203.0.113.7/tcp/4001/p2p-circuit', // no relay named
      `/ip4/203.0.113.7/tcp/4001/p2p/${RELAY}/p2p/${OTHER}/p2p-circuit` // two
    ])).to.deep.equal([`/ip4/203.0.113.7/tcp/4001/p2p/${RELAY}/p2p-circuit`, `/ip4/203.0.113.7/tcp/4001/p2p/${RELAY}/p2p-circuit`])
  })

  it('a tab\'s WebRTC address names the relay that carries its handshake, then may name only this peer', () => {
    const relay = `/ip4/10.0.0.5/tcp/4100/ws/p2p/${RELAY}/p2p-circuit`
    expect(announcedAddrs(PEER, [
      `${relay}/webrtc/p2p/${PEER}`,
      `${relay}/webrtc/p2p/${OTHER}`, // another peer's
      `${relay}/webrtc/webrtc/p2p/${PEER}`, // not a form libp2p dials
      `${relay}/p2p/${PEER}/webrtc` // webrtc after the peer
    ])).to.deep.equal([`${relay}/webrtc`])
  })

  it('what is not a multiaddr is dropped', () => {
    expect(announcedAddrs(PEER, ['not an address', '', '/ip4/999.1.1.1/tcp/1'])).to.deep.equal([])
  })

  it('a connection through a relay comes from no IP of its own: the relay\'s is shared by every peer behind it', () => {
    expect(ipOf(multiaddr('/ip4/10.0.0.5/tcp/4001'))).to.equal('10.0.0.5')
    expect(ipOf(multiaddr(`/ip4/203.0.113.7/tcp/4001/p2p/${RELAY}/p2p-circuit/p2p/${PEER}`))).to.equal(undefined)
  })
})
