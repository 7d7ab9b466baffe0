// wasm's matrix products with transposed operands, which we route through an explicit
// transpose, checked against the cpu backend; and that nothing is left allocated.
import { expect } from 'chai'
import { tf, initBackend, registerWasmMatMul } from '@dml/trainer'
import { maxAbsDiff } from './support/compare.ts'


describe('wasm matrix products with transposed operands', () => {
  before(async () => { await initBackend('cpu') })
  after(async () => { await initBackend('auto') })

  const cases: Array<[string, number[], number[]]> = [
    ['2-D', [7, 5], [5, 3]],
    ['batched 3-D', [2, 7, 5], [2, 5, 3]],
    ['3-D with a broadcast batch', [2, 7, 5], [1, 5, 3]]
  ]
  for (const [name, aShape, bShape] of cases) {
    for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]]) {
      it(`${name}, transposeA ${String(ta)}, transposeB ${String(tb)}, plain${aShape.length === 2 ? ' and fused' : ''}`, async () => {
        const swap = (s: number[], t: boolean): number[] => t ? [...s.slice(0, -2), s[s.length - 1], s[s.length - 2]] : s
        const a = tf.randomNormal(swap(aShape, ta), 0, 1, 'float32', 1).dataSync()
        const b = tf.randomNormal(swap(bShape, tb), 0, 1, 'float32', 2).dataSync()
        const bias = tf.randomNormal([bShape[bShape.length - 1]], 0, 1, 'float32', 3).dataSync()
        const run = (): [Float32Array, Float32Array] => tf.tidy(() => {
          const at = tf.tensor(a, swap(aShape, ta)); const bt = tf.tensor(b, swap(bShape, tb))
          return [tf.matMul(at, bt, ta, tb).dataSync() as Float32Array,
            tf.fused.matMul({ a: at, b: bt, transposeA: ta, transposeB: tb, bias: tf.tensor(bias), activation: 'relu' }).dataSync() as Float32Array]
        })
        await tf.setBackend('cpu')
        const [plain, fused] = run()
        await tf.setBackend('wasm')
        registerWasmMatMul()
        const before = tf.memory().numTensors
        const [wasmPlain, wasmFused] = run()
        expect(tf.memory().numTensors).to.equal(before)
        expect(maxAbsDiff(wasmPlain, plain)).to.be.below(1e-4)
        // wasm's own fused kernel differs from cpu's for batched operands, flags or not; dense layers use 2-D
        if (aShape.length === 2) expect(maxAbsDiff(wasmFused, fused)).to.be.below(1e-4)
      })
    }
  }

  it('leaves no wasm memory behind', async () => {
    await tf.setBackend('wasm')
    registerWasmMatMul()
    const a = tf.randomNormal([64, 32]); const b = tf.randomNormal([64, 16])
    tf.matMul(a, b, true, false).dispose()
    const bytes = tf.memory().numBytes
    const held = tf.engine().backend.numDataIds() // the backend's own count: the transposed copies are made there
    for (let i = 0; i < 20; i++) tf.matMul(a, b, true, false).dispose()
    expect(tf.memory().numBytes).to.equal(bytes)
    expect(tf.engine().backend.numDataIds()).to.equal(held)
    tf.dispose([a, b])
  })
})
