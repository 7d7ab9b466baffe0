// The wasm backend multiplies matrices and convolves with XNNPACK built for 128-bit wasm SIMD
// without fused multiply-adds: about 24 GFLOP/s for products on this project's machines, and
// 7-20 for cnn-small's convolutions, which are three quarters of a step of the mlp and half of
// cnn-small's. Kernels of our own (wasm-kernels.wat), with relaxed SIMD's fused multiply-add, run the
// same products at about 50 GFLOP/s, in the backend's own memory. Beside them: a sum over every
// axis but the last (a bias gradient), which wasm does with a transpose first; a bias added, with
// relu where asked (wasm broadcasts slowly, and the fused product and convolution of evaluation
// need it after ours); and the gradient of 2x2 max pooling, four channels at a time.
import * as tf from './tf.ts'
import { WASM_KERNELS } from './wasm-kernels-binary.ts'

/** The module's functions; addresses are bytes of the backend's memory (wasm-kernels.wat says what each takes). */
interface Kernels {
  gemm: (a: number, b: number, c: number, m: number, k: number, n: number) => void
  conv2d: (x: number, w: number, out: number, batch: number, h: number, wd: number, ci: number, kh: number, kw: number, co: number) => void
  colsum: (x: number, out: number, rows: number, cols: number) => void
  biasact: (x: number, bias: number, out: number, rows: number, cols: number, relu: number) => void
  maxpoolgrad2x2: (x: number, dy: number, dx: number, batch: number, h: number, w: number, ch: number) => void
  momentum: (w: number, acc: number, g: number, out: number, n: number, lr: number, mu: number) => void
}

/** What dml reads of the wasm backend: its memory, and where each tensor's data sits in it. */
interface WasmBackend {
  wasm: { asm?: { memory?: unknown } }
  dataIdMap: { get: (dataId: object) => { memoryOffset: number } | undefined }
  makeOutput: (shape: number[], dtype: 'float32') => tf.TensorInfo
  disposeData: (dataId: object) => void
}

const bytes = Uint8Array.from(atob(WASM_KERNELS), c => c.charCodeAt(0))
/** Without relaxed SIMD (older engines) the module does not validate, and XNNPACK keeps every kernel. */
const compiled = WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : undefined
const instances = new WeakMap<WebAssembly.Memory, Kernels>()

/** The kernels on this backend's memory, or undefined where they cannot run. */
function kernelsOf (backend: unknown): Kernels | undefined {
  const memory = (backend as WasmBackend).wasm?.asm?.memory
  if (compiled === undefined || !(memory instanceof WebAssembly.Memory)) return undefined
  let kernels = instances.get(memory)
  if (kernels === undefined) {
    kernels = new WebAssembly.Instance(compiled, { env: { memory } }).exports as unknown as Kernels
    instances.set(memory, kernels)
  }
  return kernels
}

/** How often each kernel ran, for tests that a shape is ours or XNNPACK's. */
export const wasmKernelRuns = { gemm: 0, conv2d: 0, colsum: 0, biasact: 0, maxpoolgrad2x2: 0, momentum: 0 }

const address = (backend: unknown, t: tf.TensorInfo): number => (backend as WasmBackend).dataIdMap.get(t.dataId)!.memoryOffset

/** A shape's last size, and the product of the others: the rows and columns a row-wise kernel sees. */
function rowsAndColumns (shape: number[]): [number, number] {
  return [shape.slice(0, -1).reduce((p, q) => p * q, 1), shape[shape.length - 1]]
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
  const kernels = kernelsOf(backend)
  if (kernels === undefined) return undefined
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
  const [pa, pb, pc] = [address(backend, a), address(backend, b), address(backend, out)]
  wasmKernelRuns.gemm++
  for (let i = 0; i < batch; i++) {
    kernels.gemm(pa + (batchA === 1 ? 0 : i * m * k * 4), pb + (batchB === 1 ? 0 : i * k * n * 4), pc + i * m * n * 4, m, k, n)
  }
  return out
}

