// A peer's own examples from their bytes, wherever the bytes come from: files on disk
// (own-data.ts, Node), or files a browser tab's user picked (which never leave the tab).
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

/** An IDX images file's bytes and its labels file's (`imagesName`, `labelsName`: what errors call them). */
export function idxPair (imagesBytes: Uint8Array, labelsBytes: Uint8Array, imagesName: string, labelsName: string): ImageSet {
  const images = parseIdx(imagesBytes, imagesName)
  const labels = parseIdx(labelsBytes, labelsName)
  if (images.shape.length < 3) throw new DataError(`${imagesName}: images must be of rank 3 or 4, not ${images.shape.length}`)
  if (labels.shape.length !== 1) throw new DataError(`${labelsName}: labels must be of rank 1, not ${labels.shape.length}`)
  if (images.shape[0] !== labels.shape[0]) throw new DataError(`${imagesName} holds ${images.shape[0]} images but ${labelsName} ${labels.shape[0]} labels`)
  const exampleShape = images.shape.length === 3 ? [images.shape[1], images.shape[2], 1] : images.shape.slice(1)
  return { images: images.data, labels: labels.data, count: images.shape[0], exampleShape, numClasses: 0, scale: 1 }
}

/** A CSV's text with a header (`path`: what errors call it): the column named "label" (else the first) is the class, the others the features in order. */
export function csvSet (text: string, shape: DataShape, path: string): ImageSet {
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

