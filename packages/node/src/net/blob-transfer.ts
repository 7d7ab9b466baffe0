// Blobs (models and weight updates) are content-addressed CBOR pulled over a libp2p stream
// protocol, in chunks, from a peer that holds them; gossip only ever carries their hash.
// Wire format: request = frame(CBOR {hash}); response = frame(CBOR {size} | {error}) then
// `size` raw bytes sent in CHUNK_BYTES pieces. frame = 4-byte big-endian length + bytes.
import { Uint8ArrayList } from 'uint8arraylist'
import type { Stream } from '@libp2p/interface'
import { CHUNK_BYTES, MAX_BLOB_BYTES, contentHash, decodeCbor, encodeCbor, isContentHash, splitChunks } from '@dml/protocol'
import { AbortError, abortReason, deadlineSignal, type Clock } from '../clock.ts'
import type { Blobs, FetchOptions } from './network.ts'

export class BlobError extends Error {
  override name = 'BlobError'
  /** the limit that refused the transfer, if one did (counted under /api/status `limits`) */
  readonly limit?: string
  constructor (message: string, limit?: string) {
    super(message)
    this.limit = limit
  }
}

/** Holds blobs by hash; keeps `pinned` ones and the most recent `capacity` others. */
export class BlobStore {
  private readonly blobs = new Map<string, Uint8Array>()
  private readonly pinned = new Set<string>()
  private readonly capacity: number
  /** hash → what to call when it is put (see whenPut) */
  private readonly awaited = new Map<string, Set<() => void>>()

  constructor (capacity = 32) { this.capacity = capacity }

  put (bytes: Uint8Array, pin = false): string {
    const hash = contentHash(bytes)
    this.blobs.delete(hash)
    this.blobs.set(hash, bytes)
    if (pin) this.pinned.add(hash)
    for (const key of this.blobs.keys()) {
      if (this.blobs.size - this.pinned.size <= this.capacity) break
      if (!this.pinned.has(key)) this.blobs.delete(key)
    }
    for (const arrived of this.awaited.get(hash) ?? []) arrived()
    return hash
  }

  /** Calls `arrived` when blob `hash` is put, until the returned function is called. */
  whenPut (hash: string, arrived: () => void): () => void {
    const waiting = this.awaited.get(hash) ?? new Set()
    waiting.add(arrived)
    this.awaited.set(hash, waiting)
    return () => {
      waiting.delete(arrived)
      if (waiting.size === 0) this.awaited.delete(hash)
    }
  }

  get (hash: string): Uint8Array | undefined { return this.blobs.get(hash) }
  has (hash: string): boolean { return this.blobs.has(hash) }
  unpin (hash: string): void { this.pinned.delete(hash) }
}

const MAX_HEADER = 4096

function frame (bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + bytes.byteLength)
  new DataView(out.buffer).setUint32(0, bytes.byteLength)
  out.set(bytes, 4)
  return out
}

/** Reads one length-prefixed frame from `buffer`, pulling from `source` as needed. */
async function readFrame (source: AsyncIterator<Uint8Array | Uint8ArrayList>, buffer: Uint8ArrayList, max: number): Promise<Uint8Array> {
  while (buffer.byteLength < 4) await pull(source, buffer)
  const length = buffer.getUint32(0)
  if (length > max) throw new BlobError(`frame of ${length} bytes is over the limit of ${max}`)
  while (buffer.byteLength < 4 + length) await pull(source, buffer)
  const body = buffer.subarray(4, 4 + length)
  buffer.consume(4 + length)
  return body
}

async function pull (source: AsyncIterator<Uint8Array | Uint8ArrayList>, buffer: Uint8ArrayList): Promise<void> {
  const next = await source.next()
  if (next.done === true) throw new BlobError('stream ended early')
  buffer.append(next.value)
}

async function send (stream: Stream, bytes: Uint8Array): Promise<void> {
  if (!stream.send(bytes)) await stream.onDrain()
}

export interface ServeLimits {
  /** an inbound stream that has not sent its request by then is closed (an idle stream holds a slot) */
  requestTimeoutMs: number
  /** the whole answer must be sent by then: a requester that stops reading does not hold the stream */
  sendTimeoutMs: number
}

/** Serves blobs from `store` on an inbound stream, within `limits`. */
export async function serveBlob (stream: Stream, store: Pick<BlobStore, 'get'>, limits: ServeLimits = { requestTimeoutMs: 10_000, sendTimeoutMs: 120_000 }, refused: (limit: string, detail: string) => void = () => {}): Promise<void> {
  const source = stream[Symbol.asyncIterator]()
  const giveUp = (limit: string, detail: string): void => {
    refused(limit, detail)
    stream.abort(new BlobError(detail, limit))
  }
  let timer = setTimeout(() => { giveUp('blob-idle', `no request within ${limits.requestTimeoutMs} ms`) }, limits.requestTimeoutMs)
  try {
    const request = decodeCbor(await readFrame(source, new Uint8ArrayList(), MAX_HEADER), MAX_HEADER) as { hash?: unknown }
    clearTimeout(timer)
    timer = setTimeout(() => { giveUp('blob-not-taken', `the answer was not taken within ${limits.sendTimeoutMs} ms`) }, limits.sendTimeoutMs)
    const hash = request?.hash
    const blob = isContentHash(hash) ? store.get(hash) : undefined
    if (blob === undefined) {
      await send(stream, frame(encodeCbor({ error: isContentHash(hash) ? 'not found' : 'bad request' })))
    } else {
      await send(stream, frame(encodeCbor({ size: blob.byteLength })))
      for (const chunk of splitChunks(blob, CHUNK_BYTES)) await send(stream, chunk)
    }
    await stream.close()
  } catch (err) {
    stream.abort(err as Error)
  } finally {
    clearTimeout(timer)
  }
}