/**
 * A convolution (wasm's Conv2D kernel: x [batch, h, w, ci], filter [kh, kw, ci, co]) as a new
 * tensor of the backend, or undefined where it does not apply: NCHW, a stride or dilation other
 * than 1, co not a multiple of 8, another dtype. Padding is added first, by wasm's own kernel.
 */
export function wasmConv2d (backend: unknown, x: tf.TensorInfo, filter: tf.TensorInfo, attrs: tf.Conv2DAttrs): tf.TensorInfo | undefined {
  const kernels = kernelsOf(backend)
  if (kernels === undefined || x.dtype !== 'float32' || filter.dtype !== 'float32' || attrs.dataFormat !== 'NHWC') return undefined
  const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filter.shape as [number, number, number, number],
    attrs.strides, attrs.dilations, attrs.pad as 'same', attrs.dimRoundingMode, false, 'channelsLast')
  if (info.strideHeight !== 1 || info.strideWidth !== 1 || info.dilationHeight !== 1 || info.dilationWidth !== 1) return undefined
  if (info.outChannels % 8 !== 0 || info.outHeight < 1 || info.outWidth < 1 || info.batchSize < 1 || info.inChannels < 1) return undefined
  const wasm = backend as WasmBackend
  const { top, bottom, left, right } = info.padInfo
  const padded = (top | bottom | left | right) === 0
    ? x
    : tf.getKernel('PadV2', 'wasm')!.kernelFunc({ inputs: { x }, backend: backend as tf.KernelBackend, attrs: { paddings: [[0, 0], [top, bottom], [left, right], [0, 0]], constantValue: 0 } }) as tf.TensorInfo
  try {
    const [batch, h, w, ci] = padded.shape
    const out = wasm.makeOutput([batch, info.outHeight, info.outWidth, info.outChannels], 'float32')
    wasmKernelRuns.conv2d++
    kernels.conv2d(address(backend, padded), address(backend, filter), address(backend, out), batch, h, w, ci, info.filterHeight, info.filterWidth, info.outChannels)
    return out
  } finally {
    if (padded !== x) wasm.disposeData(padded.dataId)
  }
}

/**
 * The sum of x over every axis but its last (wasm's Sum kernel, as a convolution's or a dense
 * layer's bias gradient asks for it), or undefined for any other sum: other axes, another dtype,
 * a last axis not a multiple of 4, an empty x.
 */
export function wasmColumnSum (backend: unknown, x: tf.TensorInfo, axis: number | number[], keepDims: boolean): tf.TensorInfo | undefined {
  const kernels = kernelsOf(backend)
  const rank = x.shape.length
  if (kernels === undefined || x.dtype !== 'float32' || rank < 2) return undefined
  const axes = [...new Set((Array.isArray(axis) ? axis : [axis]).map(a => a < 0 ? a + rank : a))].sort((p, q) => p - q)
  if (axes.length !== rank - 1 || axes.some((a, i) => a !== i)) return undefined
  const [rows, cols] = rowsAndColumns(x.shape)
  if (cols % 4 !== 0 || cols === 0 || rows === 0) return undefined
  const out = (backend as WasmBackend).makeOutput(keepDims ? [...x.shape.slice(0, -1).map(() => 1), cols] : [cols], 'float32')
  wasmKernelRuns.colsum++
  kernels.colsum(address(backend, x), address(backend, out), rows, cols)
  return out
}

/** The activations the fused kernels below take; others stay with XNNPACK. */
const ACTIVATIONS: Record<string, number> = { linear: 0, relu: 1 }

/**
 * Whether a fused kernel's bias and activation can follow our product: a float32 rank-1 bias of
 * the output's last size, a multiple of 4 (or none), linear or relu, no prelu weights.
 */
