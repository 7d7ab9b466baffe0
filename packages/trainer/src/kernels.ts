// The kernels dml supplies to a backend, in Node and in a browser tab alike.
import { registerWasmConvGradient } from './wasm-conv-grad.ts'
import { registerWasmMatMul } from './wasm-matmul.ts'
import { registerWasmKernels } from './wasm-kernels.ts'
import { registerWasmMaxPoolGrad } from './wasm-maxpool-grad.ts'

/** On wasm: the convolution gradients it lacks or runs slowly, matrix products without transposed operands, a faster max-pooling gradient. */
export function installKernels (backend: string): void {
  if (backend !== 'wasm') return
  registerWasmConvGradient()
  registerWasmMatMul()
  registerWasmKernels()
  registerWasmMaxPoolGrad()
}
