// The libp2p private network (pnet, --swarm-key): the same wire protocol as @libp2p/pnet, with
// XSalsa20 from @noble/ciphers (pure JS, audited). @libp2p/pnet's cipher, the wasm package
// xsalsa20 1.2.0, shares one WebAssembly memory between all connections; once one connection
// has grown it, the others size their next growth from a detached view, so under load the memory
// doubles until grow() throws inside a socket handler and the process dies (seen with 5 peers
// verifying each other's updates). Protocol: each side sends a random 24-byte nonce; each
// direction is then XORed with XSalsa20(pre-shared key, the sending side's nonce).
import { xsalsa20 } from '@noble/ciphers/salsa.js'
import { AbstractMultiaddrConnection, byteStream } from '@libp2p/utils'
import type { AbortOptions, ConnectionProtector, Logger, MessageStream, MultiaddrConnection } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'

const NONCE_BYTES = 24
const BLOCK_BYTES = 64
const HANDSHAKE_TIMEOUT_MS = 5000

/** XSalsa20 as a stream: each call XORs the next bytes of the keystream. */
export class XSalsa20Stream {
  private readonly key: Uint8Array
  private readonly nonce: Uint8Array
  /** bytes of keystream used so far */
  private offset = 0

  constructor (key: Uint8Array, nonce: Uint8Array) {
    if (key.byteLength !== 32) throw new RangeError('an XSalsa20 key has 32 bytes')
    if (nonce.byteLength !== NONCE_BYTES) throw new RangeError('an XSalsa20 nonce has 24 bytes')
    this.key = key
    this.nonce = nonce
  }

  update (data: Uint8Array): Uint8Array {
    if (data.byteLength === 0) return new Uint8Array(0)
    const skip = this.offset % BLOCK_BYTES
    const block = Math.floor(this.offset / BLOCK_BYTES)
    this.offset += data.byteLength
    if (skip === 0) return xsalsa20(this.key, this.nonce, data, undefined, block)
    // the keystream starts mid-block: pad the front, XOR from the block's start, drop the padding
    const padded = new Uint8Array(skip + data.byteLength)
    padded.set(data, skip)
    return xsalsa20(this.key, this.nonce, padded, undefined, block).subarray(skip)
  }
}

/** A connection whose bytes are XORed with the two keystreams on their way in and out. */
class CipherConnection extends AbstractMultiaddrConnection {
  private readonly inner: MultiaddrConnection
  private readonly outbound: XSalsa20Stream

  constructor (inner: MultiaddrConnection, inbound: XSalsa20Stream, outbound: XSalsa20Stream, log: Logger) {
    super({ remoteAddr: inner.remoteAddr, direction: inner.direction, log })
    this.inner = inner
    this.outbound = outbound
    inner.addEventListener('message', (event) => {
      const data = event.data
      if (data instanceof Uint8Array) this.onData(inbound.update(data))
      else for (const chunk of data) this.onData(inbound.update(chunk))
    })
    inner.addEventListener('drain', () => { this.onMuxerDrain() })
    inner.addEventListener('close', (event) => {
      if (event.error === undefined) this.onTransportClosed()
      else if (event.local === true) this.abort(event.error)
      else this.onRemoteReset()
    })
  }

  sendData (data: Uint8ArrayList): { sentBytes: number, canSendMore: boolean } {
    return { sentBytes: data.byteLength, canSendMore: this.inner.send(this.outbound.update(data.subarray())) }
  }

  sendReset (err: Error): void { this.inner.abort(err) }
  async sendClose (options?: AbortOptions): Promise<void> { await this.inner.close(options) }
  sendPause (): void { this.inner.pause() }
  sendResume (): void { this.inner.resume() }
}

/** The 32-byte key of a swarm key file's text (as readSwarmKey returns it). */
export function swarmKeyBytes (swarmKey: Uint8Array): Uint8Array {
  const hex = new TextDecoder().decode(swarmKey).split(/\r?\n/)[2] ?? ''
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new RangeError('a swarm key holds 64 hex digits on its third line')
  return Uint8Array.from(Buffer.from(hex, 'hex'))
}

/** A connection protector for libp2p: only peers holding the same swarm key can talk. */
export function privateNetwork (swarmKey: Uint8Array): () => ConnectionProtector {
  const key = swarmKeyBytes(swarmKey)
  return () => ({
    async protect (connection: MessageStream, options?: AbortOptions): Promise<MessageStream> {
      const localNonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES))
      const signal = options?.signal ?? AbortSignal.timeout(HANDSHAKE_TIMEOUT_MS)
      const bytes = byteStream(connection)
      const [remote] = await Promise.all([bytes.read({ bytes: NONCE_BYTES, signal }), bytes.write(localNonce, { signal })])
      const inner = bytes.unwrap() as MultiaddrConnection
      return new CipherConnection(inner, new XSalsa20Stream(key, remote.subarray()), new XSalsa20Stream(key, localNonce), inner.log.newScope('dml-pnet'))
    }
  })
}
