// The tab's TensorFlow.js backend, in the order backendOrder gives from what the browser shows of
// its GPU (backend-order.ts): WebGPU or WebGL on a real GPU, else wasm with dml's kernels, else
// tfjs's plain JavaScript.
import '@tensorflow/tfjs-backend-wasm'
import '@tensorflow/tfjs-backend-webgpu'
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm'
import { installKernels, tf } from '@dml/trainer/browser'
import { backendOrder, type GpuSeen, type TabBackendName } from './backend-order.ts'

export interface TabBackend {
  backend: TabBackendName
  source: string
  /** why the ones before it were passed over */
  skipped: string[]
}

/** The GPU's renderer as WebGL names it, if the browser has WebGL at all. */
function webglRenderer (): string | undefined {
  const gl = document.createElement('canvas').getContext('webgl2') ?? document.createElement('canvas').getContext('webgl')
  if (gl === null) return undefined
  const info = gl.getExtension('WEBGL_debug_renderer_info')
  return String(gl.getParameter(info === null ? gl.RENDERER : info.UNMASKED_RENDERER_WEBGL))
}

interface Adapter { isFallbackAdapter?: boolean, info?: { isFallbackAdapter?: boolean, vendor?: string, architecture?: string, description?: string } }

/** WebGPU's adapter as backendOrder takes it, or why there is none (no WebGPU: an older browser, or a page not in a secure context). */
async function webgpuAdapter (): Promise<GpuSeen['webgpu']> {
  const gpu = (navigator as unknown as { gpu?: { requestAdapter: () => Promise<Adapter | null> } }).gpu
  if (gpu === undefined) return { none: isSecureContext ? 'this browser has none' : 'this page is not a secure context (https, or localhost)' }
  try {
    const adapter = await gpu.requestAdapter()
    if (adapter === null) return { none: 'no adapter (no GPU it can use)' }
    const info = adapter.info ?? {}
    return { name: [info.vendor, info.architecture, info.description].filter(s => s !== undefined && s !== '').join(' '), fallback: adapter.isFallbackAdapter === true || info.isFallbackAdapter === true }
  } catch (err) {
    return { none: `its adapter failed (${(err as Error).message})` }
  }
}

const SOURCES: Record<TabBackendName, (renderer?: string) => string> = {
  webgpu: () => '@tensorflow/tfjs-backend-webgpu',
  webgl: (renderer) => `@tensorflow/tfjs-backend-webgl (${renderer ?? 'WebGL'})`,
  wasm: () => '@tensorflow/tfjs-backend-wasm',
  cpu: () => '@tensorflow/tfjs (cpu)'
}

/**
 * A training step of a dense layer on the backend just set, read back: a GPU backend that starts may
 * still fail at its first real work (a driver's fault, a feature missing), and a tab that fails its
 * work is benched for rounds. So it fails here instead, and the next backend is tried.
 */
async function trainingStep (): Promise<void> {
  const [x, w] = [tf.randomNormal([32, 784]), tf.randomNormal([784, 128], 0, 0.05)]
  const [y, dw] = [tf.sum(tf.relu(tf.matMul(x, w))), tf.grad((v) => tf.sum(tf.relu(tf.matMul(x, v))))(w)]
  try {
    const [loss, grad] = await Promise.all([y.data(), dw.data()])
    if (!Number.isFinite(loss[0]) || !Number.isFinite(grad[0])) throw new Error('a training step gave a value that is not finite')
  } finally {
    tf.dispose([x, w, y, dw])
  }
}

/** `wasmFrom`: where the node serves tfjs's .wasm files. */
export async function chooseTabBackend (wasmFrom: string, prefer?: string): Promise<TabBackend> {
  const renderer = webglRenderer()
  const { candidates, skipped } = backendOrder({ webgpu: await webgpuAdapter(), ...(renderer !== undefined ? { webglRenderer: renderer } : {}) }, prefer)
  setWasmPaths(wasmFrom)
  for (const backend of candidates) {
    try {
      if (!await tf.setBackend(backend)) throw new Error('did not initialise')
      await tf.ready()
      installKernels(backend)
      if (backend === 'webgpu' || backend === 'webgl') await trainingStep()
      return { backend, source: SOURCES[backend](renderer), skipped }
    } catch (err) {
      skipped.push(`${backend}: ${(err as Error).message}`)
    }
  }
  throw new Error(`no TensorFlow.js backend works in this browser: ${skipped.join('; ')}`)
}