/** How long a transfer may take to get going before its minimum rate applies. */
const RATE_GRACE_MS = 5000

/**
 * Requests `hash` on an outbound stream; returns the bytes only if they hash to `hash`. When
 * `signal` aborts (the transfer's deadline), the stream is aborted and the read fails at once.
 * After a grace of RATE_GRACE_MS, a peer sending under `minBytesPerSecond` on average is left
 * too: one that trickles a byte a second must not hold a transfer for its whole deadline.
 */
export async function requestBlob (stream: Stream, hash: string, signal?: AbortSignal, minBytesPerSecond = 0, maxBytes = MAX_BLOB_BYTES): Promise<Uint8Array> {
  const source = stream[Symbol.asyncIterator]()
  const buffer = new Uint8ArrayList()
  const onAbort = (): void => { stream.abort(abortReason(signal!)) }
  if (signal?.aborted === true) onAbort()
  signal?.addEventListener('abort', onAbort, { once: true })
  const started = Date.now()
  let tooSlow: BlobError | undefined
  const watch = minBytesPerSecond <= 0
    ? undefined
    : setInterval(() => {
      const elapsed = Date.now() - started
      if (elapsed <= RATE_GRACE_MS || buffer.byteLength >= minBytesPerSecond * (elapsed - RATE_GRACE_MS) / 1000) return
      tooSlow = new BlobError(`the peer sends under ${Math.round(minBytesPerSecond / 1024)} KiB/s (${buffer.byteLength} bytes in ${(elapsed / 1000).toFixed(1)} s)`, 'transfer-rate')
      stream.abort(tooSlow)
    }, 500)
  try {
    await send(stream, frame(encodeCbor({ hash })))
    const header = decodeCbor(await readFrame(source, buffer, MAX_HEADER), MAX_HEADER) as { size?: unknown, error?: unknown }
    if (typeof header?.error === 'string') throw new BlobError(`peer answered: ${header.error.slice(0, 100)}`)
    const size = header?.size
    if (!Number.isSafeInteger(size) || (size as number) < 0) throw new BlobError('bad response header')
    // refused before a byte of it is buffered: what is asked for has a known size
    if ((size as number) > Math.min(maxBytes, MAX_BLOB_BYTES)) throw new BlobError(`the peer announces ${size as number} bytes, more than the ${Math.min(maxBytes, MAX_BLOB_BYTES)} expected`, 'blob-size')
    while (buffer.byteLength < (size as number)) await pull(source, buffer)
    if (buffer.byteLength > (size as number)) throw new BlobError('peer sent more bytes than announced')
    const bytes = buffer.subarray()
    const actual = contentHash(bytes)
    if (actual !== hash) throw new BlobError(`blob hashes to ${actual.slice(0, 12)}, expected ${hash.slice(0, 12)}`)
    await stream.close()
    return bytes
  } catch (err) {
    stream.abort(err as Error)
    throw signal?.aborted === true ? abortReason(signal) : tooSlow ?? err
  } finally {
    clearInterval(watch)
    signal?.removeEventListener('abort', onAbort)
  }
}

/**
 * The blob `hash`: held already, or from the first of `from` (this peer, `self`, left out) that
 * `fetchOne` gets it whole from within `timeoutMs` (one deadline for the whole attempt; then the
 * next source); kept in `blobs`. `fetchOne` checks what it gets (size, hash); `failed` hears of
 * each source that did not deliver. The host and the in-memory test network share this loop.
 */
export async function fetchFromAny (hash: string, from: string[], self: string, blobs: Blobs, { signal, timeoutMs }: FetchOptions, clock: Clock,
  fetchOne: (peer: string, signal: AbortSignal) => Promise<Uint8Array>, failed: (peer: string, err: unknown, attempt: AbortSignal) => void = () => {}): Promise<Uint8Array> {
  const local = blobs.get(hash)
  if (local !== undefined) return local
  // the blob may land here while a source stalls (this peer made it, or another fetch brought it):
  // the attempt ends then, not at its deadline (a peer cut off from the leader waited out two of
  // them for a round certificate it had certified itself meanwhile, and judged it too late)
  const arrival = new AbortController()
  const stopWaiting = blobs.whenPut(hash, () => { arrival.abort(new AbortError(`blob ${hash.slice(0, 12)} arrived here`)) })
  const errors: string[] = []
  try {
    for (const peer of [...new Set(from)].filter(p => p !== self)) {
      signal?.throwIfAborted()
      const attempt = deadlineSignal(clock, timeoutMs, `no complete answer within ${timeoutMs} ms`, signal === undefined ? arrival.signal : AbortSignal.any([signal, arrival.signal]))
      try {
        const bytes = await fetchOne(peer, attempt.signal)
        blobs.put(bytes)
        return bytes
      } catch (err) {
        const arrived = blobs.get(hash)
        if (arrived !== undefined) return arrived
        signal?.throwIfAborted() // the round is over: no next source
        failed(peer, err, attempt.signal)
        errors.push(`${peer.slice(-6)}: ${attempt.signal.aborted ? abortReason(attempt.signal).message : (err as Error).message}`)
      } finally {
        attempt.clear()
      }
    }
  } finally {
    stopWaiting()
  }
  throw new BlobError(`could not fetch blob ${hash.slice(0, 12)}: ${errors.join('; ') || 'no peer to ask'}`)
}
