// wasm's MaxPoolGrad kernel takes about 3 ms for the gradient of cnn-small's first pooling layer
// (32 x 24 x 24 x 8 values), a quarter of the model's whole training step. This one, in plain
// JavaScript over the wasm heap, takes a tenth of that: for each pooling window it finds the
// first strict maximum, in row-major window order, and adds the window's gradient there. That is
// what tfjs's cpu backend does, ties and padding included; the tests compare the two.
import * as tf from './tf.ts'

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
  // views after the allocation: it may grow the heap, which detaches older views
  const x = heap.typedArrayFromHeap(input)
  const gradient = heap.typedArrayFromHeap(dy)
  const out = heap.typedArrayFromHeap(dx)
  out.fill(0)
  const { batchSize, inHeight, inWidth, inChannels: channels, outHeight, outWidth, strideHeight, strideWidth, dilationHeight, dilationWidth, effectiveFilterHeight, effectiveFilterWidth } = info
  const { top, left } = info.padInfo
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
