// A data set's split as the node serves it to a browser tab (/tab/data/train, /tab/data/test):
// a 4-byte header length, the header as JSON, the labels, then the images. The tab checks
// every size against the header before it trusts a byte of it.
import type { ImageSet } from '@dml/trainer/browser'

/** The most examples a split may have, and the most values one example may have. */
const MAX_EXAMPLES = 10_000_000
const MAX_EXAMPLE_VALUES = 1 << 20

interface Header {
  count: number
  exampleShape: number[]
  numClasses: number
  scale: number
  values: 'uint8' | 'float32'
}

export function encodeImageSet (set: ImageSet): Uint8Array {
  const header: Header = { count: set.count, exampleShape: set.exampleShape, numClasses: set.numClasses, scale: set.scale, values: set.images instanceof Float32Array ? 'float32' : 'uint8' }
  const json = new TextEncoder().encode(JSON.stringify(header))
  const images = new Uint8Array(set.images.buffer, set.images.byteOffset, set.images.byteLength)
  const out = new Uint8Array(4 + json.byteLength + set.labels.byteLength + images.byteLength)
  new DataView(out.buffer).setUint32(0, json.byteLength)
  out.set(json, 4)
  out.set(set.labels, 4 + json.byteLength)
  out.set(images, 4 + json.byteLength + set.labels.byteLength)
  return out
}

export class DataWireError extends Error {
  override name = 'DataWireError'
}

export function decodeImageSet (bytes: Uint8Array): ImageSet {
  const fail = (why: string): never => { throw new DataWireError(`the data set the node sent: ${why}`) }
  if (bytes.byteLength < 4) fail('no header')
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0)
  if (length > 4096 || 4 + length > bytes.byteLength) fail(`a header of ${length} bytes`)
  let header: Header
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + length))) as Header
  } catch {
    return fail('a header that is not JSON')
  }
  const { count, exampleShape, numClasses, scale, values } = header
  const whole = (n: unknown, max: number): boolean => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= max
  if (!whole(count, MAX_EXAMPLES)) fail(`count ${String(count)}`)
  if (!Array.isArray(exampleShape) || exampleShape.length === 0 || exampleShape.length > 4 || !exampleShape.every(d => whole(d, MAX_EXAMPLE_VALUES))) fail('an example shape that is not 1-4 whole numbers')
  const perExample = exampleShape.reduce((a, b) => a * b, 1)
  if (perExample > MAX_EXAMPLE_VALUES) fail(`${perExample} values an example`)
  if (!whole(numClasses, 255)) fail(`${String(numClasses)} classes`)
  if (typeof scale !== 'number' || !Number.isFinite(scale) || scale <= 0) fail(`scale ${String(scale)}`)
  if (values !== 'uint8' && values !== 'float32') fail(`values of type ${String(values)}`)
  const valueBytes = values === 'float32' ? 4 : 1
  const expected = 4 + length + count + count * perExample * valueBytes
  if (bytes.byteLength !== expected) fail(`${bytes.byteLength} bytes, where its header makes ${expected}`)
  const labels = bytes.slice(4 + length, 4 + length + count)
  if (labels.some(l => l >= numClasses)) fail(`a label of ${numClasses} classes or more`)
  const raw = bytes.slice(4 + length + count)
  const images = values === 'float32' ? new Float32Array(raw.buffer, raw.byteOffset, count * perExample) : raw
  if (images instanceof Float32Array && images.some(v => !Number.isFinite(v))) fail('a value that is not a finite number')
  return { images, labels, count, exampleShape, numClasses, scale }
}
