// Which TensorFlow.js backends a tab tries, in order, from what its browser shows of its GPU: a
// real GPU through WebGPU, else through WebGL, else the wasm backend with dml's kernels, else tfjs's
// plain JavaScript. A software GPU (SwiftShader, llvmpipe, WebGPU's fallback adapter: what a
// machine without a GPU gives) trains slower than wasm, so it is passed over unless asked for.

export const TAB_BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'] as const
export type TabBackendName = typeof TAB_BACKENDS[number]

/** What the browser shows of its GPU: WebGPU's adapter (or why there is none) and WebGL's renderer (if it has WebGL). */
export interface GpuSeen {
  webgpu: { name: string, fallback: boolean } | { none: string }
  webglRenderer?: string
}

const SOFTWARE = /swiftshader|llvmpipe|lavapipe|software/i

/** The backends to try, in order, and why the ones left out were; `prefer` (`?backend=`) is tried alone. */
export function backendOrder (seen: GpuSeen, prefer?: string): { candidates: TabBackendName[], skipped: string[] } {
  if ((TAB_BACKENDS as readonly string[]).includes(prefer ?? '')) return { candidates: [prefer as TabBackendName], skipped: [] }
  const candidates: TabBackendName[] = []
  const skipped: string[] = []
  const gpu = seen.webgpu
  if ('none' in gpu) skipped.push(`webgpu: ${gpu.none}`)
  else if (gpu.fallback || SOFTWARE.test(gpu.name)) skipped.push(`webgpu: ${gpu.name === '' ? 'the adapter' : gpu.name} is a software fallback`)
  else candidates.push('webgpu')
  if (seen.webglRenderer === undefined) skipped.push('webgl: this browser has none')
  else if (SOFTWARE.test(seen.webglRenderer)) skipped.push(`webgl: ${seen.webglRenderer} is a software renderer`)
  else candidates.push('webgl')
  candidates.push('wasm', 'cpu')
  return { candidates, skipped }
}
