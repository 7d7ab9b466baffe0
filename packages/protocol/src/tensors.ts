// The tensor container: what a model's weights look like on the wire and on disk.
// A model blob is CBOR {v, tensors: [{name, dtype, shape, data}]}, addressed by its SHA-256.
import { CodecError, decodeCbor, describe, encodeCbor } from './codec.ts'
import { MAX_BLOB_BYTES } from './constants.ts'

/** Version of the tensor blob layout (independent of the control protocol's). */
export const TENSOR_FORMAT_VERSION = 1

export interface NamedTensor {
  name: string
  shape: number[]
  values: Float32Array
}

const MAX_TENSORS = 1024
const MAX_RANK = 8

export function encodeTensors (tensors: NamedTensor[]): Uint8Array {
  return encodeCbor({
    v: TENSOR_FORMAT_VERSION,
    tensors: tensors.map(t => ({
      name: t.name,
      dtype: 'float32',
      shape: t.shape,
      data: new Uint8Array(t.values.buffer, t.values.byteOffset, t.values.byteLength)
    }))
  })
}

function fail (why: string): never {
  throw new CodecError(`bad tensor blob: ${why}`)
}

export function decodeTensors (bytes: Uint8Array): NamedTensor[] {
  const blob = decodeCbor(bytes, MAX_BLOB_BYTES) as Record<string, unknown>
  if (blob === null || typeof blob !== 'object' || Array.isArray(blob)) fail('not a map')
  if (blob.v !== TENSOR_FORMAT_VERSION) fail(`version ${describe(blob.v)}, expected ${TENSOR_FORMAT_VERSION}`)
  const list = blob.tensors
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_TENSORS) fail('tensors must be a non-empty list')
  return list.map((entry: unknown, i: number) => {
    const t = entry as Record<string, unknown>
    if (t === null || typeof t !== 'object') fail(`tensor ${i} is not a map`)
    if (typeof t.name !== 'string' || t.name.length === 0 || t.name.length > 256) fail(`tensor ${i} has no valid name`)
    if (t.dtype !== 'float32') fail(`tensor ${t.name} has dtype ${describe(t.dtype)}; only float32 is accepted`)
    const shape = t.shape
    if (!Array.isArray(shape) || shape.length > MAX_RANK || !shape.every(d => Number.isInteger(d) && d > 0 && d < 2 ** 31)) {
      fail(`tensor ${t.name} has an invalid shape`)
    }
    const size = (shape as number[]).reduce((a, b) => a * b, 1)
    if (!(t.data instanceof Uint8Array) || t.data.byteLength !== size * 4) fail(`tensor ${t.name}: ${size} values need ${size * 4} bytes`)
    // copy: the decoded bytes may be unaligned views into the message buffer
    const values = new Float32Array(size)
    new Uint8Array(values.buffer).set(t.data)
    return { name: t.name, shape: [...shape as number[]], values }
  })
}

/** Throws unless `tensors` has exactly the names and shapes of `reference`. */
export function assertSameShapes (tensors: NamedTensor[], reference: Array<{ name: string, shape: number[] }>): void {
  if (tensors.length !== reference.length) throw new CodecError(`expected ${reference.length} tensors, got ${tensors.length}`)
  for (let i = 0; i < tensors.length; i++) {
    const a = tensors[i]; const b = reference[i]
    if (a.shape.length !== b.shape.length || a.shape.some((d, j) => d !== b.shape[j])) {
      throw new CodecError(`tensor ${i} (${a.name}) has shape [${a.shape.join(',')}], expected [${b.shape.join(',')}]`)
    }
  }
}

/** The first value that is NaN or infinite, if any: where a diverged or forged model shows. */
export function findNonFinite (tensors: NamedTensor[]): { tensor: string, index: number, value: number } | undefined {
  for (const t of tensors) {
    const values = t.values
    for (let i = 0; i < values.length; i++) {
      // v - v is 0 for every finite v and NaN for NaN and ±Infinity: one test, no call per value
      if (values[i] - values[i] !== 0) return { tensor: t.name, index: i, value: values[i] }
    }
  }
  return undefined
}
