// The libp2p host: tcp + noise + yamux, identify, gossipsub for control messages, mDNS and
// bootstrap discovery, optional private network; and past NAT, circuit relay v2 (every peer a
// client that takes a reservation on a member that relays; with --relay a server for members),
// DCUtR (hole punching: a relayed connection upgraded to a direct one where the NATs allow) and
// AutoNAT. A node that takes browsers (WebSockets) relays for the peers connected to it over
// WebSockets, so that tabs reach each other through it, and over WebRTC once it has carried their
// handshake. It exposes the small Network interface the round engine uses, so the engine never
// touches libp2p directly.
import { createLibp2p, type Libp2p } from 'libp2p'
import { webSockets } from '@libp2p/websockets'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { circuitRelayServer, circuitRelayTransport, type CircuitRelayService } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { autoNAT } from '@libp2p/autonat'
import { gossipsub, type GossipSub, TopicValidatorResult, StrictSign } from '@libp2p/gossipsub'
import { createTopicScoreParams, type PeerScoreParams, type PeerScoreThresholds } from '@libp2p/gossipsub/score'
import { bootstrap } from '@libp2p/bootstrap'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { Connection, Metrics, PeerId, PrivateKey, Stream } from '@libp2p/interface'
import { BLOB_PROTOCOL, CONTROL_TOPIC, MAX_CONTROL_BYTES, decodeMessage, encodeMessage, MessageClock } from '@dml/protocol'
import { BlobError, BlobStore, fetchFromAny, requestBlob, serveBlob } from './blob-transfer.ts'
import { abortReason, systemClock } from '../clock.ts'
import { admitMessage, type MessageHandlers, type Network } from './network.ts'
import { privateNetwork } from './private-network.ts'
import { DEFAULT_DIALER, Dialer, isRelayed } from './dialer.ts'
import { platform } from '#host-platform'

// a bootstrap peer that is still starting is dialed again within a quarter second
const TICK_MS = 250
/** how long gossip may take to come up on a new connection (see gossipRepairs) */
export const GOSSIP_GRACE_MS = 30_000

export interface HostOptions {
  privateKey: PrivateKey
  /** the address to listen on (none in a browser tab, which only dials) */
  host?: string
  /** TCP's port: with none (a browser tab), no TCP, no listening, and no hole punching */
  port?: number
  /** WebSockets, where browsers connect (Noise-encrypted like every link): its port, or none */
  wsPort?: number
  /** multiaddrs with a /p2p/ peer id (checked by the CLI) */
  bootstrap: string[]
  mdns: boolean
  /** contents of a libp2p swarm key file: only peers holding the same key can connect */
  swarmKey?: Uint8Array
  /** a transfer slower than this (bytes/s, on average, after a short grace) is left for the next source */
  minTransferRate?: number
  /** distinct peer ids accepted from one IP address at once (0: no bound) */
  maxPeersPerIp?: number
  /** dials of one gossiped address an hour, unless it answers as the peer that named it */
  hintDials?: number
  /** inbound blob streams one connection may hold open at once */
  maxBlobStreams?: number
  /** how long a peer may take to receive a blob we serve it */
  transferTimeoutMs?: number
  /** libp2p's metrics (bytes per protocol, connections): see metrics.ts */
  metrics?: (components: any) => Metrics
  /** a certificate and its key (PEM): WebSockets over TLS (wss), for pages served on https */
  tls?: { cert: string, key: string }
  /** --relay: relay connections between members that cannot reach each other (give it to a peer others can reach) */
  relay?: boolean
  /** --announce: the addresses others are to dial this peer at (a public address forwarded to it), instead of its listen addresses */
  announce?: string[]
  /** --allow-peers: only these may take a reservation on this peer's relay, or be relayed to */
  allowed?: ReadonlySet<string>
}

/** What this peer's relay grants each member (circuit relay v2 reservations and their relayed connections). */
export const RELAY_LIMITS = {
  /** members holding a reservation at once */
  reservations: 64,
  /** bytes one relayed connection may carry before the relay resets it (a peer then connects again): rounds of the built-in models fit */
  dataBytes: 512 * 1024 * 1024,
  /** how long one relayed connection may stay open */
  durationMs: 30 * 60_000
}

