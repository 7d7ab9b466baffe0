// A peer's own examples (--data), which never leave it: an IDX pair (plain or gzipped), a CSV
// with a header, or an image folder with one subfolder per class. Whatever the format, the
// examples must fit the task's input shape and classes, or loading fails with a DataError that
// says what the data holds and what the task wants; nothing is resized or guessed.
import { readdir, readFile, stat } from 'node:fs/promises'
import { basename, dirname, extname, join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import type { ImageSet } from './data.ts'
import { parseIdx } from './idx.ts'

export class DataError extends Error {
  override name = 'DataError'
  /** the user's to fix: a command says it in one line (see errors.ts in @dml/node) */
  readonly expected = true
}

/** What every peer's examples must look like: the task names it, so the model fits them all. */
export interface DataShape {
  /** per-example shape, e.g. [28, 28, 1] */
  input: number[]
  classes: number
  /** every value is divided by this before training (255: pixels to 0-1) */
  scale: number
}

export const DATA_FORMATS = 'a directory or file of IDX (train-images-idx3-ubyte and train-labels-idx1-ubyte, plain or .gz), a .csv file with a header and a "label" column, or a directory with one subfolder of PNG/JPEG images per class (named 0, 1, ...)'

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg'])

/** Loads the examples at `path`, in whichever of the three formats it is. */
export async function loadOwnData (path: string, shape: DataShape): Promise<ImageSet> {
  const info = await stat(path).catch((err: Error) => { throw new DataError(`--data ${path}: ${err.message}`) })
  let set: ImageSet
  if (info.isFile()) {
    set = path.toLowerCase().endsWith('.csv') ? await loadCsv(path, shape) : await loadIdxPair(path, dirname(path), basename(path))
  } else {
    const entries = await readdir(path, { withFileTypes: true })
    const idxImages = entries.filter(e => e.isFile() && /images.*idx[34]-ubyte(\.gz)?$/.test(e.name)).map(e => e.name).sort()
    const csvs = entries.filter(e => e.isFile() && e.name.toLowerCase().endsWith('.csv'))
    const folders = entries.filter(e => e.isDirectory())
    if (idxImages.length > 0) {
      // train-* before any other pair (t10k-* is a test set)
      set = await loadIdxPair(join(path, idxImages.find(n => n.startsWith('train')) ?? idxImages[0]), path)
    } else if (csvs.length === 1) {
      set = await loadCsv(join(path, csvs[0].name), shape)
    } else if (folders.length > 0) {
      set = await loadImageFolder(path, folders.map(f => f.name), shape)
    } else {
      throw new DataError(`--data ${path} holds none of the formats dml reads: ${DATA_FORMATS}`)
    }
  }
  checkFits(set, shape, `--data ${path}`)
  return set
}

/**
 * Checks that `set` (named `what` in the error) fits the task: its examples have the task's
 * shape and its labels are among its classes. Then the set takes the task's classes and scale.
 */
export function checkFits (set: ImageSet, shape: DataShape, what: string): void {
  const fmt = (s: number[]): string => s.join('x')
  if (fmt(set.exampleShape) !== fmt(shape.input)) {
    throw new DataError(`${what}: examples are ${fmt(set.exampleShape)}, the task's input is ${fmt(shape.input)} (--input); every peer's examples must have the task's shape`)
  }
  if (set.count === 0) throw new DataError(`${what} holds no examples`)
  let maxLabel = 0
  for (const l of set.labels) maxLabel = Math.max(maxLabel, l)
  if (maxLabel >= shape.classes) {
    throw new DataError(`${what}: label ${maxLabel} is not one of the task's ${shape.classes} classes 0-${shape.classes - 1} (--classes)`)
  }
  set.numClasses = shape.classes
  set.scale = shape.scale
}

async function readMaybeGzipped (path: string): Promise<Uint8Array> {
  const bytes = await readFile(path).catch((err: Error) => { throw new DataError(`cannot read ${path}: ${err.message}`) })
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      return gunzipSync(bytes)
    } catch (err) {
      throw new DataError(`${path}: not valid gzip: ${(err as Error).message}`)
    }
  }
  return bytes
}

/** An IDX images file and the labels file beside it (its name with images -> labels, idx3/idx4 -> idx1). */
async function loadIdxPair (imagesPath: string, dir: string, imagesName = basename(imagesPath)): Promise<ImageSet> {
  const candidates = [imagesName.replace('images', 'labels').replace(/idx[34]/, 'idx1')]
  candidates.push(candidates[0].endsWith('.gz') ? candidates[0].slice(0, -3) : `${candidates[0]}.gz`)
  const existing = await Promise.all(candidates.map(async name => await stat(join(dir, name)).then(() => name, () => undefined)))
  const labelsName = existing.find(n => n !== undefined)
  if (labelsName === undefined) throw new DataError(`${imagesPath}: no labels file beside it (expected ${candidates[0]})`)
  const images = parseIdx(await readMaybeGzipped(imagesPath), imagesPath)
  const labels = parseIdx(await readMaybeGzipped(join(dir, labelsName)), labelsName)
  if (images.shape.length < 3) throw new DataError(`${imagesPath}: images must be of rank 3 or 4, not ${images.shape.length}`)
  if (labels.shape.length !== 1) throw new DataError(`${labelsName}: labels must be of rank 1, not ${labels.shape.length}`)
  if (images.shape[0] !== labels.shape[0]) throw new DataError(`${imagesPath} holds ${images.shape[0]} images but ${labelsName} ${labels.shape[0]} labels`)
  const exampleShape = images.shape.length === 3 ? [images.shape[1], images.shape[2], 1] : images.shape.slice(1)
  return { images: images.data, labels: labels.data, count: images.shape[0], exampleShape, numClasses: 0, scale: 1 }
}

