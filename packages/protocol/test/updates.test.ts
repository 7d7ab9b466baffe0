import { expect } from 'chai'
import { decode, encode } from 'cborg'
import { CodecError, contentHash, decodeUpdate, encodeTensors, encodeUpdate, findNonFinite, INT8_BLOCK, type Compression, type NamedTensor } from '@dml/protocol'

/** A model of cnn's layout in miniature, and weights trained a little away from it. */
function pair (seed: number): { base: NamedTensor[], trained: NamedTensor[] } {
  let s = seed
  const random = (): number => { s = (s * 1103515245 + 12345) % 2 ** 31; return s / 2 ** 31 - 0.5 }
  const shapes: Array<[string, number[]]> = [['conv/kernel', [3, 3, 1, 8]], ['conv/bias', [8]], ['dense/kernel', [784, 64]], ['dense/bias', [64]]]
  const base = shapes.map(([name, shape]) => ({ name, shape, values: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => random()) }))
  const trained = base.map(t => ({ ...t, values: t.values.map(v => v + 0.01 * random()) }))
  return { base, trained }
}

const maxError = (a: NamedTensor[], b: NamedTensor[]): number => Math.max(...a.map((t, i) => t.values.reduce((m, v, j) => Math.max(m, Math.abs(v - b[i].values[j])), 0)))

