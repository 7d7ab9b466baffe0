// The wasm backend has no Conv2DBackpropFilter kernel, so no CNN can train on it. We replace
// Conv2D's gradient (only when wasm is the active backend) with one whose parts are built
// from kernels wasm does have: the filter gradient of a convolution is itself a convolution,
// of the (padded) input with the output gradient, batch and channel axes swapped:
//   dW[kh, kw, ci, co] = sum_{b, oh, ow} x[b, oh*s + kh, ow*s + kw, ci] * dy[b, oh, ow, co]
// which is conv2d(x as [ci, H, W, b], dy as filter [OH, OW, b, co], dilation s), sliced to KH x KW.
// wasm does have Conv2DBackpropInput, but it is about 10x slower than its forward convolution
// (half a second a batch for the 'cnn' model's second layer). At stride 1 the input gradient is
// itself a forward convolution: of dy, padded by the kernel size less the forward padding, with
// the filter turned 180 degrees and its channel axes swapped.
import type { backend_util } from '@tensorflow/tfjs-core'
import * as tf from './tf.ts'

type Pad = 'valid' | 'same' | number | backend_util.ExplicitPadding

export function conv2dFilterGradient (
  x: tf.Tensor4D, dy: tf.Tensor4D, filterShape: [number, number, number, number],
  strides: number | [number, number], pad: Pad, dimRoundingMode?: 'floor' | 'round' | 'ceil'
): tf.Tensor4D {
  return tf.tidy(() => {
    const info = tf.backend_util.computeConv2DInfo(x.shape, filterShape, strides, 1, pad as 'same', dimRoundingMode, false, 'channelsLast')
    const { top, bottom, left, right } = info.padInfo
    const padded = (top | bottom | left | right) === 0 ? x : tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
    const input = tf.transpose(padded, [3, 1, 2, 0]) as tf.Tensor4D // [ci, H, W, b]
    const filter = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D // [OH, OW, b, co]
    const dilation: [number, number] = [info.strideHeight, info.strideWidth]
    const full = tf.conv2d(input, filter, 1, 'valid', 'NHWC', dilation) // [ci, >=KH, >=KW, co]
    const [kh, kw] = filterShape
    const cropped = full.slice([0, 0, 0, 0], [-1, kh, kw, -1])
    return tf.transpose(cropped, [1, 2, 0, 3]) as tf.Tensor4D // [KH, KW, ci, co]
  })
}

/** dx of a stride-1 convolution, as a forward convolution (see above); other strides keep tfjs's kernel. */
export function conv2dInputGradient (
  dy: tf.Tensor4D, filter: tf.Tensor4D, xShape: [number, number, number, number],
  strides: number | [number, number], pad: Pad, dimRoundingMode?: 'floor' | 'round' | 'ceil'
): tf.Tensor4D {
  const info = tf.backend_util.computeConv2DInfo(xShape, filter.shape, strides, 1, pad as 'same', dimRoundingMode, false, 'channelsLast')
  if (info.strideHeight !== 1 || info.strideWidth !== 1) return tf.conv2dTranspose(dy, filter, xShape, strides, pad as 'same', dimRoundingMode)
  return tf.tidy(() => {
    const { top, bottom, left, right } = info.padInfo
    const [kh, kw] = filter.shape
    const turned = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D // [KH, KW, co, ci]
    const padded = tf.pad(dy, [[0, 0], [kh - 1 - top, kh - 1 - bottom], [kw - 1 - left, kw - 1 - right], [0, 0]])
    return tf.conv2d(padded, turned, 1, 'valid')
  })
}

let registered = false

/**
 * Replaces Conv2D's gradient with one wasm can run. Other backends keep tfjs's own gradient
 * (their native Conv2DBackpropFilter is faster), even if the process switches backends later.
 */
export function registerWasmConvGradient (): void {
  if (registered) return
  registered = true
  const original = tf.getGradient(tf.Conv2D)
  // the override is deliberate: keep tfjs from warning about it on every start
  const prod = tf.env().getBool('PROD')
  tf.env().set('PROD', true)
  tf.registerGradient({
    kernelName: tf.Conv2D,
    inputsToSave: ['x', 'filter'],
    gradFunc: (dy, saved, attrs) => {
      if (tf.getBackend() !== 'wasm' && original !== undefined) return original.gradFunc(dy, saved, attrs)
      const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D]
      const { strides, pad, dataFormat, dimRoundingMode } = attrs as unknown as tf.Conv2DAttrs
      if (dataFormat !== 'NHWC') throw new Error('the wasm Conv2D gradient supports NHWC only')
      const dy4 = dy as tf.Tensor4D
      return {
        x: () => conv2dInputGradient(dy4, filter, x.shape, strides, pad, dimRoundingMode),
        filter: () => conv2dFilterGradient(x, dy4, filter.shape, strides, pad, dimRoundingMode)
      }
    }
  })
  tf.env().set('PROD', prod)
}
