import { expect } from 'chai'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildModel, initBackend, loadModelFiles, readWeights, saveModelFiles } from '@dml/trainer'

describe('model files (TensorFlow.js layers format)', () => {
  before(async () => { await initBackend('auto') })

  for (const name of ['mlp', 'cnn-small']) {
    it(`${name}: saved and loaded back with the same weights, topology and metadata`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'dml-model-'))
      const model = buildModel(name, { inputShape: [28, 28, 1], numClasses: 10 })
      await saveModelFiles(model, dir, { dml: { round: 7 } })
      const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'))
      expect(json.format).to.equal('layers-model')
      expect(json.weightsManifest[0].paths).to.deep.equal(['weights.bin'])
      const loaded = await loadModelFiles(dir)
      expect(loaded.metadata).to.deep.equal({ dml: { round: 7 } })
      const [a, b] = [readWeights(model), readWeights(loaded.model)]
      expect(b.map(w => w.shape)).to.deep.equal(a.map(w => w.shape))
      for (let i = 0; i < a.length; i++) expect(Array.from(b[i].values)).to.deep.equal(Array.from(a[i].values))
    })
  }

  it('reads weight files only from beside model.json', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dml-model-'))
    await saveModelFiles(buildModel('cnn-small', { inputShape: [28, 28, 1], numClasses: 10 }), dir, {})
    const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'))
    json.weightsManifest[0].paths = ['../../etc/passwd']
    writeFileSync(join(dir, 'model.json'), JSON.stringify(json))
    let error: Error | undefined
    try { await loadModelFiles(dir) } catch (err) { error = err as Error }
    expect(error?.message).to.match(/outside its directory/)
  })
})
