// SHA-256 in Node: its OpenSSL binding, some 18 times as fast as the portable code (a model blob is
// hashed on every put and every fetch).
import { createHash } from 'node:crypto'

export function sha256Hex (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}
