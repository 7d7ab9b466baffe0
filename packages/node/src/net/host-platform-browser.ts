// The libp2p host in a browser tab (see host-platform-node.ts): no TCP, no mDNS, and no addresses
// of its own that another peer's connection could come from; but WebRTC, which browsers have, so
// that tabs connect straight to each other once a node's relay has carried their handshake.
import { webRTC } from '@libp2p/webrtc'

export const platform = {
  tcp: () => [],
  mdns: (_interval: number): never => { throw new Error('mDNS needs Node: a browser tab finds the network at the node that served its page') },
  ownIps: (): Set<string> => new Set(),
  webrtc: () => [webRTC()]
}
