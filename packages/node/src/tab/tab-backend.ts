// The tab's TensorFlow.js backend: WebGL on a real GPU, else the wasm backend with dml's kernels,
// else tfjs's plain JavaScript. A software WebGL (SwiftShader, llvmpipe: what a machine without a
// GPU gives) trains slower than wasm, so it is passed over.
import '@tensorflow/tfjs-backend-wasm'
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm'
import { installKernels, tf } from '@dml/trainer/browser'

export interface TabBackend {
  backend: 'webgl' | 'wasm' | 'cpu'
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

/** `wasmFrom`: where the node serves tfjs's .wasm files. */
export async function chooseTabBackend (wasmFrom: string, prefer?: string): Promise<TabBackend> {
  const skipped: string[] = []
  const renderer = webglRenderer()
  const candidates: Array<TabBackend['backend']> = prefer === 'webgl' || prefer === 'wasm' || prefer === 'cpu' ? [prefer] : []
  if (candidates.length === 0) {
    if (renderer === undefined) skipped.push('webgl: this browser has none')
    else if (/swiftshader|llvmpipe|software/i.test(renderer)) skipped.push(`webgl: ${renderer} is a software renderer`)
    else candidates.push('webgl')
    candidates.push('wasm', 'cpu')
  }
  setWasmPaths(wasmFrom)
  for (const backend of candidates) {
    try {
      if (!await tf.setBackend(backend)) throw new Error('did not initialise')
      await tf.ready()
      installKernels(backend)
      return { backend, source: backend === 'webgl' ? `@tensorflow/tfjs-backend-webgl (${renderer ?? 'WebGL'})` : backend === 'wasm' ? '@tensorflow/tfjs-backend-wasm' : '@tensorflow/tfjs (cpu)', skipped }
    } catch (err) {
      skipped.push(`${backend}: ${(err as Error).message}`)
    }
  }
  throw new Error(`no TensorFlow.js backend works in this browser: ${skipped.join('; ')}`)
}