/** A CSV with a header: the column named "label" (else the first) is the class, the others the features in order. */
async function loadCsv (path: string, shape: DataShape): Promise<ImageSet> {
  const text = new TextDecoder().decode(await readMaybeGzipped(path))
  const lines = text.split(/\r?\n/).filter(l => l.trim() !== '')
  if (lines.length < 2) throw new DataError(`${path}: a header and at least one row are needed`)
  const header = lines[0].split(',').map(h => h.trim().toLowerCase())
  const labelColumn = Math.max(0, header.indexOf('label'))
  const features = header.length - 1
  const want = shape.input.reduce((a, b) => a * b, 1)
  if (features !== want) throw new DataError(`${path}: rows have ${features} feature columns, the task's input ${shape.input.join('x')} needs ${want} (--input)`)
  const count = lines.length - 1
  const values = new Float32Array(count * features)
  const labels = new Uint8Array(count)
  for (let row = 0; row < count; row++) {
    const cells = lines[row + 1].split(',')
    if (cells.length !== header.length) throw new DataError(`${path}, line ${row + 2}: ${cells.length} columns, the header has ${header.length}`)
    let f = 0
    for (let c = 0; c < cells.length; c++) {
      const value = Number(cells[c])
      if (cells[c].trim() === '' || !Number.isFinite(value)) throw new DataError(`${path}, line ${row + 2}, column ${c + 1}: "${cells[c].slice(0, 20)}" is not a number`)
      if (c === labelColumn) {
        if (!Number.isInteger(value) || value < 0 || value > 255) throw new DataError(`${path}, line ${row + 2}: label "${cells[c]}" is not a class number`)
        labels[row] = value
      } else {
        values[row * features + f++] = value
      }
    }
  }
  return { images: values, labels, count, exampleShape: [...shape.input], numClasses: 0, scale: 1 }
}

/** One subfolder per class, named by its number; every image decoded to the task's size and channels. */
async function loadImageFolder (dir: string, folders: string[], shape: DataShape): Promise<ImageSet> {
  const [rows, cols, channels] = shape.input
  if (shape.input.length !== 3 || ![1, 3].includes(channels)) throw new DataError(`--data ${dir}: an image folder needs an input of rows x cols x 1 or 3 channels, not ${shape.input.join('x')}`)
  for (const name of folders) {
    if (!/^\d+$/.test(name) || Number(name) >= shape.classes) throw new DataError(`--data ${dir}: subfolder "${name}" is not one of the task's classes 0-${shape.classes - 1} (name each class's folder by its number)`)
  }
  const { default: sharp } = await import('sharp')
  const files: Array<{ path: string, label: number }> = []
  for (const name of folders.sort((a, b) => Number(a) - Number(b))) {
    const inFolder = (await readdir(join(dir, name))).filter(f => IMAGE_EXTENSIONS.has(extname(f).toLowerCase())).sort()
    for (const f of inFolder) files.push({ path: join(dir, name, f), label: Number(name) })
  }
  const size = rows * cols * channels
  const images = new Uint8Array(files.length * size)
  const labels = new Uint8Array(files.length)
  // decoded a few at a time: libvips works on its own threads
  const parallel = 8
  for (let start = 0; start < files.length; start += parallel) {
    await Promise.all(files.slice(start, start + parallel).map(async ({ path, label }, k) => {
      const i = start + k
      let decoded: { data: Buffer, info: { width: number, height: number, channels: number } }
      try {
        const image = sharp(path).removeAlpha()
        decoded = await (channels === 1 ? image.greyscale() : image.toColourspace('srgb')).raw().toBuffer({ resolveWithObject: true })
      } catch (err) {
        throw new DataError(`${path}: not a readable PNG or JPEG image: ${(err as Error).message}`)
      }
      const { width, height } = decoded.info
      if (width !== cols || height !== rows) throw new DataError(`${path} is ${width}x${height} pixels, the task's input is ${cols}x${rows} (--input ${shape.input.join('x')})`)
      if (decoded.info.channels !== channels) throw new DataError(`${path} decodes to ${decoded.info.channels} channels, the task's input has ${channels}`)
      images.set(decoded.data, i * size)
      labels[i] = label
    }))
  }
  return { images, labels, count: files.length, exampleShape: [rows, cols, channels], numClasses: 0, scale: 1 }
}