function fusable (bias: tf.TensorInfo | undefined, prelu: tf.TensorInfo | undefined, activation: string | undefined, cols: number): boolean {
  return ACTIVATIONS[activation ?? 'linear'] !== undefined && prelu === undefined && cols % 4 === 0 &&
    (bias === undefined || (bias.dtype === 'float32' && bias.shape.length === 1 && bias.shape[0] === cols))
}

/** Adds the bias and applies the activation in place, over `out`'s rows of its last size. */
function biasAndActivation (backend: unknown, out: tf.TensorInfo, bias: tf.TensorInfo | undefined, activation: string | undefined): void {
  const relu = ACTIVATIONS[activation ?? 'linear']
  if (bias === undefined && relu === 0) return
  const [rows, cols] = rowsAndColumns(out.shape)
  if (rows === 0) return
  const kernels = kernelsOf(backend)!
  const at = address(backend, out)
  // no bias: a zero row, made once per call (a few hundred bytes at most)
  const zeros = bias === undefined ? (backend as WasmBackend).makeOutput([cols], 'float32') : undefined
  try {
    if (zeros !== undefined) new Float32Array(((backend as WasmBackend).wasm.asm!.memory as WebAssembly.Memory).buffer, address(backend, zeros), cols).fill(0)
    wasmKernelRuns.biasact++
    kernels.biasact(at, address(backend, bias ?? zeros!), at, rows, cols, relu)
  } finally {
    if (zeros !== undefined) (backend as WasmBackend).disposeData(zeros.dataId)
  }
}

/** wasm's _FusedMatMul with plain operands: our product, then the bias and activation; or undefined. */
export function wasmFusedMatMul (backend: unknown, a: tf.TensorInfo, b: tf.TensorInfo, bias: tf.TensorInfo | undefined, prelu: tf.TensorInfo | undefined, activation: string | undefined): tf.TensorInfo | undefined {
  if (!fusable(bias, prelu, activation, b.shape[b.shape.length - 1])) return undefined
  const out = wasmGemm(backend, a, b)
  if (out !== undefined) biasAndActivation(backend, out, bias, activation)
  return out
}

/** wasm's FusedConv2D (evaluation's convolutions): our convolution, then the bias and activation; or undefined. */
export function wasmFusedConv2d (backend: unknown, x: tf.TensorInfo, filter: tf.TensorInfo, bias: tf.TensorInfo | undefined, prelu: tf.TensorInfo | undefined, attrs: tf.FusedConv2DAttrs): tf.TensorInfo | undefined {
  if (!fusable(bias, prelu, attrs.activation, filter.shape[3])) return undefined
  const out = wasmConv2d(backend, x, filter, attrs)
  if (out !== undefined) biasAndActivation(backend, out, bias, attrs.activation)
  return out
}

/**
 * x [..., c] + bias [c] (either way round), as a convolution's or dense layer's bias is added in
 * training; or undefined for any other sum: wasm broadcasts it, about 10 times slower.
 */
export function wasmBiasAdd (backend: unknown, a: tf.TensorInfo, b: tf.TensorInfo): tf.TensorInfo | undefined {
  const [x, bias] = b.shape.length === 1 && a.shape.length > 1 ? [a, b] : a.shape.length === 1 && b.shape.length > 1 ? [b, a] : []
  const kernels = kernelsOf(backend)
  if (x === undefined || bias === undefined || kernels === undefined || x.dtype !== 'float32' || bias.dtype !== 'float32') return undefined
  const [rows, cols] = rowsAndColumns(x.shape)
  if (bias.shape[0] !== cols || cols % 4 !== 0 || cols === 0 || rows === 0) return undefined
  const out = (backend as WasmBackend).makeOutput(x.shape, 'float32')
  wasmKernelRuns.biasact++
  kernels.biasact(address(backend, x), address(backend, bias), address(backend, out), rows, cols, 0)
  return out
}

