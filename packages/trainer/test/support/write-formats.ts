// Writes examples in each format `--data` reads, as a user's own files would be: for the tests.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import sharp from 'sharp'

export type Format = 'idx' | 'idx.gz' | 'csv' | 'png' | 'jpeg'

export interface Examples {
  /** uint8 values, count x rows x cols x channels */
  images: Uint8Array
  labels: Uint8Array
  rows: number
  cols: number
  channels: number
}

function idx (type: 3 | 1, shape: number[], data: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * shape.length)
  header[2] = 0x08
  header[3] = shape.length
  shape.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i))
  return Buffer.concat([header, data])
}

/** Writes `examples` into `dir` in `format`; returns the path to give --data. */
export async function writeExamples (dir: string, format: Format, e: Examples): Promise<string> {
  await mkdir(dir, { recursive: true })
  const count = e.labels.length
  const size = e.rows * e.cols * e.channels
  if (format === 'idx' || format === 'idx.gz') {
    const shape = e.channels === 1 ? [count, e.rows, e.cols] : [count, e.rows, e.cols, e.channels]
    const z = format === 'idx.gz' ? (b: Buffer) => gzipSync(b) : (b: Buffer) => b
    const ext = format === 'idx.gz' ? '.gz' : ''
    await writeFile(join(dir, `train-images-idx3-ubyte${ext}`), z(idx(3, shape, e.images)))
    await writeFile(join(dir, `train-labels-idx1-ubyte${ext}`), z(idx(1, [count], e.labels)))
    return dir
  }
  if (format === 'csv') {
    const header = ['label', ...Array.from({ length: size }, (_, i) => `pixel${i}`)].join(',')
    const rows = Array.from({ length: count }, (_, i) => [e.labels[i], ...e.images.subarray(i * size, (i + 1) * size)].join(','))
    const path = join(dir, 'examples.csv')
    await writeFile(path, [header, ...rows].join('\n') + '\n')
    return path
  }
  for (let i = 0; i < count; i++) {
    const folder = join(dir, String(e.labels[i]))
    await mkdir(folder, { recursive: true })
    const image = sharp(Buffer.from(e.images.subarray(i * size, (i + 1) * size)), { raw: { width: e.cols, height: e.rows, channels: e.channels as 1 | 3 } })
    // JPEG is lossy: quality 100 keeps MNIST's pixels within a few levels
    const bytes = format === 'png' ? await image.png().toBuffer() : await image.jpeg({ quality: 100 }).toBuffer()
    await writeFile(join(folder, `${i}.${format === 'png' ? 'png' : 'jpg'}`), bytes)
  }
  return dir
}

/** The examples `indices` of an uint8 set of shape rows x cols x channels. */
export function pick (images: Uint8Array, labels: Uint8Array, shape: number[], indices: ArrayLike<number>): Examples {
  const size = shape.reduce((a, b) => a * b, 1)
  const out = new Uint8Array(indices.length * size)
  const outLabels = new Uint8Array(indices.length)
  for (let i = 0; i < indices.length; i++) {
    out.set(images.subarray(indices[i] * size, (indices[i] + 1) * size), i * size)
    outLabels[i] = labels[indices[i]]
  }
  return { images: out, labels: outLabels, rows: shape[0], cols: shape[1], channels: shape[2] ?? 1 }
}