/** How a connected peer is reached: straight, through a relay, or straight after a hole punch (DCUtR) replaced a relayed connection. */
export type Reach = 'direct' | 'relayed' | 'hole-punched'

export interface RelayState {
  /** this peer relays for members (--relay) */
  serving: boolean
  /** members holding a reservation on this peer's relay */
  reservations: number
  /** the relays this peer holds a reservation on: others reach it through them */
  via: string[]
  /** the public addresses peers confirmed they reach this peer at when they dialed back (AutoNAT; it does not check private ones) */
  confirmed: string[]
}

export interface BootstrapState {
  addr: string
  connected: boolean
  /** why the last dial failed, if it did */
  error?: string
}

export interface DmlHost extends Network {
  libp2p: Libp2p<{ pubsub: GossipSub }>
  /** each --bootstrap address: connected now, or why the last dial failed */
  bootstrapState: () => BootstrapState[]
  /** what the host's limits refused, by reason: dials of gossiped addresses, identities per IP, transfers, relaying */
  refused: () => Record<string, number>
  /** how each connected peer is reached */
  reach: () => Record<string, Reach>
  relayState: () => RelayState
  /** `listener` hears of each reservation a member asks this peer's relay for and may take (with --relay) */
  onRelayReservation: (listener: (peer: string) => void) => void
  stop: () => Promise<void>
}

/**
 * gossipsub scoring of the control topic: every invalid message costs its sender, and so do the
 * offences the engine counts (handlers.score). A peer below the graylist threshold is ignored.
 */
function scoring (handlers: MessageHandlers): { scoreParams: Partial<PeerScoreParams>, scoreThresholds: Partial<PeerScoreThresholds> } {
  return {
    scoreParams: {
      topics: { [CONTROL_TOPIC]: createTopicScoreParams({ topicWeight: 1, invalidMessageDeliveriesWeight: -10, invalidMessageDeliveriesDecay: 0.9 }) },
      appSpecificScore: (peer) => handlers.score?.(peer) ?? 0,
      appSpecificWeight: 1,
      // peers on one machine are normal here (tests, a lab): no penalty for sharing an address
      IPColocationFactorWeight: 0
    },
    scoreThresholds: { gossipThreshold: -100, publishThreshold: -200, graylistThreshold: -400 }
  }
}

/**
 * What to do about connections that gossip has not reached, `graceMs` after they opened.
 * gossipsub takes a peer on once identify says it speaks gossipsub, then opens its own stream to
 * it once, and gives up without a word when that fails (as it does under load: of 32 peers on two
 * cores, one stayed connected and deaf for 10 minutes). A peer gossipsub never took on is hung up
 * on, so that a fresh connection (the Dialer redials) is identified again; a peer without our
 * stream gets it opened again. `known`: the peers gossipsub took on; `outbound`: those it has a
 * stream to. `connections`: each open connection's peer and when it opened.
 */
export function gossipRepairs (connections: Array<{ peer: string, openedAt: number }>, gossip: { known: ReadonlySet<string>, outbound: ReadonlySet<string> }, now: number, graceMs = GOSSIP_GRACE_MS): { hangUp: string[], reopen: string[] } {
  const since = new Map<string, number>()
  for (const c of connections) since.set(c.peer, Math.min(c.openedAt, since.get(c.peer) ?? Infinity))
  const due = [...since].filter(([, openedAt]) => now - openedAt >= graceMs).map(([peer]) => peer)
  return {
    hangUp: due.filter(p => !gossip.known.has(p)),
    reopen: due.filter(p => gossip.known.has(p) && !gossip.outbound.has(p))
  }
}

/**
 * The dialable addresses of `peer` among those its signed heartbeat names, without their /p2p/
 * part (the dialer adds it back): a direct address may name only `peer`; a relayed one names its
 * relay before /p2p-circuit and may name only `peer` after it. Anything else is not its own.
 */
