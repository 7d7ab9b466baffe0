// What the libp2p host takes from Node and a browser tab has not (package.json's imports name
// host-platform-browser.ts under the browser condition): TCP, mDNS, and this machine's addresses;
// and no WebRTC, which only tabs use (to reach each other: they reach nodes over WebSockets).
import { networkInterfaces } from 'node:os'
import { tcp } from '@libp2p/tcp'
import { mdns } from '@libp2p/mdns'

export const platform = {
  tcp: () => [tcp()],
  mdns: (interval: number) => [mdns({ interval })],
  /** the addresses of this machine's interfaces, loopback included (read each time: interfaces come and go) */
  ownIps: (): Set<string> => new Set(Object.values(networkInterfaces()).flatMap(list => (list ?? []).map(i => i.address))),
  webrtc: () => []
}
