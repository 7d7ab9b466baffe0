// SHA-256 in a browser tab (package.json's imports, condition "browser"): Web Crypto's digest is
// asynchronous, and a content hash is taken where no await can go, so portable code does it.
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'

export function sha256Hex (bytes: Uint8Array): string {
  return bytesToHex(sha256(bytes))
}
