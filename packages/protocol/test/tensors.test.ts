import { expect } from 'chai'
import { encode } from 'cborg'
import { assertSameShapes, CodecError, contentHash, decodeTensors, encodeTensors, findNonFinite, joinChunks, splitChunks, type NamedTensor } from '@dml/protocol'

describe('tensor blobs', () => {
  const tensors = [
    { name: 'w0', shape: [2, 3], values: Float32Array.from([1, 2, 3, 4, 5, -6.5]) },
    { name: 'w1', shape: [3], values: Float32Array.from([0.1, 0.2, 0.3]) }
  ]

  it('round-trip names, shapes and values exactly', () => {
    expect(decodeTensors(encodeTensors(tensors))).to.deep.equal(tensors)
  })

  it('encode deterministically, so equal weights have equal content hashes', () => {
    expect(contentHash(encodeTensors(tensors))).to.equal(contentHash(encodeTensors(structuredClone(tensors))))
  })

  it('reject data whose length does not match the shape', () => {
    const blob = encode({ v: 1, tensors: [{ name: 'w0', dtype: 'float32', shape: [2, 3], data: new Uint8Array(20) }] })
    expect(() => decodeTensors(blob)).to.throw(CodecError, /24 bytes/)
  })

  it('reject other dtypes, bad shapes, empty lists and non-maps', () => {
    const cases = [
      { v: 1, tensors: [{ name: 'w', dtype: 'float64', shape: [1], data: new Uint8Array(8) }] },
      { v: 1, tensors: [{ name: 'w', dtype: 'float32', shape: [-1], data: new Uint8Array(4) }] },
      { v: 1, tensors: [] },
      { v: 2, tensors: [{ name: 'w', dtype: 'float32', shape: [1], data: new Uint8Array(4) }] },
      [1, 2]
    ]
    for (const c of cases) expect(() => decodeTensors(encode(c as any))).to.throw(CodecError)
  })

  it('check shapes against a reference model', () => {
    expect(() => assertSameShapes(tensors, tensors)).not.to.throw()
    expect(() => assertSameShapes(tensors, [tensors[0]])).to.throw(CodecError)
    expect(() => assertSameShapes(tensors, [tensors[0], { name: 'w1', shape: [4] }])).to.throw(CodecError, /shape/)
  })
})

describe('chunks', () => {
  it('split into pieces of at most the chunk size and join back', () => {
    const bytes = Uint8Array.from({ length: 10_000 }, (_, i) => i % 251)
    const chunks = splitChunks(bytes, 4096)
    expect(chunks.map(c => c.byteLength)).to.deep.equal([4096, 4096, 1808])
    expect(joinChunks(chunks)).to.deep.equal(bytes)
    expect(splitChunks(new Uint8Array(0))).to.deep.equal([])
    expect(() => splitChunks(bytes, 0)).to.throw(RangeError)
  })
})

describe('findNonFinite', () => {
  it('finds NaN and both infinities, and nothing in finite tensors', () => {
    const t = (values: number[]): NamedTensor[] => [{ name: 'a', shape: [1], values: Float32Array.from([1]) }, { name: 'b', shape: [values.length], values: Float32Array.from(values) }]
    expect(findNonFinite(t([0, -3.4e38, 3.4e38, 1e-45]))).to.equal(undefined)
    expect(findNonFinite(t([0, NaN]))).to.deep.include({ tensor: 'b', index: 1 })
    expect(findNonFinite(t([Infinity]))).to.deep.include({ tensor: 'b', index: 0, value: Infinity })
    expect(findNonFinite(t([1, 2, -Infinity]))).to.deep.include({ index: 2, value: -Infinity })
  })
})