export function announcedAddrs (peer: string, addrs: string[]): string[] {
  return addrs.flatMap(a => {
    try {
      const components = multiaddr(a).getComponents()
      if (components.length === 0) return []
      const circuit = components.findIndex(c => c.name === 'p2p-circuit')
      if (circuit < 0) {
        if (components.some(c => c.name === 'p2p' && c.value !== peer)) return []
        return [multiaddr(components.filter(c => c.name !== 'p2p')).toString()]
      }
      const relay = components.slice(0, circuit)
      // a tab's WebRTC address: the relay carries its handshake
      const webrtc = components[circuit + 1]?.name === 'webrtc' ? [components[circuit + 1]] : []
      const after = components.slice(circuit + 1 + webrtc.length)
      if (relay.filter(c => c.name === 'p2p').length !== 1 || after.some(c => c.name !== 'p2p' || c.value !== peer)) return []
      return [multiaddr([...relay, components[circuit], ...webrtc]).toString()]
    } catch {
      return []
    }
  })
}

/** A WebSockets address's part: /ws, /wss, or /tls/ws. */
const WEBSOCKETS = /\/wss?(\/|$)/

/** Whether a browser tab has a transport for `addr`: WebSockets, or a relay's circuit (over a connection to the relay it has), or WebRTC set up through one. */
export function canDialFromBrowser (addr: string): boolean {
  return WEBSOCKETS.test(addr) || addr.includes('/p2p-circuit')
}

/** Whether `addr` is a tab's WebRTC address (its handshake goes through the relay the address names; the connection does not). */
export function isWebRTC (addr: string): boolean {
  return /\/p2p-circuit\/webrtc(\/|$)/.test(addr)
}

/** Whether `addr` is a WebSockets address, or a relay's circuit reached over WebSockets: what one tab can dial to reach another. */
function overWebSockets (addr: string): boolean {
  return WEBSOCKETS.test(addr.split('/p2p-circuit')[0])
}

/** A tab's own addresses in the order another tab is best served by them (it dials the first few): WebRTC through a relay it reaches over WebSockets, then that relay's circuit, then the rest. */
export function tabAddrOrder (addrs: string[]): string[] {
  const rank = (a: string): number => (overWebSockets(a) ? 0 : 2) + (isWebRTC(a) ? 0 : 1)
  return [...addrs].sort((a, b) => rank(a) - rank(b))
}

/** A node's WebSockets addresses as a browser tab dials them: at the host name its page came from (the node may listen on 0.0.0.0, or be behind a name). */
export function dialableFrom (wsAddrs: string[], hostname: string): string[] {
  const at = /^\d+\.\d+\.\d+\.\d+$/.test(hostname) ? `/ip4/${hostname}` : hostname.startsWith('[') ? `/ip6/${hostname.slice(1, -1)}` : `/dns4/${hostname}`
  return [...new Set(wsAddrs.map(a => a.replace(/^\/(ip4|ip6|dns4|dns6|dns)\/[^/]+/, at)))]
}

/**
 * The IP address a connection comes from, as far as it tells: a relayed connection's address is
 * its relay's, which many peers share (the relay bounds them), so it has none here.
 */
export function ipOf (addr: Multiaddr): string | undefined {
  if (isRelayed(addr.toString())) return undefined
  return addr.getComponents().find(c => c.name === 'ip4' || c.name === 'ip6')?.value
}

