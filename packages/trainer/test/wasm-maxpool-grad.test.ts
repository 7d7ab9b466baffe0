// The MaxPoolGrad kernel we supply for wasm, checked against the cpu backend's, ties and padding included.
import { expect } from 'chai'
import { tf, registerWasmMaxPoolGrad, initBackend, wasmKernelRuns } from '@dml/trainer'
import { maxAbsDiff } from './support/compare.ts'

describe('wasm MaxPoolGrad', () => {
  before(async () => { await initBackend('cpu') })
  after(async () => { await initBackend('auto') })

  type Shape4 = [number, number, number, number]
  // "in wasm" cases run wasm-kernels.wat's loop (channels a multiple of 4), the others this file's
  const cases: Array<[string, Shape4, number, number, 'same' | 'valid']> = [
    ['2x2 stride 2 valid (the built-in CNNs), in wasm', [3, 12, 12, 4], 2, 2, 'valid'],
    ['2x2 stride 2 valid, 16 channels, odd size (a row and a column left out), in wasm', [2, 9, 9, 16], 2, 2, 'valid'],
    ['2x2 stride 2 valid, 3 channels', [2, 8, 8, 3], 2, 2, 'valid'],
    ['2x2 stride 2 valid, odd size (a row and a column left out)', [2, 9, 9, 3], 2, 2, 'valid'],
    ['2x2 stride 2 same, odd size (the last windows padded)', [2, 9, 7, 3], 2, 2, 'same'],
    ['3x3 stride 2 same (overlapping windows, padding)', [2, 11, 11, 3], 3, 2, 'same'],
    ['3x3 stride 1 same', [2, 7, 7, 2], 3, 1, 'same']
  ]
  for (const [name, shape, size, stride, pad] of cases) {
    for (const values of ['random', 'after relu: many tied zeros', 'small integers: many ties']) {
      it(`matches the cpu backend: ${name}, ${values}`, async () => {
        await tf.setBackend('cpu')
        const noise = tf.randomNormal(shape, 0, 1, 'float32', 7)
        const x = (values === 'random' ? noise : values.startsWith('after relu') ? tf.relu(noise) : tf.round(noise.mul(2))) as tf.Tensor4D
        const dy = tf.randomNormal(tf.maxPool(x, size, stride, pad).shape, 0, 1, 'float32', 8)
        const gradient = (input: tf.Tensor): tf.Tensor => tf.grad((t: tf.Tensor) => tf.maxPool(t as tf.Tensor4D, size, stride, pad).mul(dy).sum())(input)
        const expected = gradient(x).dataSync() as Float32Array
        const xs = x.dataSync(); const dys = dy.dataSync()
        await tf.setBackend('wasm')
        registerWasmMaxPoolGrad()
        const dyOnWasm = tf.tensor(dys, dy.shape)
        const runs = wasmKernelRuns.maxpoolgrad2x2
        const ours = tf.grad((t: tf.Tensor) => tf.maxPool(t as tf.Tensor4D, size, stride, pad).mul(dyOnWasm).sum())(tf.tensor(xs, shape))
        expect(wasmKernelRuns.maxpoolgrad2x2 - runs, 'gradients run by wasm-kernels.wat').to.equal(name.endsWith('in wasm') ? 1 : 0)
        expect(ours.shape).to.deep.equal(shape)
        // a wrong choice of maximum differs by a whole gradient value; overlapping windows may sum in another order
        expect(maxAbsDiff(ours.dataSync() as Float32Array, expected)).to.be.below(1e-5)
        tf.dispose([ours, dyOnWasm])
      })
    }
  }

  it('gives a window of NaN or -Infinity only no gradient, as the cpu backend does, in wasm too', async () => {
    const shape: Shape4 = [1, 2, 2, 4]
    // channel 0 all NaN, channel 1 all -Infinity, channel 2 a NaN beside a number, channel 3 ties
    const values = [Number.NaN, Number.NEGATIVE_INFINITY, Number.NaN, 1, Number.NaN, Number.NEGATIVE_INFINITY, 2, 1, Number.NaN, Number.NEGATIVE_INFINITY, 3, 1, Number.NaN, Number.NEGATIVE_INFINITY, 0, 1]
    const gradient = (): Float32Array => tf.tidy(() => tf.grad((t: tf.Tensor) => tf.maxPool(t as tf.Tensor4D, 2, 2, 'valid').sum())(tf.tensor(values, shape)).dataSync() as Float32Array)
    await tf.setBackend('cpu')
    const expected = gradient()
    await tf.setBackend('wasm')
    registerWasmMaxPoolGrad()
    expect([...gradient()]).to.deep.equal([...expected])
    expect(expected[0] + expected[4] + expected[8] + expected[12], 'NaN channel').to.equal(0)
  })

  it('leaves no tensor behind', async () => {
    await tf.setBackend('wasm')
    registerWasmMaxPoolGrad()
    const x = tf.randomNormal([2, 8, 8, 3])
    const held = tf.memory().numTensors
    tf.dispose(tf.tidy(() => tf.grad((t: tf.Tensor) => tf.maxPool(t as tf.Tensor4D, 2, 2, 'valid').sum())(x)))
    expect(tf.memory().numTensors).to.equal(held)
  })
})
