// wasm's MaxPoolGrad kernel takes about 3 ms for the gradient of cnn-small's first pooling layer
// (32 x 24 x 24 x 8 values), a quarter of the model's whole training step. This one, in plain
// JavaScript over the wasm heap, takes a sixth of that: for each pooling window it finds the
// first strict maximum, in row-major window order, and adds the window's gradient there. That is
// what tfjs's cpu backend does, ties and padding included; the tests compare the two.
import * as tf from './tf.ts'
import { wasmMaxPoolGrad2x2 } from './wasm-kernels.ts'

type KernelArgs = Parameters<tf.KernelFunc>[0]

/** The parts of the wasm backend this kernel uses: its output allocation and heap views. */
interface WasmHeap {
  makeOutput: (shape: number[], dtype: tf.DataType) => tf.TensorInfo
  typedArrayFromHeap: (info: tf.TensorInfo) => Float32Array
}

let registered = false

/** Replaces wasm's MaxPoolGrad once; a no-op where wasm is not registered. */
export function registerWasmMaxPoolGrad (): void {
  if (registered) return
  const original = tf.getKernel('MaxPoolGrad', 'wasm')
  if (original === undefined) return
  registered = true
  tf.unregisterKernel('MaxPoolGrad', 'wasm')
  tf.registerKernel({ ...original, setupFunc: undefined, kernelFunc: maxPoolGrad })
}

function maxPoolGrad ({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { dy, input } = inputs as { dy: tf.TensorInfo, input: tf.TensorInfo }
  const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as tf.MaxPoolGradAttrs
  const info = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], filterSize, strides, 1, pad, dimRoundingMode)
  const heap = backend as unknown as WasmHeap
  const dx = heap.makeOutput(input.shape, 'float32')
  const { batchSize, inHeight, inWidth, inChannels: channels, outHeight, outWidth, strideHeight, strideWidth, dilationHeight, dilationWidth, effectiveFilterHeight, effectiveFilterWidth } = info
  const { top, left } = info.padInfo
  // every window inside the input: no padding before, none needed after
  const inside = top === 0 && left === 0 && 2 * outHeight <= inHeight && 2 * outWidth <= inWidth
  const tiles = inside && dilationHeight === 1 && dilationWidth === 1 && effectiveFilterHeight === 2 && effectiveFilterWidth === 2 && strideHeight === 2 && strideWidth === 2
  // four channels at a time in wasm-kernels.wat where they divide by 4 (it zeroes dx itself); here otherwise
  if (tiles && outHeight === inHeight >> 1 && outWidth === inWidth >> 1 && wasmMaxPoolGrad2x2(backend, input, dy, dx)) return dx
  // views after the allocation: it may grow the heap, which detaches older views
  const x = heap.typedArrayFromHeap(input)
  const gradient = heap.typedArrayFromHeap(dy)
  const out = heap.typedArrayFromHeap(dx)
  out.fill(0)
  if (tiles) {
    tiles2x2(x, gradient, out, batchSize, inHeight, inWidth, channels, outHeight, outWidth)
    return dx
  }
  let g = 0
  for (let b = 0; b < batchSize; b++) {
    const image = b * inHeight * inWidth * channels
    for (let oh = 0; oh < outHeight; oh++) {
      const h0 = oh * strideHeight - top
      for (let ow = 0; ow < outWidth; ow++) {
        const w0 = ow * strideWidth - left
        for (let c = 0; c < channels; c++, g++) {
          let best = Number.NEGATIVE_INFINITY
          let at = -1
          for (let kh = 0; kh < effectiveFilterHeight; kh += dilationHeight) {
            const h = h0 + kh
            if (h < 0 || h >= inHeight) continue
            for (let kw = 0; kw < effectiveFilterWidth; kw += dilationWidth) {
              const w = w0 + kw
              if (w < 0 || w >= inWidth) continue
              const i = image + (h * inWidth + w) * channels + c
              if (x[i] > best) { best = x[i]; at = i }
            }
          }
          if (at >= 0) out[at] += gradient[g]
        }
      }
    }
  }
  return dx
}

/**
 * The common case, 2x2 windows at stride 2 inside the input (the built-in CNNs): the same choice
 * of maximum, without the general loop's bounds checks. Windows never overlap, so each input
 * takes at most one window's gradient.
 */
function tiles2x2 (x: Float32Array, gradient: Float32Array, out: Float32Array, batchSize: number, inHeight: number, inWidth: number, channels: number, outHeight: number, outWidth: number): void {
  const row = inWidth * channels
  let g = 0
  for (let b = 0; b < batchSize; b++) {
    const image = b * inHeight * row
    for (let oh = 0; oh < outHeight; oh++) {
      for (let ow = 0; ow < outWidth; ow++) {
        const corner = image + 2 * oh * row + 2 * ow * channels
        for (let c = 0; c < channels; c++, g++) {
          // row-major window order: (0,0), (0,1), (1,0), (1,1); a later one wins only if strictly greater
          const i00 = corner + c
          const i01 = i00 + channels
          const i10 = i00 + row
          const i11 = i10 + channels
          let at = -1
          let best = Number.NEGATIVE_INFINITY
          if (x[i00] > best) { best = x[i00]; at = i00 }
          if (x[i01] > best) { best = x[i01]; at = i01 }
          if (x[i10] > best) { best = x[i10]; at = i10 }
          if (x[i11] > best) { at = i11 }
          if (at >= 0) out[at] = gradient[g]
        }
      }
    }
  }
}
