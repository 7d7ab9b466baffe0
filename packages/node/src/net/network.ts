// What the round engine needs of the network: publish a control message, fetch a blob by hash
// from peers that hold it, serve its own blobs. The libp2p host implements it (host.ts); unit
// tests use an in-memory one. The engine never touches libp2p directly.
import { decodeMessage, messageSender, MessageError, type ControlMessage, type Outgoing } from '@dml/protocol'

/**
 * What a validator decides about a well-formed message in the light of the current state. A
 * rejection is held against its author, or against `culprit` (the peer that relayed a replay).
 */
export type Verdict = 'accept' | 'ignore' | { reject: string, culprit?: string }

/**
 * What becomes of the bytes of a control message that `from` signed and `relay` handed over:
 * decoded, its sender checked, judged by the engine. The libp2p host's gossip validator and the
 * in-memory network of the engine's tests both take every message through this, so the tests see
 * what a real peer sees. A rejection names whom it is held against.
 */
export function admitMessage (bytes: Uint8Array, from: string, relay: string, handlers: MessageHandlers): { accept: ControlMessage } | 'ignore' | { reject: string, culprit: string } {
  let message: ControlMessage
  try {
    message = decodeMessage(bytes)
  } catch (err) {
    if (err instanceof MessageError) return { reject: 'malformed', culprit: from }
    throw err
  }
  if (messageSender(message) !== from) return { reject: 'spoofed', culprit: from }
  const verdict = handlers.judge(message, from, relay)
  if (verdict === 'accept') return { accept: message }
  if (verdict === 'ignore') return 'ignore'
  return { reject: verdict.reject, culprit: verdict.culprit ?? from }
}

/** Where the network hands what arrives: a peer's engine implements it. */
export interface MessageHandlers {
  /**
   * decides, inside the gossip validator, whether a well-formed message of `from` (its signed
   * author), handed over by `relay` (the peer it came from: the author itself, or a peer gossip
   * forwarded it through), is new and current
   */
  judge: (message: ControlMessage, from: string, relay: string) => Verdict
  /** an accepted message */
  deliver: (message: ControlMessage) => void
  /** a message rejected as malformed, spoofed or by judge */
  rejected: (reason: string, from: string) => void
  /** a peer subscribed to the control topic */
  subscribed: (peer: string) => void
  /** gossipsub's application-specific score of a peer (its offences lower it) */
  score?: (peer: string) => number
  /** a peer banned for repeated offences: its connections are refused */
  banned?: (peer: string) => boolean
  /** a limit refused something of a peer (too many identities from its address, say) */
  limited?: (reason: string, peer: string, detail: string) => void
}

/** The blobs a peer holds and serves, by content hash (blob-transfer.ts's BlobStore is one). */
export interface Blobs {
  /** keeps `bytes` (pinned: until unpinned, else among the most recent) and returns its hash */
  put: (bytes: Uint8Array, pin?: boolean) => string
  get: (hash: string) => Uint8Array | undefined
  unpin: (hash: string) => void
  /** calls `arrived` when blob `hash` is put, until the returned function is called */
  whenPut: (hash: string, arrived: () => void) => () => void
}

export interface FetchOptions {
  /** ends the whole fetch (the round it belongs to is over) */
  signal?: AbortSignal
  /** deadline for one source, covering the dial, the header and every byte; then the next source is asked */
  timeoutMs: number
  /** the most bytes the blob may have (what is expected of it); a source announcing more is left at once */
  maxBytes: number
}

export interface Network {
  readonly peerId: string
  /** blobs this peer holds and serves */
  readonly blobs: Blobs
  /** publishes on the control topic, stamped with this peer's message clock (Envelope.seq) */
  publish: (message: Outgoing) => Promise<void>
  /** the blob `hash`: local if held, else from the first of `from` that delivers it whole and verified */
  fetchBlob: (hash: string, from: string[], options: FetchOptions) => Promise<Uint8Array>
  /** the addresses a member announces (every heartbeat of it): dialed while it is not connected, within the dialer's budgets */
  dialAddrs: (peer: string, addrs: string[]) => void
  listenAddrs: () => string[]
  connectedPeers: () => string[]
  /** connected peers whose connection comes from an address of this machine (they share its cores) */
  peersOnThisHost: () => string[]
  /** closes every connection to `peer` (a banned offender) */
  hangUp: (peer: string) => void
}

/**
 * Handlers for a network that starts before the engine that will handle its messages: until
 * bind(), messages are ignored (heartbeats repeat, so nothing is lost).
 */
export function lateHandlers (): { handlers: MessageHandlers, bind: (target: MessageHandlers) => void } {
  let target: MessageHandlers | undefined
  return {
    handlers: {
      judge: (message, from, relay) => target?.judge(message, from, relay) ?? 'ignore',
      deliver: (message) => { target?.deliver(message) },
      rejected: (reason, from) => { target?.rejected(reason, from) },
      subscribed: (peer) => { target?.subscribed(peer) },
      score: (peer) => target?.score?.(peer) ?? 0,
      banned: (peer) => target?.banned?.(peer) ?? false,
      limited: (reason, peer, detail) => { target?.limited?.(reason, peer, detail) }
    },
    bind: (t) => { target = t }
  }
}
