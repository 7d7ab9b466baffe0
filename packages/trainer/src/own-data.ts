// A peer's own examples (--data), which never leave it: an IDX pair (plain or gzipped), a CSV
// with a header, or an image folder with one subfolder per class. Whatever the format, the
// examples must fit the task's input shape and classes, or loading fails with a DataError that
// says what the data holds and what the task wants; nothing is resized or guessed.
import { readdir, readFile, stat } from 'node:fs/promises'
import { basename, dirname, extname, join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import type { ImageSet } from './data.ts'
import { checkFits, csvSet, DATA_FORMATS, DataError, idxPair, type DataShape } from './own-data-parse.ts'

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
  return idxPair(await readMaybeGzipped(imagesPath), await readMaybeGzipped(join(dir, labelsName)), imagesPath, labelsName)
}

/** A CSV file with a header (see csvSet). */
async function loadCsv (path: string, shape: DataShape): Promise<ImageSet> {
  return csvSet(new TextDecoder().decode(await readMaybeGzipped(path)), shape, path)
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
