// Update blobs: what a peer sends back after training. Either the trained weights whole (the
// tensor blob of tensors.ts, float32), or with --compression their difference from the round's
// model, in float16 or in int8 with a float32 scale per block of values. Whoever decodes one
// adds the difference back to the round's model in float32, the same way on every peer, so the
// participants that recompute an aggregate get the leader's bytes.
import { CodecError, decodeCbor, describe, encodeCbor } from './codec.ts'
import { MAX_BLOB_BYTES } from './constants.ts'
import { decodeTensors, encodeTensors, TENSOR_FORMAT_VERSION, type NamedTensor } from './tensors.ts'

export const COMPRESSIONS = ['none', 'fp16', 'int8'] as const
export type Compression = typeof COMPRESSIONS[number]

export function isCompression (name: string): name is Compression {
  return (COMPRESSIONS as readonly string[]).includes(name)
}

/** int8 values share one scale per this many: 1/256 more bytes than a scale per tensor, and an outlier costs only its block's precision. */
export const INT8_BLOCK = 1024

/**
 * The update blob of `weights`, trained from `base` (the round's model, with hash `baseHash`).
 * With compression, `residual` (if given) is what earlier rounds' rounding left out: it is added to
 * this difference before rounding, and replaced by what this rounding leaves out (error feedback,
 * so that rounding errors do not add up over rounds).
 */
export function encodeUpdate (weights: NamedTensor[], base: NamedTensor[], baseHash: string, compression: Compression, residual?: NamedTensor[]): Uint8Array {
  if (compression === 'none') return encodeTensors(weights)
  if (weights.length !== base.length) throw new Error(`${weights.length} trained tensors for a model of ${base.length}`)
  const tensors = weights.map((w, t) => {
    const b = base[t].values
    const r = residual?.[t].values
    const delta = new Float32Array(w.values.length)
    for (let i = 0; i < delta.length; i++) delta[i] = w.values[i] - b[i] + (r === undefined ? 0 : r[i])
    const coded = compression === 'fp16' ? toFloat16(delta) : toInt8(delta)
    if (r !== undefined) {
      const sent = compression === 'fp16' ? fromFloat16(coded.data, delta.length) : fromInt8(coded.data, coded.scales!, delta.length)
      for (let i = 0; i < r.length; i++) r[i] = delta[i] - sent[i]
    }
    return { name: w.name, dtype: compression === 'fp16' ? 'float16' : 'int8', shape: w.shape, data: coded.data, ...(coded.scales === undefined ? {} : { scales: coded.scales }) }
  })
  return encodeCbor({ v: TENSOR_FORMAT_VERSION, base: baseHash, tensors })
}

function fail (why: string): never {
  throw new CodecError(`bad update blob: ${why}`)
}

/**
 * The trained weights an update blob stands for: whole weights as sent, or a difference added to
 * `base`, which must be the model it names (`baseHash`). Shapes are the caller's to check.
 */
export function decodeUpdate (bytes: Uint8Array, base: NamedTensor[], baseHash: string): NamedTensor[] {
  const blob = decodeCbor(bytes, MAX_BLOB_BYTES) as Record<string, unknown>
  if (blob === null || typeof blob !== 'object' || Array.isArray(blob)) fail('not a map')
  if (blob.base === undefined) return decodeTensors(bytes)
  if (blob.v !== TENSOR_FORMAT_VERSION) fail(`version ${describe(blob.v)}, expected ${TENSOR_FORMAT_VERSION}`)
  if (blob.base !== baseHash) fail(`it is a difference from model ${describe(blob.base)}, not from this round's model ${baseHash.slice(0, 12)}`)
  const list = blob.tensors
  if (!Array.isArray(list) || list.length !== base.length) fail(`${Array.isArray(list) ? list.length : 'no'} tensors for a model of ${base.length}`)
  return list.map((entry: unknown, i: number) => {
    const t = entry as Record<string, unknown>
    const b = base[i]
    if (t === null || typeof t !== 'object') fail(`tensor ${i} is not a map`)
    if (t.name !== b.name) fail(`tensor ${i} is ${describe(t.name)}, the model's is ${b.name}`)
    const shape = t.shape
    if (!Array.isArray(shape) || shape.length !== b.shape.length || shape.some((d, j) => d !== b.shape[j])) fail(`tensor ${b.name} has shape ${describe(shape)}, the model's is [${b.shape.join(',')}]`)
    const size = b.values.length
    if (!(t.data instanceof Uint8Array)) fail(`tensor ${b.name} has no data`)
    let delta: Float32Array
    if (t.dtype === 'float16') {
      if (t.data.byteLength !== 2 * size) fail(`tensor ${b.name}: ${size} float16 values need ${2 * size} bytes, not ${t.data.byteLength}`)
      delta = fromFloat16(t.data, size)
    } else if (t.dtype === 'int8') {
      const blocks = Math.ceil(size / INT8_BLOCK)
      if (t.data.byteLength !== size) fail(`tensor ${b.name}: ${size} int8 values need ${size} bytes, not ${t.data.byteLength}`)
      if (!(t.scales instanceof Uint8Array) || t.scales.byteLength !== 4 * blocks) fail(`tensor ${b.name}: ${blocks} blocks need ${4 * blocks} bytes of scales`)
      delta = fromInt8(t.data, t.scales, size)
    } else {
      fail(`tensor ${b.name} has dtype ${describe(t.dtype)}; a difference is float16 or int8`)
    }
    // w = base + delta, rounded to float32 once: the same on every peer
    const values = new Float32Array(size)
    for (let j = 0; j < size; j++) values[j] = b.values[j] + delta[j]
    return { name: b.name, shape: [...b.shape], values }
  })
}

