import { expect } from 'chai'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync, truncateSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { contentHash, encodeTensors } from '@dml/protocol'
import { DataDirStore, encodeCheckpointFile, loadLatestCheckpoint, parseCheckpoint, loadVote, saveCheckpoint, saveVote, BlobStore, type Checkpoint } from '@dml/node'
import { loadOrCreateIdentity } from '@dml/node/cli'

const task = { model: 'mlp', dataset: 'mnist', input: '28x28x1', classes: 10, inputScale: 255, lr: 0.1, lrSchedule: 'constant', optimizer: 'sgd', proxMu: 0, batchSize: 32, localEpochs: 1, totalRounds: 10, targetAccuracy: 1, strategy: { aggregation: 'fedavg', trim: 0.2, byzantine: 1, clip: 1, normBound: 5, serverOptimizer: 'none', serverLr: 1 }, evalSamples: 100, partition: 'iid' }
function checkpoint (round: number): Checkpoint {
  const model = encodeTensors([{ name: 'w0', shape: [2], values: Float32Array.from([round, -round]) }])
  return { round, term: 1, modelHash: contentHash(model), model, task, history: [], roundCert: new Uint8Array([round]), termCert: new Uint8Array([1]) }
}

describe('checkpoints', () => {
  it('keep the newest two and load the newest', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dml-ckpt-'))
    for (const r of [1, 2, 3]) await saveCheckpoint(dir, checkpoint(r))
    expect(readdirSync(join(dir, 'checkpoints')).sort()).to.deep.equal(['round-000002.cbor', 'round-000003.cbor'])
    const loaded = await loadLatestCheckpoint(dir, () => { throw new Error('nothing is corrupt') })
    expect(loaded?.round).to.equal(3)
    expect(loaded?.modelHash).to.equal(checkpoint(3).modelHash)
    expect(loaded?.roundCert).to.deep.equal(new Uint8Array([3])) // the proof of the round comes back with it
  })

  it('keep the members the rounds proved; a checkpoint whose list of them is not one is corrupt', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dml-ckpt-'))
    await saveCheckpoint(dir, { ...checkpoint(1), proven: [['a', 1], ['b', 1]] })
    expect((await loadLatestCheckpoint(dir, () => { throw new Error('nothing is corrupt') }))?.proven).to.deep.equal([['a', 1], ['b', 1]])
    await saveCheckpoint(dir, { ...checkpoint(2), proven: [['a', -1]] })
    const corrupt: string[] = []
    expect((await loadLatestCheckpoint(dir, err => corrupt.push(err.message)))?.round).to.equal(1)
    expect(corrupt[0]).to.match(/round-000002.*unexpected layout/)
  })

  it('of a task from before the strategy was one record load with it as one', () => {
    // flat, as before protocol 8, and older still: without the server optimizer's fields
    const { strategy, ...rest } = task
    const { serverOptimizer, serverLr, ...older } = strategy
    const old = { ...checkpoint(4), task: { ...rest, ...older, aggregation: 'median' } } as unknown as Checkpoint
    const loaded = parseCheckpoint(encodeCheckpointFile(old), 'old.cbor')
    expect(loaded.task.strategy).to.deep.equal({ ...strategy, aggregation: 'median', serverOptimizer: 'none', serverLr: 1 })
    expect(loaded.task).to.not.have.property('aggregation')
    expect(parseCheckpoint(encodeCheckpointFile(checkpoint(4)), 'new.cbor').task).to.deep.equal(task)
  })

  it('detect a truncated checkpoint and fall back to the previous one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dml-ckpt-'))
    await saveCheckpoint(dir, checkpoint(1))
    const path = await saveCheckpoint(dir, checkpoint(2))
    truncateSync(path, 40)
    const corrupt: string[] = []
    const loaded = await loadLatestCheckpoint(dir, err => corrupt.push(err.message))
    expect(loaded?.round).to.equal(1)
    expect(corrupt[0]).to.match(/round-000002/)
  })

  it('detect a flipped byte (hash mismatch) and fall back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dml-ckpt-'))
    await saveCheckpoint(dir, checkpoint(1))
    const path = await saveCheckpoint(dir, checkpoint(2))
    const bytes = readFileSync(path)
    bytes[bytes.length - 3] ^= 0xff
    writeFileSync(path, bytes)
    const corrupt: string[] = []
    expect((await loadLatestCheckpoint(dir, err => corrupt.push(err.message)))?.round).to.equal(1)
    expect(corrupt[0]).to.match(/corrupt|unreadable|hash/)
  })

  it('start empty when there is no checkpoint', async () => {
    expect(await loadLatestCheckpoint(mkdtempSync(join(tmpdir(), 'dml-ckpt-')), () => {})).to.equal(undefined)
  })
})

