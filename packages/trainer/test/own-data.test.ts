import { expect } from 'chai'
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import sharp from 'sharp'
import { loadDataset, loadOwnData, DataError, type Dataset } from '@dml/trainer'
import { pick, writeExamples, type Format } from './support/write-formats.ts'

const MNIST = { input: [28, 28, 1], classes: 10, scale: 255 }

describe('own data (--data)', function () {
  this.timeout(60_000)
  let dir: string
  let mnist: Dataset
  const indices = Array.from({ length: 50 }, (_, i) => i * 7)
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dml-own-'))
    mnist = await loadDataset('mnist')
  })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  for (const format of ['idx', 'idx.gz', 'csv', 'png', 'jpeg'] as Format[]) {
    it(`reads ${format}: the same examples, labels and scale as MNIST's own files`, async () => {
      const examples = pick(mnist.train.images as Uint8Array, mnist.train.labels, [28, 28, 1], indices)
      const path = await writeExamples(join(dir, format), format, examples)
      const set = await loadOwnData(path, MNIST)
      expect(set.count).to.equal(50)
      expect(set.exampleShape).to.deep.equal([28, 28, 1])
      expect(set.numClasses).to.equal(10)
      expect(set.scale).to.equal(255)
      // an image folder is read class by class: compare as sorted (label, pixels) pairs
      const key = (images: ArrayLike<number>, labels: ArrayLike<number>, i: number): string => `${labels[i]}:${Array.from(images as Uint8Array).slice(i * 784, (i + 1) * 784).join(',')}`
      const want = indices.map((_, i) => key(examples.images, examples.labels, i)).sort()
      const got = Array.from({ length: 50 }, (_, i) => key(set.images, set.labels, i)).sort()
      if (format === 'jpeg') {
        // lossy: the labels are exact, each class's pixels close
        expect(got.map(k => k.split(':')[0])).to.deep.equal(want.map(k => k.split(':')[0]))
        const classSums = (images: ArrayLike<number>, labels: ArrayLike<number>): number[] => {
          const sums = new Array(10).fill(0)
          for (let i = 0; i < 50; i++) for (let p = 0; p < 784; p++) sums[labels[i]] += images[i * 784 + p]
          return sums
        }
        const decoded = classSums(set.images, set.labels)
        classSums(examples.images, examples.labels).forEach((sum, c) => expect(decoded[c]).to.be.closeTo(sum, 0.02 * sum + 1))
      } else {
        expect(got).to.deep.equal(want)
      }
    })
  }

  it('refuses data that does not fit the task, saying what it holds and what the task wants', async () => {
    const examples = pick(mnist.train.images as Uint8Array, mnist.train.labels, [28, 28, 1], indices)
    const idx = await writeExamples(join(dir, 'fit-idx'), 'idx', examples)
    await expectRefusal(loadOwnData(idx, { ...MNIST, input: [32, 32, 3] }), /examples are 28x28x1, the task's input is 32x32x3 \(--input\)/)
    await expectRefusal(loadOwnData(idx, { ...MNIST, classes: 5 }), /label 9 is not one of the task's 5 classes 0-4 \(--classes\)/)
    const csv = await writeExamples(join(dir, 'fit-csv'), 'csv', examples)
    await expectRefusal(loadOwnData(csv, { ...MNIST, input: [8, 8, 1] }), /784 feature columns, the task's input 8x8x1 needs 64/)

    // an image folder: a 32x32 RGB image among 28x28 ones, a folder that names no class
    const folder = join(dir, 'fit-images')
    await writeExamples(folder, 'png', examples)
    await writeFile(join(folder, '3', 'big.png'), await sharp({ create: { width: 32, height: 32, channels: 3, background: '#000' } }).png().toBuffer())
    await expectRefusal(loadOwnData(folder, MNIST), /big\.png is 32x32 pixels, the task's input is 28x28/)
    await rm(join(folder, '3', 'big.png'))
    await mkdir(join(folder, 'cats'))
    await expectRefusal(loadOwnData(folder, MNIST), /subfolder "cats" is not one of the task's classes 0-9/)
  })

  it('names the line and column of a bad CSV cell, and the formats when it finds none', async () => {
    const bad = join(dir, 'bad.csv')
    await writeFile(bad, 'label,a,b,c,d\n1,0,0,0,0\n2,0,x,0,0\n')
    await expectRefusal(loadOwnData(bad, { input: [2, 2, 1], classes: 10, scale: 1 }), /bad\.csv, line 3, column 3: "x" is not a number/)
    await writeFile(bad, 'label,a,b,c,d\n1,0,0,0\n')
    await expectRefusal(loadOwnData(bad, { input: [2, 2, 1], classes: 10, scale: 1 }), /line 2: 4 columns, the header has 5/)
    const empty = join(dir, 'empty')
    await mkdir(empty)
    await expectRefusal(loadOwnData(empty, MNIST), /holds none of the formats dml reads/)
    await expectRefusal(loadOwnData(join(dir, 'nowhere'), MNIST), /--data .*nowhere: ENOENT/)
  })

  it('keeps CSV features as floats, scaled by the task', async () => {
    const csv = join(dir, 'floats.csv')
    await writeFile(csv, 'a,b,label\n0.5,-1.25,1\n2,3,0\n')
    const set = await loadOwnData(csv, { input: [2], classes: 2, scale: 2 })
    expect(Array.from(set.images)).to.deep.equal([0.5, -1.25, 2, 3])
    expect(Array.from(set.labels)).to.deep.equal([1, 0])
    expect(set.scale).to.equal(2)
  })
})

async function expectRefusal (loading: Promise<unknown>, message: RegExp): Promise<void> {
  try {
    await loading
  } catch (err) {
    expect(err).to.be.instanceOf(DataError)
    expect((err as Error).message).to.match(message)
    return
  }
  expect.fail(`loaded, but should have been refused with ${String(message)}`)
}
