import { expect } from 'chai'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { candidateOrder, chooseBackend, oneThreadPerOperation, type BackendCandidate } from '@dml/trainer'

function fake (source: string, backend: string, device: 'gpu' | 'cpu', works: boolean): BackendCandidate {
  return { source, backend, device, load: async () => { if (!works) throw new Error(`Cannot find package '${source}'`) } }
}
const activate = async (): Promise<boolean> => true

describe('backend selection', () => {
  it('importing the trainer and computing on tfjs\'s cpu backend prints nothing: no banner telling to install tfjs-node', async () => {
    const script = "import { tf } from '@dml/trainer'; await tf.setBackend('cpu'); tf.tensor([1, 2, 3]).dataSync(); console.log('done')"
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { cwd: fileURLToPath(new URL('.', import.meta.url)), timeout: 60_000 })
    expect(stdout.trim()).to.equal('done')
    expect(stderr).to.equal('')
  })

  it('tries tfjs-node-gpu first with --gpu, and never with --cpu or by default', () => {
    expect(candidateOrder('gpu').map(c => c.source)).to.deep.equal(['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node', '@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs (cpu)'])
    expect(candidateOrder('cpu').map(c => c.source)).to.deep.equal(['@tensorflow/tfjs-node', '@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs (cpu)'])
    expect(candidateOrder('auto')).to.deep.equal(candidateOrder('cpu'))
  })

  it('uses the GPU build when it loads, and reports the device as gpu', async () => {
    const choice = await chooseBackend('gpu', [fake('gpu-pkg', 'tensorflow', 'gpu', true), fake('cpu-pkg', 'tensorflow', 'cpu', true)], activate)
    expect(choice).to.include({ source: 'gpu-pkg', device: 'gpu', backend: 'tensorflow' })
    expect(choice.warning).to.equal(undefined)
  })

  it('falls back from a missing GPU build and says so plainly', async () => {
    const choice = await chooseBackend('gpu', [fake('gpu-pkg', 'tensorflow', 'gpu', false), fake('wasm-pkg', 'wasm', 'cpu', true)], activate)
    expect(choice).to.include({ source: 'wasm-pkg', device: 'cpu' })
    expect(choice.warning).to.match(/--gpu was asked for but .* could not be loaded .*Cannot find package 'gpu-pkg'.*training on the CPU/)
  })

  it('skips a backend that loads but does not initialise', async () => {
    const choice = await chooseBackend('auto', [fake('native', 'tensorflow', 'cpu', true), fake('wasm-pkg', 'wasm', 'cpu', true)], async (name) => name === 'wasm')
    expect(choice.source).to.equal('wasm-pkg')
    expect(choice.failures[0]).to.match(/did not initialise/)
  })

  it('fails with every reason when nothing loads', async () => {
    try {
      await chooseBackend('auto', [fake('a', 'x', 'cpu', false), fake('b', 'y', 'cpu', false)], activate)
      expect.fail('should throw')
    } catch (err) {
      expect((err as Error).message).to.match(/no TensorFlow.js backend.*\n.*a.*\n.*b/)
    }
  })

  it('runs tfjs-node\'s operations on one thread each, unless the user set TensorFlow\'s thread variables', () => {
    const unset: Record<string, string | undefined> = {}
    oneThreadPerOperation(unset)
    expect(unset).to.deep.equal({ TF_NUM_INTRAOP_THREADS: '1', TF_NUM_INTEROP_THREADS: '1' })
    const set = { TF_NUM_INTRAOP_THREADS: '4', TF_NUM_INTEROP_THREADS: '2' }
    oneThreadPerOperation(set)
    expect(set).to.deep.equal({ TF_NUM_INTRAOP_THREADS: '4', TF_NUM_INTEROP_THREADS: '2' })
  })

  it('picks wasm on this machine, where tfjs-node is not installed', async () => {
    const { initBackend } = await import('@dml/trainer')
    const choice = await initBackend('auto')
    expect(['tensorflow', 'wasm']).to.include(choice.backend)
  })
})
