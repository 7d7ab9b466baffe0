// The wasm backend's matrix product is fast on plain operands and 3-8x slower when told to read
// one transposed (its transposeA / transposeB flags), which is what every backward pass of a
// dense layer asks for. On wasm we transpose such an operand first, with wasm's own Transpose
// kernel, and multiply the plain operands: same result, a fraction of the time. Plain products
// then run in wasm-kernels.ts where they can, XNNPACK's kernel elsewhere.
import * as tf from './tf.ts'
import { wasmFusedMatMul, wasmGemm } from './wasm-kernels.ts'

type KernelArgs = Parameters<tf.KernelFunc>[0]
type Transposes = { transposeA: boolean, transposeB: boolean }

/** The names of the kernels this file wraps; both take transposeA and transposeB. */
export const WASM_MATMUL_KERNELS = ['BatchMatMul', '_FusedMatMul'] as const

let wrapped = false

/** Wraps wasm's matrix-product kernels once; a no-op where wasm is not registered. */
export function registerWasmMatMul (): void {
  if (wrapped) return
  const transpose = tf.getKernel('Transpose', 'wasm')
  if (transpose === undefined) return
  wrapped = true
  for (const name of WASM_MATMUL_KERNELS) {
    const original = tf.getKernel(name, 'wasm')
    if (original === undefined) continue
    tf.unregisterKernel(name, 'wasm')
    tf.registerKernel({
      ...original,
      kernelFunc: (args: KernelArgs) => {
        const { transposeA, transposeB } = args.attrs as unknown as Transposes
        const backend = args.backend as tf.KernelBackend
        // the plain operands go to wasm-kernels.ts's product where it applies, XNNPACK's elsewhere
        const { activation } = args.attrs as { activation?: string }
        const multiply = (inputs: Record<string, tf.TensorInfo>): tf.TensorInfo | tf.TensorInfo[] =>
          (name === 'BatchMatMul' ? wasmGemm(backend, inputs.a, inputs.b) : wasmFusedMatMul(backend, inputs.a, inputs.b, inputs.bias, inputs.preluActivationWeights, activation)) ??
            original.kernelFunc({ ...args, inputs, attrs: { ...args.attrs, transposeA: false, transposeB: false } })
        if (!transposeA && !transposeB) return multiply(args.inputs as Record<string, tf.TensorInfo>)
        const made: tf.TensorInfo[] = []
        const plain = (t: tf.TensorInfo): tf.TensorInfo => {
          const rank = t.shape.length
          const perm = [...Array(rank - 2).keys(), rank - 1, rank - 2]
          const out = transpose.kernelFunc({ inputs: { x: t }, backend, attrs: { perm } }) as tf.TensorInfo
          made.push(out)
          return out
        }
        const inputs = { ...args.inputs } as Record<string, tf.TensorInfo>
        if (transposeA) inputs.a = plain(inputs.a)
        if (transposeB) inputs.b = plain(inputs.b)
        try {
          return multiply(inputs)
        } finally {
          for (const t of made) backend.disposeData(t.dataId)
        }
      }
    })
  }
}
