// The IDX file format (MNIST's): big-endian magic [0, 0, type, rank], then rank uint32 sizes,
// then the data. Only unsigned bytes (type 0x08) are accepted: that is what image sets use.
export class IdxError extends Error {
  override name = 'IdxError'
  /** the user's to fix: a command says it in one line (see errors.ts in @dml/node) */
  readonly expected = true
}

export interface IdxArray {
  shape: number[]
  data: Uint8Array
}

export function parseIdx (bytes: Uint8Array, what = 'IDX file'): IdxArray {
  if (bytes.byteLength < 4) throw new IdxError(`${what}: ${bytes.byteLength} bytes is too short for an IDX header`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (bytes[0] !== 0 || bytes[1] !== 0) throw new IdxError(`${what}: bad magic number (first two bytes must be zero)`)
  if (bytes[2] !== 0x08) throw new IdxError(`${what}: element type 0x${bytes[2].toString(16)} is not unsigned byte (0x08)`)
  const rank = bytes[3]
  if (rank < 1 || rank > 4) throw new IdxError(`${what}: rank ${rank} is not between 1 and 4`)
  const headerBytes = 4 + 4 * rank
  if (bytes.byteLength < headerBytes) throw new IdxError(`${what}: truncated header`)
  const shape: number[] = []
  for (let i = 0; i < rank; i++) shape.push(view.getUint32(4 + 4 * i))
  const size = shape.reduce((a, b) => a * b, 1)
  if (bytes.byteLength - headerBytes !== size) {
    throw new IdxError(`${what}: header says ${size} values of shape [${shape.join(', ')}], file holds ${bytes.byteLength - headerBytes}`)
  }
  return { shape, data: bytes.subarray(headerBytes) }
}