// float32 <-> float16 (IEEE binary16), round to nearest even; overflow gives ±Infinity, which
// the receiver refuses as non-finite, as it would a diverged float32 update.
const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

function halfOf (value: number): number {
  f32[0] = value
  const x = u32[0]
  const sign = (x >>> 16) & 0x8000
  const exp = (x >>> 23) & 0xff
  let mant = x & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0) // Inf, NaN
  const e = exp - 127 + 15
  if (e >= 0x1f) return sign | 0x7c00 // too large: Inf
  if (e <= 0) {
    if (e < -10) return sign // below half the smallest subnormal: ±0
    mant |= 0x800000
    const shift = 14 - e
    const half = mant >>> shift
    const rest = mant & ((1 << shift) - 1)
    const mid = 1 << (shift - 1)
    return sign | (half + (rest > mid || (rest === mid && (half & 1) === 1) ? 1 : 0))
  }
  const half = (e << 10) | (mant >>> 13)
  const rest = mant & 0x1fff
  // a carry out of the mantissa rounds into the exponent, up to Inf: the bit layout does it
  return sign | (half + (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1) ? 1 : 0))
}

function floatOfHalf (h: number): number {
  const sign = (h & 0x8000) !== 0 ? -1 : 1
  const exp = (h >>> 10) & 0x1f
  const mant = h & 0x3ff
  if (exp === 0) return sign * mant * 2 ** -24
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN
  return sign * (1024 + mant) * 2 ** (exp - 25)
}

function toFloat16 (values: Float32Array): { data: Uint8Array, scales?: undefined } {
  const out = new Uint16Array(values.length)
  for (let i = 0; i < values.length; i++) out[i] = halfOf(values[i])
  return { data: new Uint8Array(out.buffer) } // little-endian, as the float32 blobs (every machine dml runs on)
}

function fromFloat16 (data: Uint8Array, size: number): Float32Array {
  const out = new Float32Array(size)
  for (let i = 0; i < size; i++) out[i] = floatOfHalf(data[2 * i] | (data[2 * i + 1] << 8))
  return out
}

/** Each block of INT8_BLOCK values as round(v / scale), scale = the block's largest |v| / 127. */
function toInt8 (values: Float32Array): { data: Uint8Array, scales: Uint8Array } {
  const data = new Int8Array(values.length)
  const scales = new Float32Array(Math.ceil(values.length / INT8_BLOCK))
  for (let k = 0; k < scales.length; k++) {
    const end = Math.min(values.length, (k + 1) * INT8_BLOCK)
    let max = 0
    for (let i = k * INT8_BLOCK; i < end; i++) max = Math.max(max, Math.abs(values[i]))
    const scale = Math.fround(max / 127)
    scales[k] = scale
    if (scale === 0) continue
    for (let i = k * INT8_BLOCK; i < end; i++) data[i] = Math.max(-127, Math.min(127, Math.round(values[i] / scale)))
  }
  return { data: new Uint8Array(data.buffer), scales: new Uint8Array(scales.buffer) }
}

function fromInt8 (data: Uint8Array, scaleBytes: Uint8Array, size: number): Float32Array {
  const view = new DataView(scaleBytes.buffer, scaleBytes.byteOffset, scaleBytes.byteLength)
  const out = new Float32Array(size)
  for (let k = 0; k * INT8_BLOCK < size; k++) {
    const scale = view.getFloat32(4 * k, true)
    const end = Math.min(size, (k + 1) * INT8_BLOCK)
    // a NaN or infinite scale shows as a non-finite weight, which the receiver refuses
    for (let i = k * INT8_BLOCK; i < end; i++) out[i] = ((data[i] << 24) >> 24) * scale
  }
  return out
}