/**
 * The gradient of 2x2 max pooling at stride 2 with every window inside the input, into `dx`
 * (allocated, the input's shape), four channels at a time: true, or false where it does not
 * apply (channels not a multiple of 4, another dtype) and nothing was written.
 */
export function wasmMaxPoolGrad2x2 (backend: unknown, input: tf.TensorInfo, dy: tf.TensorInfo, dx: tf.TensorInfo): boolean {
  const kernels = kernelsOf(backend)
  const [batch, h, w, ch] = input.shape
  if (kernels === undefined || input.dtype !== 'float32' || dy.dtype !== 'float32' || ch % 4 !== 0 || batch < 1 || h < 2 || w < 2) return false
  wasmKernelRuns.maxpoolgrad2x2++
  kernels.maxpoolgrad2x2(address(backend, input), address(backend, dy), address(backend, dx), batch, h, w, ch)
  return true
}

/** One step of SGD with momentum on a variable: its new value, a new tensor; `acc` is updated in place. */
export type MomentumStep = (w: tf.Tensor, acc: tf.Tensor, g: tf.Tensor, lr: number, mu: number) => tf.Tensor

/**
 * SGD with momentum as tfjs's MomentumOptimizer steps (not Nesterov), one pass a variable instead
 * of its four operations and two assignments (about 15% of an mlp step on wasm); or undefined
 * where the kernels do not run on the active backend. The accumulator `acc` is the caller's own
 * (no other tensor may share its data: it is written in place); the new weights are a new tensor,
 * as a variable's data may be shared with its clones.
 */
export function wasmMomentum (): MomentumStep | undefined {
  const backend = tf.engine().backend
  const kernels = kernelsOf(backend)
  if (kernels === undefined) return undefined
  return (w, acc, g, lr, mu) => {
    if (w.dtype !== 'float32' || acc.dtype !== 'float32' || g.dtype !== 'float32' || acc.size !== w.size || g.size !== w.size) throw new Error('momentum: operands of another dtype or size')
    const out = (backend as unknown as WasmBackend).makeOutput(w.shape, 'float32')
    wasmKernelRuns.momentum++
    kernels.momentum(address(backend, w), address(backend, acc), address(backend, g), address(backend, out), w.size, lr, mu)
    return tf.engine().makeTensorFromTensorInfo(out)
  }
}

let registered = false

/**
 * Puts the convolutions, the sum and the bias sum above in front of wasm's own Conv2D,
 * FusedConv2D, Sum and Add (theirs run where ours do not apply), once; a no-op without wasm.
 * The products are wasm-matmul.ts's, which also reads transposed operands.
 */
export function registerWasmKernels (): void {
  if (registered) return
  const ours: Record<string, (args: KernelArgs) => tf.TensorInfo | undefined> = {
    Conv2D: args => wasmConv2d(args.backend, args.inputs.x!, args.inputs.filter!, args.attrs as unknown as tf.Conv2DAttrs),
    FusedConv2D: args => wasmFusedConv2d(args.backend, args.inputs.x!, args.inputs.filter!, args.inputs.bias, args.inputs.preluActivationWeights, args.attrs as unknown as tf.FusedConv2DAttrs),
    Sum: args => {
      const { axis, keepDims } = args.attrs as unknown as { axis: number | number[], keepDims: boolean }
      return wasmColumnSum(args.backend, args.inputs.x!, axis, keepDims)
    },
    Add: args => wasmBiasAdd(args.backend, args.inputs.a!, args.inputs.b!)
  }
  for (const [name, kernel] of Object.entries(ours)) {
    const original = tf.getKernel(name, 'wasm')
    if (original === undefined) continue
    registered = true
    tf.unregisterKernel(name, 'wasm')
    tf.registerKernel({ ...original, kernelFunc: (args: KernelArgs) => kernel(args) ?? original.kernelFunc(args) })
  }
}

type KernelArgs = Parameters<tf.KernelFunc>[0]
