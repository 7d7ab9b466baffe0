// CBOR with the strictest decoding cborg offers: whatever a peer sends is data, never code,
// and anything that is not plain canonical-ish CBOR is refused before any field is read.
import { encode, decode } from 'cborg'

export class CodecError extends Error {
  override name = 'CodecError'
}

const DECODE_OPTIONS = {
  strict: true,
  allowIndefinite: false,
  allowUndefined: false,
  allowBigInt: false,
  rejectDuplicateMapKeys: true,
  useMaps: false
} as const

export function encodeCbor (value: unknown): Uint8Array {
  return encode(value)
}

export function decodeCbor (bytes: Uint8Array, maxBytes: number): unknown {
  if (!(bytes instanceof Uint8Array)) throw new CodecError('expected bytes')
  if (bytes.byteLength > maxBytes) throw new CodecError(`message of ${bytes.byteLength} bytes exceeds the limit of ${maxBytes}`)
  try {
    return decode(bytes, DECODE_OPTIONS)
  } catch (err) {
    throw new CodecError(`not valid CBOR: ${(err as Error).message}`)
  }
}

/**
 * A short description of a value a peer sent, for an error message. Never String(): a decoded map
 * may carry a "toString" key that is not a function, and a description must not throw.
 */
export function describe (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 40))
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return `${value}`
  if (Array.isArray(value)) return 'a list'
  return value instanceof Uint8Array ? 'bytes' : 'a map'
}
