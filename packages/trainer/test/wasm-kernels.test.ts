// wasm-kernels.ts, the kernels the wasm backend's plain matrix products, stride-1 convolutions and
// bias-gradient sums run through, checked against the cpu backend on the shapes their loops split
// differently (rows or pixels left over after blocks of 4, one column block, a depth of 1, batches,
// broadcasts, padding); what they leave to wasm's own kernels; and the committed bytes against the
// text they are assembled from.
import { expect } from 'chai'
import { readFileSync } from 'node:fs'
import { tf, initBackend, registerWasmKernels, registerWasmMatMul, wasmKernelRuns } from '@dml/trainer'
import { kernelsBinaryModule, binaryFile } from '../../../scripts/build-wasm-kernels.ts'
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

describe('wasm kernels of dml\'s own: products and convolutions with fused multiply-adds', () => {
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
      const runs = wasmKernelRuns.gemm
      const [cpu, wasm] = await onBoth(aShape, bShape)
      expect(wasmKernelRuns.gemm - runs, 'products run by wasm-kernels.ts').to.equal(name.includes('XNNPACK') ? 0 : 1)
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

  // Conv2D: cnn-small's and cnn's convolutions and the convolutions their gradients are made of
  // (wasm-conv-grad.ts), padded ones, and what stays with XNNPACK
  type Shape4 = [number, number, number, number]
  const convolutions: Array<[string, Shape4, Shape4, 'valid' | 'same', number]> = [
    ['cnn-small\'s first layer', [32, 28, 28, 1], [5, 5, 1, 8], 'valid', 1],
    ['cnn-small\'s second layer', [32, 12, 12, 8], [5, 5, 8, 16], 'valid', 1],
    ['a filter gradient as a convolution (batch and channels swapped)', [1, 28, 28, 32], [24, 24, 32, 8], 'valid', 1],
    ['widths that leave pixels after blocks of 4', [2, 9, 11, 3], [3, 2, 3, 16], 'valid', 1],
    ['a 1x1 kernel', [2, 5, 5, 4], [1, 1, 4, 8], 'valid', 1],
    ['same padding (cnn), padded first', [2, 14, 14, 32], [5, 5, 32, 64], 'same', 1],
    ['stride 2 (XNNPACK\'s)', [2, 9, 9, 3], [3, 3, 3, 8], 'valid', 2],
    ['6 output channels (XNNPACK\'s)', [2, 9, 9, 3], [3, 3, 3, 6], 'valid', 1]
  ]
  for (const [name, xShape, filterShape, pad, stride] of convolutions) {
    it(`convolves as the cpu backend does: ${name}`, async () => {
      const x = tf.randomNormal(xShape, 0, 1, 'float32', 3).dataSync()
      const filter = tf.randomNormal(filterShape, 0, 1, 'float32', 4).dataSync()
      const run = (): Float32Array => tf.tidy(() => tf.conv2d(tf.tensor(x, xShape) as tf.Tensor4D, tf.tensor(filter, filterShape) as tf.Tensor4D, stride, pad).dataSync() as Float32Array)
      await tf.setBackend('cpu')
      const cpu = run()
      await tf.setBackend('wasm')
      registerWasmKernels()
      const before = tf.memory().numTensors
      const held = tf.engine().backend.numDataIds()
      const runs = wasmKernelRuns.conv2d
      const wasm = run()
      expect(wasmKernelRuns.conv2d - runs, 'convolutions run by wasm-kernels.ts').to.equal(name.includes('XNNPACK') ? 0 : 1)
      expect(tf.memory().numTensors).to.equal(before)
      expect(tf.engine().backend.numDataIds(), 'the padded copy is freed').to.equal(held)
      expect(wasm.length).to.equal(cpu.length)
      expect(maxAbsDiff(wasm, cpu)).to.be.below(1e-4 * Math.sqrt(filterShape[0] * filterShape[1] * filterShape[2]))
    })
  }

  // Sum: over every axis but the last with our kernel, any other sum with wasm's
  const sums: Array<[string, number[], number | number[], boolean]> = [
    ['a convolution\'s bias gradient', [32, 24, 24, 8], [0, 1, 2], false],
    ['kept dimensions, negative axes', [3, 5, 12], [-2, 0], true],
    ['a dense layer\'s bias gradient', [32, 200], 0, false],
    ['the last axis (wasm\'s)', [4, 6, 8], 2, false],
    ['a last axis of 6 (wasm\'s)', [4, 6], 0, false]
  ]
  for (const [name, shape, axis, keepDims] of sums) {
    it(`sums as the cpu backend does: ${name}`, async () => {
      const x = tf.randomNormal(shape, 0, 1, 'float32', 5).dataSync()
      const run = (): [Float32Array, number[]] => tf.tidy(() => {
        const sum = tf.sum(tf.tensor(x, shape), axis, keepDims)
        return [sum.dataSync() as Float32Array, sum.shape]
      })
      await tf.setBackend('cpu')
      const [cpu, cpuShape] = run()
      await tf.setBackend('wasm')
      registerWasmKernels()
      const runs = wasmKernelRuns.colsum
      const [wasm, wasmShape] = run()
      expect(wasmKernelRuns.colsum - runs, 'sums run by wasm-kernels.ts').to.equal(name.includes('wasm\'s') ? 0 : 1)
      expect(wasmShape).to.deep.equal(cpuShape)
      expect(maxAbsDiff(wasm, cpu)).to.be.below(1e-3)
    })
  }

  /** runs `op` on cpu and on wasm from the same random inputs; returns both and how often each of our kernels ran */
  async function compare (shapes: number[][], op: (...t: tf.Tensor[]) => tf.Tensor): Promise<[Float32Array, Float32Array, typeof wasmKernelRuns]> {
    const inputs = shapes.map((shape, i) => tf.randomNormal(shape, 0, 1, 'float32', 10 + i).dataSync())
    const run = (): Float32Array => tf.tidy(() => op(...inputs.map((v, i) => tf.tensor(v, shapes[i]))).dataSync() as Float32Array)
    await tf.setBackend('cpu')
    const cpu = run()
    await tf.setBackend('wasm')
    registerWasmMatMul()
    registerWasmKernels()
    const before = { ...wasmKernelRuns }
    const held = tf.engine().backend.numDataIds()
    const wasm = run()
    expect(tf.engine().backend.numDataIds(), 'nothing left in wasm memory').to.equal(held)
    const runs = Object.fromEntries(Object.entries(wasmKernelRuns).map(([k, v]) => [k, v - before[k as keyof typeof before]])) as typeof wasmKernelRuns
    return [cpu, wasm, runs]
  }

  // evaluation's dense layers: the fused product, its bias and activation after ours
  for (const [name, activation, withBias, n] of [['relu with a bias', 'relu', true, 200], ['linear with a bias', 'linear', true, 16], ['relu without a bias', 'relu', false, 8], ['10 columns (XNNPACK\'s)', 'relu', true, 10]] as const) {
    it(`fuses a product's bias and activation as the cpu backend does: ${name}`, async () => {
      const [cpu, wasm, runs] = await compare(withBias ? [[25, 30], [30, n], [n]] : [[25, 30], [30, n]],
        (a, b, bias) => tf.fused.matMul({ a: a as tf.Tensor2D, b: b as tf.Tensor2D, bias, activation }))
      expect(runs.gemm, 'products run by wasm-kernels.ts').to.equal(n % 8 === 0 ? 1 : 0)
      expect(maxAbsDiff(wasm, cpu)).to.be.below(1e-4)
    })
  }

  it('fuses a convolution\'s bias and relu as the cpu backend does (evaluation of cnn-small)', async () => {
    const [cpu, wasm, runs] = await compare([[4, 12, 12, 8], [5, 5, 8, 16], [16]],
      (x, filter, bias) => tf.fused.conv2d({ x: x as tf.Tensor4D, filter: filter as tf.Tensor4D, strides: 1, pad: 'valid', bias, activation: 'relu' }))
    expect(runs.conv2d).to.equal(1)
    expect(runs.biasact).to.equal(1)
    expect(cpu.some(v => v === 0), 'relu cut some').to.equal(true)
    expect(maxAbsDiff(wasm, cpu)).to.be.below(1e-3)
  })

  for (const [name, shapes, ours] of [
    ['a convolution\'s bias, as training adds it', [[8, 6, 6, 8], [8]], true],
    ['the bias first', [[16], [3, 16]], true],
    ['same shapes (wasm\'s)', [[3, 16], [3, 16]], false],
    ['a bias of 6 (wasm\'s)', [[3, 6], [6]], false]
  ] as const) {
    it(`adds as the cpu backend does: ${name}`, async () => {
      const [cpu, wasm, runs] = await compare(shapes.map(s => [...s]), (a, b) => tf.add(a, b))
      expect(runs.biasact).to.equal(ours ? 1 : 0)
      expect(maxAbsDiff(wasm, cpu)).to.be.below(1e-6)
    })
  }

  it('runs the bytes assembled from wasm-kernels.wat (npm run build:wasm-kernels)', async () => {
    expect(readFileSync(binaryFile, 'utf8')).to.equal(await kernelsBinaryModule())
  })
})
