// wasm-gemm.ts, the product the wasm backend's plain matrix products run through, checked against
// the cpu backend on the shapes its loops split differently (rows left over after blocks of 4,
// one column block, a depth of 1, batches, broadcasts); the products it leaves to XNNPACK; and
// the committed bytes against the text they are assembled from.
import { expect } from 'chai'
import { readFileSync } from 'node:fs'
import { tf, initBackend, registerWasmMatMul } from '@dml/trainer'
import { gemmBinaryModule, binaryFile } from '../../../scripts/build-gemm.ts'
import { maxAbsDiff } from './support/compare.ts'

/** a times b on cpu and on wasm, from the same values (random, or a from `fill` and b all ones) */
async function onBoth (aShape: number[], bShape: number[], fill?: (i: number) => number): Promise<[Float32Array, Float32Array]> {
  const random = (shape: number[], seed: number): Float32Array => tf.randomNormal(shape, 0, 1, 'float32', seed).dataSync() as Float32Array
  const size = (shape: number[]): number => shape.reduce((x, y) => x * y, 1)
  const a = fill === undefined ? random(aShape, 1) : Float32Array.from({ length: size(aShape) }, (_, i) => fill(i))
  const b = fill === undefined ? random(bShape, 2) : new Float32Array(size(bShape)).fill(1)
  const run = (): Float32Array => tf.tidy(() => tf.matMul(tf.tensor(a, aShape), tf.tensor(b, bShape)).dataSync() as Float32Array)
  await tf.setBackend('cpu')
  const cpu = run()
  await tf.setBackend('wasm')
  registerWasmMatMul()
  return [cpu, run()]
}

describe('wasm gemm: plain matrix products with fused multiply-adds', () => {
  before(async () => { await initBackend('cpu') })
  after(async () => { await initBackend('auto') })

  const cases: Array<[string, number[], number[]]> = [
    ['the mlp\'s forward product', [200, 784], [784, 32]],
    ['the mlp\'s kernel gradient', [200, 32], [32, 784]],
    ['rows 1 to 7: blocks of 4 and the rows left', [7, 13], [13, 16]],
    ['one row', [1, 5], [5, 8]],
    ['a depth of 1', [6, 1], [1, 24]],
    ['batched 3-D', [3, 9, 5], [3, 5, 16]],
    ['3-D, a broadcast left batch', [1, 9, 5], [3, 5, 16]],
    ['3-D, a broadcast right batch', [3, 9, 5], [1, 5, 16]],
    ['4-D', [2, 2, 5, 3], [2, 2, 3, 8]],
    ['columns not a multiple of 8 (XNNPACK\'s)', [6, 5], [5, 10]]
  ]
  for (const [name, aShape, bShape] of cases) {
    it(`matches the cpu backend: ${name}`, async () => {
      const [cpu, wasm] = await onBoth(aShape, bShape)
      expect(wasm.length).to.equal(cpu.length)
      expect(maxAbsDiff(wasm, cpu)).to.be.below(1e-4 * Math.sqrt(aShape[aShape.length - 1]))
    })
  }

  it('carries NaN and infinity through, as any product does', async () => {
    const [, wasm] = await onBoth([4, 3], [3, 8], i => i === 0 ? Number.NaN : i === 5 ? Number.POSITIVE_INFINITY : 1)
    expect(Number.isNaN(wasm[0])).to.equal(true) // row 0 holds the NaN
    expect(wasm[8]).to.equal(Number.POSITIVE_INFINITY) // row 1 holds the infinity
    expect(wasm[16]).to.equal(3)
  })

  it('leaves no tensor or wasm memory behind', async () => {
    await tf.setBackend('wasm')
    registerWasmMatMul()
    const a = tf.randomNormal([64, 32]); const b = tf.randomNormal([32, 16])
    tf.matMul(a, b).dispose()
    const bytes = tf.memory().numBytes
    const held = tf.engine().backend.numDataIds()
    for (let i = 0; i < 20; i++) tf.matMul(a, b).dispose()
    expect(tf.memory().numBytes).to.equal(bytes)
    expect(tf.engine().backend.numDataIds()).to.equal(held)
    tf.dispose([a, b])
  })

  it('runs the bytes assembled from wasm-gemm.wat (npm run build:gemm)', async () => {
    expect(readFileSync(binaryFile, 'utf8')).to.equal(await gemmBinaryModule())
  })
})