describe('update blobs (--compression)', () => {
  const { base, trained } = pair(7)
  const baseHash = contentHash(encodeTensors(base))

  it('without compression are the trained weights\' tensor blob, decoded exactly', () => {
    const bytes = encodeUpdate(trained, base, baseHash, 'none')
    expect(bytes).to.deep.equal(encodeTensors(trained))
    expect(decodeUpdate(bytes, base, baseHash)).to.deep.equal(trained)
  })

  it('fp16 and int8 cut the bytes 2x and 4x and come back within the rounding of their difference', () => {
    const full = encodeTensors(trained).byteLength
    for (const [compression, ratio, tolerance] of [['fp16', 2, 0.01 * 2 ** -11], ['int8', 4, 0.005 / 127]] as Array<[Compression, number, number]>) {
      const bytes = encodeUpdate(trained, base, baseHash, compression)
      expect(full / bytes.byteLength, compression).to.be.within(0.95 * ratio, 1.05 * ratio)
      const decoded = decodeUpdate(bytes, base, baseHash)
      expect(decoded.map(t => [t.name, t.shape])).to.deep.equal(trained.map(t => [t.name, t.shape]))
      // the difference's rounding, plus float32's rounding of weights near 0.5
      expect(maxError(decoded, trained), compression).to.be.below(tolerance + 2 ** -24)
    }
  })

  it('decode to the same bytes on every peer, and encode deterministically', () => {
    for (const compression of ['fp16', 'int8'] as Compression[]) {
      const a = encodeUpdate(trained, base, baseHash, compression)
      expect(a).to.deep.equal(encodeUpdate(structuredClone(trained), structuredClone(base), baseHash, compression))
      expect(encodeTensors(decodeUpdate(a, base, baseHash))).to.deep.equal(encodeTensors(decodeUpdate(a.slice(), structuredClone(base), baseHash)))
    }
  })

  it('carry what rounding leaves out into the next update (error feedback), so the sum of what is sent tracks the sum of the differences', () => {
    for (const compression of ['fp16', 'int8'] as Compression[]) {
      const residual = trained.map(t => ({ ...t, values: new Float32Array(t.values.length) }))
      const sent = trained.map(t => new Float64Array(t.values.length))
      const rounds = 20
      for (let r = 0; r < rounds; r++) {
        const decoded = decodeUpdate(encodeUpdate(trained, base, baseHash, compression, residual), base, baseHash)
        decoded.forEach((t, i) => t.values.forEach((v, j) => { sent[i][j] += v - base[i].values[j] }))
      }
      // without feedback the error of the sum grows with the rounds; with it, it stays one rounding
      const worst = Math.max(...sent.map((s, i) => s.reduce((m, v, j) => Math.max(m, Math.abs(v - rounds * (trained[i].values[j] - base[i].values[j]))), 0)))
      expect(worst, compression).to.be.below(compression === 'fp16' ? 1e-5 : 1e-4)
    }
  })

  it('float16: every half value round-trips, halfway values round to even, overflow is infinite and refused', () => {
    // one tensor of every 16-bit pattern but NaNs and -0 (0 + -0 is 0), as a difference from zeros
    const halves = Array.from({ length: 65536 }, (_, h) => h).filter(h => ((h & 0x7c00) !== 0x7c00 || (h & 0x3ff) === 0) && h !== 0x8000)
    const data = new Uint8Array(2 * halves.length)
    halves.forEach((h, i) => { data[2 * i] = h & 0xff; data[2 * i + 1] = h >> 8 })
    const zeros = [{ name: 'w', shape: [halves.length], values: new Float32Array(halves.length) }]
    const blob = encode({ v: 1, base: 'h', tensors: [{ name: 'w', dtype: 'float16', shape: [halves.length], data }] })
    const floats = decodeUpdate(blob, zeros, 'h')
    const again = encodeUpdate(floats, zeros, 'h', 'fp16')
    const back = (decode(again) as { tensors: Array<{ data: Uint8Array }> }).tensors[0].data
    expect(back).to.deep.equal(data)
    // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: to even (1); 1 + 3·2^-11: to even (1 + 2^-9)
    const one = [{ name: 'w', shape: [3], values: Float32Array.from([1 + 2 ** -11, 1 + 3 * 2 ** -11, 70000]) }]
    const zero3 = [{ name: 'w', shape: [3], values: new Float32Array(3) }]
    const rounded = decodeUpdate(encodeUpdate(one, zero3, 'z', 'fp16'), zero3, 'z')[0].values
    expect([...rounded.slice(0, 2)]).to.deep.equal([1, 1 + 2 ** -9])
    expect(findNonFinite(decodeUpdate(encodeUpdate(one, zero3, 'z', 'fp16'), zero3, 'z'))?.value).to.equal(Infinity)
  })

  it('int8: a scale per block of values, so an outlier costs only its block\'s precision', () => {
    const size = 3 * INT8_BLOCK
    const zeros = [{ name: 'w', shape: [size], values: new Float32Array(size) }]
    const weights = [{ name: 'w', shape: [size], values: Float32Array.from({ length: size }, (_, i) => i === 0 ? 100 : 0.001 * Math.sin(i)) }]
    const decoded = decodeUpdate(encodeUpdate(weights, zeros, 'z', 'int8'), zeros, 'z')[0].values
    const errorIn = (from: number, to: number): number => Math.max(...Array.from({ length: to - from }, (_, k) => Math.abs(decoded[from + k] - weights[0].values[from + k])))
    expect(errorIn(INT8_BLOCK, size)).to.be.below(0.001 / 127)
    expect(decoded[0]).to.equal(100)
  })

  describe('from a peer that lies', () => {
    const valid = decode(encodeUpdate(trained, base, baseHash, 'int8')) as { v: number, base: string, tensors: Array<Record<string, unknown>> }
    const forged = (change: (blob: typeof valid) => void): Uint8Array => {
      const blob = structuredClone(valid)
      change(blob)
      return encode(blob)
    }

    it('are refused when they are a difference from another model, or do not fit the model', () => {
      const cases: Array<[Uint8Array, RegExp]> = [
        [forged(b => { b.base = contentHash(new Uint8Array(1)) }), /not from this round's model/],
        [forged(b => { b.tensors.pop() }), /3 tensors for a model of 4/],
        [forged(b => { b.tensors[1].name = 'other' }), /the model's is conv\/bias/],
        [forged(b => { b.tensors[2].shape = [64, 784] }), /has shape/],
        [forged(b => { b.tensors[0].dtype = 'float64' }), /a difference is float16 or int8/],
        [forged(b => { b.tensors[2].data = new Uint8Array(10) }), /50176 int8 values need 50176 bytes/],
        [forged(b => { b.tensors[2].scales = new Uint8Array(3) }), /49 blocks need 196 bytes of scales/],
        [forged(b => { b.tensors[2].dtype = 'float16' }), /50176 float16 values need 100352 bytes/],
        [forged(b => { b.v = 9 }), /version 9/],
        [encode([1, 2]), /not a map/]
      ]
      for (const [bytes, message] of cases) expect(() => decodeUpdate(bytes, base, baseHash)).to.throw(CodecError, message)
    })

    it('decode a NaN or infinite scale to non-finite weights, which every receiver refuses', () => {
      for (const scale of [NaN, Infinity, -Infinity]) {
        const scales = new Uint8Array(new Float32Array(49).fill(1).fill(scale, 7, 8).buffer)
        const weights = decodeUpdate(forged(b => { b.tensors[2].scales = scales }), base, baseHash)
        expect(findNonFinite(weights), String(scale)).to.not.equal(undefined)
      }
    })

    it('cannot make a difference of float32 weights; whole weights are checked as tensor blobs', () => {
      const blob = encode({ v: 1, tensors: [{ name: 'w', dtype: 'float16', shape: [1], data: new Uint8Array(2) }] })
      expect(() => decodeUpdate(blob, base, baseHash)).to.throw(CodecError, /only float32 is accepted/)
    })
  })
})
