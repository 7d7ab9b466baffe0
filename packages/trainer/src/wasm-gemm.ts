// The wasm backend multiplies matrices with XNNPACK built for 128-bit wasm SIMD without fused
// multiply-adds: about 24 GFLOP/s on this project's machines, where the products are three
// quarters of an mlp step. A product of our own (wasm-gemm.wat), with relaxed SIMD's fused
// multiply-add, runs the same products at about 50 GFLOP/s, in the backend's own memory.
import type * as tf from './tf.ts'
import { GEMM_WASM } from './wasm-gemm-binary.ts'

/** c[m,n] = a[m,k] b[k,n], at byte addresses of the backend's memory; n a multiple of 8, k >= 1. */
type Gemm = (a: number, b: number, c: number, m: number, k: number, n: number) => void

/** What dml reads of the wasm backend: its memory, and where each tensor's data sits in it. */
interface WasmBackend {
  wasm: { asm?: { memory?: unknown } }
  dataIdMap: { get: (dataId: object) => { memoryOffset: number } | undefined }
  makeOutput: (shape: number[], dtype: 'float32') => tf.TensorInfo
}

const bytes = Uint8Array.from(atob(GEMM_WASM), c => c.charCodeAt(0))
/** Without relaxed SIMD (older engines) the module does not validate, and XNNPACK keeps every product. */
const supported = WebAssembly.validate(bytes)
const compiled = supported ? new WebAssembly.Module(bytes) : undefined
const instances = new WeakMap<WebAssembly.Memory, Gemm>()

function gemmFor (memory: WebAssembly.Memory): Gemm {
  let gemm = instances.get(memory)
  if (gemm === undefined) {
    gemm = new WebAssembly.Instance(compiled!, { env: { memory } }).exports.gemm as Gemm
    instances.set(memory, gemm)
  }
  return gemm
}

/** [...batch, rows, columns] as [batch, rows, columns] */
function asBatch (shape: number[]): [number, number, number] {
  return [shape.slice(0, -2).reduce((x, y) => x * y, 1), shape[shape.length - 2], shape[shape.length - 1]]
}

/**
 * a [...batch, m, k] times b [...batch, k, n] (of the same rank; a batch of 1 broadcasts) as a new tensor of the
 * backend, or undefined where this product does not apply: another dtype, n not a multiple of 8,
 * an empty operand, or a backend whose memory it cannot reach.
 */
export function wasmGemm (backend: unknown, a: tf.TensorInfo, b: tf.TensorInfo): tf.TensorInfo | undefined {
  const memory = (backend as WasmBackend).wasm?.asm?.memory
  if (compiled === undefined || !(memory instanceof WebAssembly.Memory)) return undefined
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length !== b.shape.length || a.shape.length < 2) return undefined
  const [batchA, m, k] = asBatch(a.shape)
  const [batchB, kb, n] = asBatch(b.shape)
  // batches of more dimensions than one broadcast only where they are equal
  if (a.shape.length > 3 && a.shape.slice(0, -2).join() !== b.shape.slice(0, -2).join()) return undefined
  if (k !== kb || m === 0 || k === 0 || n === 0 || n % 8 !== 0) return undefined
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) return undefined
  const wasm = backend as WasmBackend
  const batch = Math.max(batchA, batchB)
  const out = wasm.makeOutput([...(batchA >= batchB ? a : b).shape.slice(0, -2), m, n], 'float32')
  const at = (t: tf.TensorInfo): number => wasm.dataIdMap.get(t.dataId)!.memoryOffset
  const [pa, pb, pc] = [at(a), at(b), at(out)]
  const gemm = gemmFor(memory)
  for (let i = 0; i < batch; i++) {
    gemm(pa + (batchA === 1 ? 0 : i * m * k * 4), pb + (batchB === 1 ? 0 : i * k * n * 4), pc + i * m * n * 4, m, k, n)
  }
  return out
}