export async function startHost (options: HostOptions, handlers: MessageHandlers): Promise<DmlHost> {
  const refused: Record<string, number> = {}
  const refuse = (reason: string, peer: string, detail: string): void => {
    refused[reason] = (refused[reason] ?? 0) + 1
    handlers.limited?.(reason, peer, detail)
  }
  // set once libp2p exists: the gater runs only on connections, after that
  let node: Libp2p | undefined
  const tooManyFrom = (peer: string, remote: Multiaddr): boolean => {
    const max = options.maxPeersPerIp ?? 0
    const ip = ipOf(remote)
    if (max <= 0 || node === undefined || ip === undefined) return false
    const others = new Set(node.getConnections().filter(c => ipOf(c.remoteAddr) === ip).map(c => c.remotePeer.toString()))
    if (others.has(peer) || others.size < max) return false
    refuse('peers-per-ip', peer, `${others.size} peers already connect from ${ip} (--max-peers-per-ip ${max})`)
    return true
  }
  const reservationListeners: Array<(peer: string) => void> = []
  // with WebSockets, a node relays for the peers connected to it over them (tabs); with --relay, for every member
  const relaysTabs = options.wsPort !== undefined
  const tabLike = (peer: PeerId): boolean => node?.getConnections(peer).some(c => overWebSockets(c.remoteAddr.toString())) ?? false
  const notRelayed = (peer: string, what: string): boolean => {
    const banned = handlers.banned?.(peer) ?? false
    const outside = options.allowed !== undefined && !options.allowed.has(peer)
    if (banned || outside) refuse('relay-refused', peer, `${banned ? 'a banned peer' : 'a peer off --allow-peers'} ${what}`)
    return banned || outside
  }
  const peerDiscovery = []
  if (options.mdns) peerDiscovery.push(...platform.mdns(2000))
  if (options.bootstrap.length > 0) peerDiscovery.push(bootstrap({ list: options.bootstrap, timeout: 0 }))
  const libp2p = await createLibp2p({
    privateKey: options.privateKey,
    addresses: {
      // a relay's own peers reach it straight; every other peer also listens through a relay, once
      // it is connected to a member that relays (its reservation's address is then announced); a
      // tab listens only there, and for WebRTC handshakes the relay carries
      listen: options.port === undefined ? ['/p2p-circuit', ...(platform.webrtc().length > 0 ? ['/webrtc'] : [])] : [`/ip4/${options.host}/tcp/${options.port}`, ...(options.wsPort !== undefined ? [`/ip4/${options.host}/tcp/${options.wsPort}/${options.tls !== undefined ? 'tls/ws' : 'ws'}`] : []), ...(options.relay === true ? [] : ['/p2p-circuit'])],
      ...(options.announce !== undefined && options.announce.length > 0 ? { announce: options.announce } : {})
    },
    transports: [...(options.port === undefined ? [] : platform.tcp()), webSockets(options.tls !== undefined ? { https: options.tls } : {}), circuitRelayTransport({ reservationCompletionTimeout: 10_000 }), ...platform.webrtc()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...(options.swarmKey !== undefined ? { connectionProtector: privateNetwork(options.swarmKey) } : {}),
    // a banned offender can neither connect nor be dialled until its ban runs out; one address
    // brings at most maxPeersPerIp identities (keys are free, addresses are not)
    connectionGater: {
      denyDialPeer: (peer) => handlers.banned?.(peer.toString()) ?? false,
      // libp2p in a browser refuses to dial private addresses by default: a tab's node is on the LAN
      denyDialMultiaddr: () => false,
      denyInboundEncryptedConnection: (peer, conn) => (handlers.banned?.(peer.toString()) ?? false) || tooManyFrom(peer.toString(), conn.remoteAddr),
      denyOutboundEncryptedConnection: (peer, conn) => (handlers.banned?.(peer.toString()) ?? false) || tooManyFrom(peer.toString(), conn.remoteAddr),
      // a relay serves members only: not a banned peer, nor one off the allow-list (the swarm key
      // already keeps out whoever does not hold it: no connection, so no reservation)
      denyInboundRelayReservation: (peer) => {
        // a member's reservation is --relay's to grant (a node that does not relay tries every peer that does)
        if (options.relay !== true && !tabLike(peer)) return true
        if (notRelayed(peer.toString(), 'takes a reservation')) return true
        for (const listener of reservationListeners) listener(peer.toString())
        return false
      },
      denyOutboundRelayedConnection: (source, destination) => notRelayed(source.toString(), `is relayed to ${destination.toString().slice(-6)}`) || notRelayed(destination.toString(), `is relayed to from ${source.toString().slice(-6)}`)
    },
    peerDiscovery,
    ...(options.metrics !== undefined ? { metrics: options.metrics } : {}),
    services: {
      identify: identify(),
      ...(options.port === undefined ? {} : { dcutr: dcutr(), autoNAT: autoNAT() }),
      ...(options.relay === true || relaysTabs ? { relay: circuitRelayServer({ reservations: { maxReservations: RELAY_LIMITS.reservations, defaultDataLimit: BigInt(RELAY_LIMITS.dataBytes), defaultDurationLimit: RELAY_LIMITS.durationMs } }) } : {}),
      pubsub: gossipsub({
        globalSignaturePolicy: StrictSign,
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        maxInboundDataLength: MAX_CONTROL_BYTES * 2,
        // a message comes from up to every mesh peer; without a fast id each copy's signature is
        // checked before it is known as a duplicate (most of an idle peer's CPU at 16 peers). An
        // ed25519 signature names its message: no other message verifies under it, and a copy that
        // does not verify is not remembered
        fastMsgIdFn: (msg) => msg.signature === undefined ? '' : String.fromCharCode(...msg.signature),
        // a peer behind NAT may be reached through a relay alone
        runOnLimitedConnection: true,
        ...scoring(handlers)
      })
    }
  })
  const self = libp2p.peerId.toString()
  const blobs = new BlobStore()
  const reject = (reason: string, from: string): TopicValidatorResult => {
    handlers.rejected(reason, from)
    return TopicValidatorResult.Reject
  }

  node = libp2p
  // how each peer is reached: a connection over a relay carries its limits; a direct one that
  // opens while a relayed one is up is DCUtR's hole punch, or two tabs' WebRTC (its address names
  // the relay that carried the handshake)
  const relayed = (c: Connection): boolean => c.limits !== undefined || (isRelayed(c.remoteAddr.toString()) && !isWebRTC(c.remoteAddr.toString()))
  const punched = new Set<string>()
  /**
   * A stream to `peer` on a connection already open, a direct one first; dialled only without one.
   * libp2p's own dial counts a relayed connection (it carries the relay's limits) as none and dials
   * again: behind a NAT that waited out a dial timeout, about 6 s, for every blob.
   */
  const openStream = async (peer: PeerId, protocol: string, signal: AbortSignal): Promise<Stream> => {
    const open = libp2p.getConnections(peer).filter(c => c.status === 'open')
    const connection = open.find(c => !relayed(c)) ?? open[0]
    if (connection === undefined) return await libp2p.dialProtocol(peer, protocol, { signal, runOnLimitedConnection: true })
    return await connection.newStream(protocol, { signal, runOnLimitedConnection: true })
  }
  libp2p.addEventListener('connection:open', (event) => {
    const c = event.detail
    if (!relayed(c) && libp2p.getConnections(c.remotePeer).some(relayed)) punched.add(c.remotePeer.toString())
    // two tabs that reached each other over WebRTC no longer need the relay between them (as DCUtR
    // does after a hole punch): its node carried every byte of that connection
    if (isWebRTC(c.remoteAddr.toString())) {
      for (const other of libp2p.getConnections(c.remotePeer).filter(relayed)) other.close().catch(() => {}) // it may be gone already
    }
  })
  libp2p.addEventListener('peer:disconnect', (event) => { punched.delete(event.detail.toString()) })
  // libp2p 3 does not dial the peers it discovers, and says 'peer:discovery' only the first time a
  // peer is seen. The Dialer keeps them (and the addresses peers announce, within its budgets) and
  // redials whatever is not connected: after a restart or a partition, connections come back.
  const dialer = new Dialer({
    clock: systemClock,
    connected: (peer) => libp2p.getConnections(peerIdFromString(peer)).length > 0,
    dial: async (peer, addr) => {
      await libp2p.dial(addr === undefined ? peerIdFromString(peer) : multiaddr(`${addr}/p2p/${peer}`))
    },
    refused: (reason, peer, detail) => { refuse(`dial-${reason}`, peer, detail) }
  }, { ...DEFAULT_DIALER, attemptsPerAddr: options.hintDials ?? DEFAULT_DIALER.attemptsPerAddr })
  // the bootstrap peers are known from the start: their dial errors are what a lonely node reports
  const bootstrapPeers = options.bootstrap.map(addr => ({ addr, id: peerIdFromString(multiaddr(addr).getComponents().find(c => c.name === 'p2p')!.value!) }))
  for (const { id } of bootstrapPeers) dialer.trust(id.toString())
  libp2p.addEventListener('peer:discovery', (event) => {
    const peer = event.detail.id.toString()
    if (peer !== self) dialer.trust(peer)
    dialer.tick()
  })
  const redial = setInterval(() => { dialer.tick() }, TICK_MS)

  const pubsub = libp2p.services.pubsub
  pubsub.topicValidators.set(CONTROL_TOPIC, (peer, msg) => {
    if (msg.type !== 'signed') return reject('unsigned', peer.toString())
    const admitted = admitMessage(msg.data, msg.from.toString(), peer.toString(), handlers)
    if (admitted === 'ignore') return TopicValidatorResult.Ignore
    if ('reject' in admitted) return reject(admitted.reject, admitted.culprit)
    return TopicValidatorResult.Accept
  })
  pubsub.addEventListener('message', (event) => {
    if (event.detail.topic !== CONTROL_TOPIC) return
    // validated already; decoding again is cheap and keeps validator and handler independent
    handlers.deliver(decodeMessage(event.detail.data))
  })
  pubsub.addEventListener('subscription-change', (event) => {
    if (event.detail.subscriptions.some(s => s.topic === CONTROL_TOPIC && s.subscribe)) handlers.subscribed(event.detail.peerId.toString())
  })
  pubsub.subscribe(CONTROL_TOPIC)
  // gossipsub's peers, its streams to them, and its own stream opener, which it calls once per
  // connection (see gossipRepairs): not in its interface, so read from the implementation
  const gossip = pubsub as unknown as { peers: Map<string, PeerId>, streamsOutbound: Map<string, unknown>, createOutboundStream: (peer: PeerId, connection: Connection) => Promise<void> }
  const hangUp = (peer: string): void => {
    let id: PeerId
    try { id = peerIdFromString(peer) } catch { return }
    libp2p.hangUp(id).catch(() => {}) // the connection may already be gone: nothing left to close
  }
  const gossipWatch = setInterval(() => {
    const open = libp2p.getConnections().filter(c => c.status === 'open')
    const repairs = gossipRepairs(open.map(c => ({ peer: c.remotePeer.toString(), openedAt: c.timeline.open })), { known: new Set(gossip.peers.keys()), outbound: new Set(gossip.streamsOutbound.keys()) }, Date.now())
    for (const peer of repairs.hangUp) {
      refuse('gossip-silent', peer, `connected for ${GOSSIP_GRACE_MS / 1000} s and never taken on by gossip: connecting again`)
      hangUp(peer)
    }
    for (const peer of repairs.reopen) {
      if (typeof gossip.createOutboundStream !== 'function') { // another gossipsub: connect again instead
        refuse('gossip-silent', peer, `connected for ${GOSSIP_GRACE_MS / 1000} s without a gossip stream to it: connecting again`)
        hangUp(peer)
        continue
      }
      const connection = open.find(c => c.remotePeer.toString() === peer)!
      refuse('gossip-silent', peer, `connected for ${GOSSIP_GRACE_MS / 1000} s without a gossip stream to it: opening one again`)
      gossip.createOutboundStream(connection.remotePeer, connection).catch(() => {}) // it logs its own failure; tried again next time
    }
  }, GOSSIP_GRACE_MS / 3)
  const serving = { requestTimeoutMs: 10_000, sendTimeoutMs: options.transferTimeoutMs ?? 60_000 }
  // transfers served at once, per connection: counted here (libp2p's own bound, set above ours,
  // is only a backstop and refuses without a word)
  const maxStreams = options.maxBlobStreams ?? 16
  const serves = new Map<string, number>()
  await libp2p.handle(BLOB_PROTOCOL, async (stream, connection) => {
    const peer = connection.remotePeer.toString()
    const open = serves.get(connection.id) ?? 0
    if (open >= maxStreams) {
      refuse('blob-streams', peer, `${open} transfers open already (--max-blob-streams ${maxStreams})`)
      stream.abort(new BlobError('too many transfers at once', 'blob-streams'))
      return
    }
    serves.set(connection.id, open + 1)
    try {
      await serveBlob(stream, blobs, serving, (limit, detail) => { refuse(limit, peer, detail) })
    } finally {
      const left = (serves.get(connection.id) ?? 1) - 1
      if (left > 0) serves.set(connection.id, left)
      else serves.delete(connection.id)
    }
  }, { maxInboundStreams: 2 * maxStreams, runOnLimitedConnection: true })

  const clock = new MessageClock(() => Date.now())
  const host: DmlHost = {
    libp2p,
    blobs,
    peerId: self,
    async publish (message) {
      await pubsub.publish(CONTROL_TOPIC, encodeMessage(clock.stamp(message)))
    },
    async fetchBlob (hash, from, fetchOptions) {
      return await fetchFromAny(hash, from, self, blobs, fetchOptions, systemClock, async (peer, signal) => {
        const stream = await openStream(peerIdFromString(peer), BLOB_PROTOCOL, signal)
        return await requestBlob(stream, hash, signal, options.minTransferRate ?? 0, fetchOptions.maxBytes)
      }, (peer, err, attempt) => {
        if (err instanceof BlobError && err.limit !== undefined) refuse(err.limit, peer, err.message)
        else if (attempt.aborted) refuse('transfer-timeout', peer, abortReason(attempt).message)
      })
    },
    dialAddrs (peer, addrs) {
      if (peer === self) return
      let id: PeerId
      try { id = peerIdFromString(peer) } catch { return }
      if (libp2p.getConnections(id).length > 0) return
      // addresses of this peer only (the heartbeat naming them is signed by it): a /p2p/ part must
      // name it, and is taken off (the dialer adds it back); one naming another peer is not its own
      const own = announcedAddrs(peer, addrs).filter(a => options.port !== undefined ? !isWebRTC(a) : canDialFromBrowser(a))
      dialer.hint(peer, own)
    },
    listenAddrs: () => {
      const addrs = libp2p.getMultiaddrs().map(a => a.toString())
      return options.port === undefined ? tabAddrOrder(addrs) : addrs
    },
    connectedPeers: () => libp2p.getPeers().map(p => p.toString()),
    peersOnThisHost: () => {
      // the address a connection comes from, which a peer cannot choose as it can what it announces
      const own = platform.ownIps()
      return [...new Set(libp2p.getConnections().filter(c => own.has(ipOf(c.remoteAddr) ?? '')).map(c => c.remotePeer.toString()))]
    },
    hangUp,
    bootstrapState: () => bootstrapPeers.map(({ addr, id }) => {
      const connected = libp2p.getConnections(id).length > 0
      const error = dialer.lastError(id.toString())
      return connected || error === undefined ? { addr, connected } : { addr, connected, error }
    }),
    refused: () => ({ ...refused }),
    reach: () => {
      const reach: Record<string, Reach> = {}
      for (const c of libp2p.getConnections()) {
        const peer = c.remotePeer.toString()
        if (!relayed(c)) reach[peer] = punched.has(peer) ? 'hole-punched' : 'direct'
        else reach[peer] ??= 'relayed'
      }
      return reach
    },
    relayState: () => ({
      serving: options.relay === true,
      reservations: (libp2p.services as { relay?: CircuitRelayService }).relay?.reservations.size ?? 0,
      confirmed: (libp2p as unknown as { components: { addressManager: { getAddressesWithMetadata: () => Array<{ multiaddr: Multiaddr, verified: boolean, type: string }> } } }).components.addressManager
        .getAddressesWithMetadata().filter(a => a.verified && a.type === 'observed').map(a => a.multiaddr.toString()),
      via: [...new Set(libp2p.getMultiaddrs().map(a => a.toString()).filter(isRelayed).map(a => /\/p2p\/([^/]+)\/p2p-circuit/.exec(a)?.[1] ?? '').filter(id => id !== ''))]
    }),
    onRelayReservation (listener) { reservationListeners.push(listener) },
    async stop () {
      clearInterval(redial)
      clearInterval(gossipWatch)
      await libp2p.stop()
    }
  }
  return host
}
