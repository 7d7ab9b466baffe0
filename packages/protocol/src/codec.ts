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