describe('the saved vote', () => {
  it('is the last one written, read back after a restart; none before the first', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dml-vote-'))
    const never = (): void => { throw new Error('nothing is corrupt') }
    expect(await loadVote(dir, never)).to.equal(undefined)
    await saveVote(dir, { term: 3, candidate: 'peer-a' })
    await saveVote(dir, { term: 4, candidate: 'peer-b' })
    expect(await loadVote(dir, never)).to.deep.equal({ term: 4, candidate: 'peer-b' })
    expect(readdirSync(dir)).to.deep.equal(['vote.json']) // the temporary file renamed over it
  })

  it('votes saved at once through the data directory are written one after another: the last one is read back whole', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dml-vote-'))
    const store = new DataDirStore(dir)
    await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map(async term => { await store.saveVote({ term, candidate: `candidate-${'x'.repeat(9 - term)}` }) }))
    expect(await loadVote(dir, (err) => { throw err })).to.deep.equal({ term: 8, candidate: 'candidate-x' })
  })

  it('a damaged vote file is reported and ignored, not trusted', async () => {
    for (const text of ['{"term": 4, "cand', '{"term": -1, "candidate": "a"}', '{"term": 2}', 'null', '[]']) {
      const dir = mkdtempSync(join(tmpdir(), 'dml-vote-'))
      writeFileSync(join(dir, 'vote.json'), text)
      const reported: Error[] = []
      expect(await loadVote(dir, (err) => { reported.push(err) }), text).to.equal(undefined)
      expect(reported, text).to.have.length(1)
      expect(reported[0].message).to.include('vote.json')
    }
  })
})

describe('identity', () => {
  it('is created once (mode 0600) and the same peer key is loaded after a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dml-id-'))
    const first = await loadOrCreateIdentity(dir)
    const second = await loadOrCreateIdentity(dir)
    expect(first.created).to.equal(true)
    expect(second.created).to.equal(false)
    expect(second.key.publicKey.toString()).to.equal(first.key.publicKey.toString())
    const { statSync } = await import('node:fs')
    expect(statSync(join(dir, 'identity.key')).mode & 0o777).to.equal(0o600)
  })

  it('names --data-dir when the key can be neither read nor written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dml-id-'))
    mkdirSync(join(dir, 'identity.key')) // a directory where the key should be: unreadable as a file
    try {
      await loadOrCreateIdentity(dir)
      expect.fail('should throw')
    } catch (err) {
      expect((err as Error).name).to.equal('IdentityError')
      expect((err as Error).message).to.match(/cannot read the identity key .*identity\.key in --data-dir: EISDIR/)
    }
  })

  it('refuses a damaged identity file rather than silently replacing it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dml-id-'))
    writeFileSync(join(dir, 'identity.key'), 'garbage')
    try {
      await loadOrCreateIdentity(dir)
      expect.fail('should throw')
    } catch (err) {
      expect((err as Error).name).to.equal('IdentityError')
    }
  })
})

describe('blob store', () => {
  it('addresses blobs by hash and evicts the oldest unpinned ones', () => {
    const store = new BlobStore(2)
    const pinned = store.put(new Uint8Array([0]), true)
    const hashes = [1, 2, 3].map(i => store.put(new Uint8Array([i])))
    expect(store.has(pinned)).to.equal(true)
    expect(store.has(hashes[0])).to.equal(false)
    expect(store.has(hashes[2])).to.equal(true)
    expect(hashes[2]).to.equal(contentHash(new Uint8Array([3])))
  })
})
