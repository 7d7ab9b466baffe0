import { CHUNK_BYTES } from './constants.ts'

/** Splits a blob into views of at most `size` bytes (no copy). */
export function splitChunks (bytes: Uint8Array, size = CHUNK_BYTES): Uint8Array[] {
  if (!Number.isInteger(size) || size <= 0) throw new RangeError('chunk size must be a positive integer')
  const chunks: Uint8Array[] = []
  for (let offset = 0; offset < bytes.byteLength; offset += size) {
    chunks.push(bytes.subarray(offset, Math.min(offset + size, bytes.byteLength)))
  }
  return chunks
}

export function joinChunks (chunks: Uint8Array[]): Uint8Array {
  const total = chunks.reduce((n, c) => n + c.byteLength, 0)
  const out = new Uint8Array(total)
  let offset = 0
  for (const c of chunks) { out.set(c, offset); offset += c.byteLength }
  return out
}
