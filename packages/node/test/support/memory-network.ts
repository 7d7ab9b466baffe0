// An in-memory network for unit tests of the engine: every message is encoded, then admitted by
// the host's own pipeline (admitMessage: decoded, its sender checked, judged) on a later tick, and
// blobs are fetched by the host's own loop over sources (fetchFromAny).
// Blob transfers honour deadlines on the fake clock, and each peer can be told to stall or fail
// when asked for a blob.
import { contentHash, encodeMessage, MessageClock, type ControlMessage, type Outgoing } from '@dml/protocol'
import { abortReason, admitMessage, BlobError, BlobStore, fetchFromAny, type FetchOptions, type MessageHandlers, type Network } from '@dml/node'
import type { FakeClock } from './fake-clock.ts'

/** How a peer answers a blob request: at once, never (until the requester's deadline), or with an error. */
export type Serving = 'serve' | 'stall' | 'fail'

export class MemoryNetwork {
  readonly clock: FakeClock
  private readonly endpoints = new Map<string, MemoryEndpoint>()

  constructor (clock: FakeClock) { this.clock = clock }

  join (peerId: string): MemoryEndpoint {
    const endpoint = new MemoryEndpoint(this, peerId)
    this.endpoints.set(peerId, endpoint)
    return endpoint
  }

  get (peerId: string): MemoryEndpoint | undefined {
    return this.endpoints.get(peerId)
  }

  connected (): MemoryEndpoint[] {
    return [...this.endpoints.values()].filter(e => e.connected)
  }
}

export class MemoryEndpoint implements Network {
  readonly peerId: string
  readonly blobs = new BlobStore()
  /** what every peer published, in order, as it went out */
  readonly published: ControlMessage[] = []
  /** how this peer answers blob requests, to everyone or per requester */
  serving: Serving | ((requester: string) => Serving) = 'serve'
  connected = true
  handlers: MessageHandlers | undefined
  /** what every peer published, as it went out: the bytes, as gossip would carry them (a liar may record and replay them) */
  readonly sent: Uint8Array[] = []
  private readonly hub: MemoryNetwork
  private readonly clock: MessageClock

  constructor (hub: MemoryNetwork, peerId: string) {
    this.hub = hub
    this.peerId = peerId
    this.clock = new MessageClock(() => hub.clock.now())
  }

  bind (handlers: MessageHandlers): void { this.handlers = handlers }

  /** Cuts this peer off, as a crash would: it neither sends nor receives nor serves. */
  disconnect (): void { this.connected = false }

  /** `message` with this peer's next seq, as it would send it: for a test that hands a peer's message over by hand. */
  stamp (message: Outgoing): ControlMessage {
    return this.clock.stamp(message)
  }

  async publish (message: Outgoing): Promise<void> {
    const stamped = this.clock.stamp(message)
    const bytes = encodeMessage(stamped) // throws on an invalid or oversized message, as the host does
    if (!this.connected) return
    this.published.push(stamped)
    this.sent.push(bytes)
    for (const other of this.hub.connected()) {
      if (other !== this && other.handlers !== undefined) setImmediate(() => { other.receive(bytes, this.peerId) })
    }
  }

  /** A raw message signed by `from`, as gossip would hand it to the validator; `relay`: the peer it came through (a replayer, say). */
  receive (bytes: Uint8Array, from: string, relay = from): void {
    const handlers = this.handlers
    if (!this.connected || handlers === undefined) return
    const admitted = admitMessage(bytes, from, relay, handlers)
    if (admitted === 'ignore') return
    if ('reject' in admitted) handlers.rejected(admitted.reject, admitted.culprit)
    else handlers.deliver(admitted.accept)
  }

  async fetchBlob (hash: string, from: string[], options: FetchOptions): Promise<Uint8Array> {
    return await fetchFromAny(hash, from, this.peerId, this.blobs, options, this.hub.clock, async (peer, signal) => {
      const source = this.hub.get(peer)
      if (source === undefined || !source.connected || !this.connected) throw new BlobError('cannot connect')
      const bytes = await source.serve(hash, this.peerId, signal)
      if (bytes.byteLength > options.maxBytes) throw new BlobError(`the peer announces ${bytes.byteLength} bytes, more than the ${options.maxBytes} expected`)
      if (contentHash(bytes) !== hash) throw new BlobError('bytes do not match their hash')
      return bytes
    })
  }

  private async serve (hash: string, requester: string, signal: AbortSignal): Promise<Uint8Array> {
    const serving = typeof this.serving === 'function' ? this.serving(requester) : this.serving
    if (serving === 'fail') throw new BlobError('connection reset')
    if (serving === 'stall') {
      await new Promise<never>((_resolve, reject) => {
        if (signal.aborted) reject(abortReason(signal))
        signal.addEventListener('abort', () => { reject(abortReason(signal)) }, { once: true })
      })
    }
    const bytes = this.blobs.get(hash)
    if (bytes === undefined) throw new BlobError('peer answered: not found')
    return bytes.slice()
  }

  /** peers this one hung up on (banned) */
  readonly hungUp: string[] = []
  hangUp (peer: string): void { this.hungUp.push(peer) }

  dialAddrs (): void {}
  listenAddrs (): string[] { return [`/memory/${this.peerId.slice(-4)}`] }
  /** peers this one has no connection to, though gossip still brings their messages (a view smaller than others') */
  readonly unconnected = new Set<string>()
  peersOnThisHost (): string[] { return [] }
  connectedPeers (): string[] { return this.hub.connected().filter(e => e !== this && !this.unconnected.has(e.peerId)).map(e => e.peerId) }
}
