// The Conv2D gradients we supply for wasm, checked against the cpu backend's own kernels.
import { expect } from 'chai'
import { tf, conv2dFilterGradient, conv2dInputGradient, registerWasmConvGradient, initBackend } from '@dml/trainer'
import { maxAbsDiff } from './support/compare.ts'


describe('wasm Conv2D gradients', () => {
  before(async () => { await initBackend('cpu') })
  after(async () => { await initBackend('auto') })

  type Shape4 = [number, number, number, number]
  const cases: Array<[string, Shape4, Shape4, number, 'same' | 'valid']> = [
    ['5x5 same, stride 1', [3, 12, 12, 2], [5, 5, 2, 4], 1, 'same'],
    ['5x5 valid, stride 1', [3, 12, 12, 2], [5, 5, 2, 4], 1, 'valid'],
    ['4x4 same (uneven padding), stride 1', [2, 9, 9, 2], [4, 4, 2, 3], 1, 'same'],
    ['3x3 same, stride 2', [2, 11, 11, 3], [3, 3, 3, 5], 2, 'same'],
    ['3x3 valid, stride 2', [2, 11, 11, 3], [3, 3, 3, 5], 2, 'valid']
  ]
  for (const [name, xShape, wShape, stride, pad] of cases) {
    it(`matches the cpu backend: ${name}`, async () => {
      await tf.setBackend('cpu')
      const x = tf.randomNormal(xShape, 0, 1, 'float32', 1) as tf.Tensor4D
      const w = tf.randomNormal(wShape, 0, 1, 'float32', 2) as tf.Tensor4D
      const dy = tf.randomNormal(tf.conv2d(x, w, stride, pad).shape, 0, 1, 'float32', 3) as tf.Tensor4D
      const reference = tf.grad((filter: tf.Tensor) => tf.conv2d(x, filter as tf.Tensor4D, stride, pad).mul(dy).sum())(w)
      const expected = reference.dataSync() as Float32Array
      const xs = x.dataSync(); const dys = dy.dataSync()
      await tf.setBackend('wasm')
      registerWasmConvGradient()
      const ours = conv2dFilterGradient(tf.tensor(xs, x.shape) as tf.Tensor4D, tf.tensor(dys, dy.shape) as tf.Tensor4D, wShape, stride, pad)
      expect(ours.shape).to.deep.equal(wShape)
      expect(maxAbsDiff(ours.dataSync() as Float32Array, expected)).to.be.below(1e-3)
      // and through tfjs's autodiff on wasm, as training uses it
      const viaGrad = tf.grad((filter: tf.Tensor) => tf.conv2d(tf.tensor(xs, x.shape) as tf.Tensor4D, filter as tf.Tensor4D, stride, pad).mul(tf.tensor(dys, dy.shape)).sum())(tf.tensor(w.dataSync(), wShape))
      expect(maxAbsDiff(viaGrad.dataSync() as Float32Array, expected)).to.be.below(1e-3)
    })

    it(`input gradient matches the cpu backend: ${name}`, async () => {
      await tf.setBackend('cpu')
      const x = tf.randomNormal(xShape, 0, 1, 'float32', 4) as tf.Tensor4D
      const w = tf.randomNormal(wShape, 0, 1, 'float32', 5) as tf.Tensor4D
      const dy = tf.randomNormal(tf.conv2d(x, w, stride, pad).shape, 0, 1, 'float32', 6) as tf.Tensor4D
      const expected = tf.grad((input: tf.Tensor) => tf.conv2d(input as tf.Tensor4D, w, stride, pad).mul(dy).sum())(x).dataSync() as Float32Array
      const xs = x.dataSync(); const ws = w.dataSync(); const dys = dy.dataSync()
      await tf.setBackend('wasm')
      registerWasmConvGradient()
      const ours = conv2dInputGradient(tf.tensor(dys, dy.shape) as tf.Tensor4D, tf.tensor(ws, wShape) as tf.Tensor4D, xShape, stride, pad)
      expect(ours.shape).to.deep.equal(xShape)
      expect(maxAbsDiff(ours.dataSync() as Float32Array, expected)).to.be.below(1e-3)
      const viaGrad = tf.grad((input: tf.Tensor) => tf.conv2d(input as tf.Tensor4D, tf.tensor(ws, wShape) as tf.Tensor4D, stride, pad).mul(tf.tensor(dys, dy.shape)).sum())(tf.tensor(xs, xShape))
      expect(maxAbsDiff(viaGrad.dataSync() as Float32Array, expected)).to.be.below(1e-3)
    })
  }
})
