// A faster training step for models that are a stack of dense layers (the built-in `mlp`, and
// user models of that shape). Why it is faster, on wasm above all:
// - wasm multiplies with XNNPACK, which first packs the right operand and caches the packing by
//   tensor. Through the layers API the right operand is the kernel, which changes every step, so
//   every step re-packed every kernel (about 1.3 ms of the mlp's 8 ms). Here each kernel is kept
//   transposed, [out, in], as the left operand; activations flow transposed, [features, batch],
//   and only they are packed: a few thousand values instead of 157,000.
// - The gradients are written out (softmax with cross-entropy, relu, the products), about 45
//   operations a step, instead of the layers API's taped graph with its per-step bookkeeping.
// The loss and its gradient are those of `modelLoss` in train.ts; the step is checked against it.
import * as tf from './tf.ts'

interface DenseLayer {
  /** the kernel, transposed: [out, in] */
  kernel: tf.Variable
  /** the bias, [out], if the layer has one */
  bias?: tf.Variable
  relu: boolean
}

export interface DenseStack {
  /** the trained variables, in the stack's own layout: what an optimizer or FedProx acts on */
  variables: tf.Variable[]
  /** one step on a batch: the optimizer applies the gradients; returns the batch's mean loss (kept) */
  step: (xs: tf.Tensor, ys: tf.Tensor, optimizer: tf.Optimizer) => tf.Scalar
  /** writes the trained weights back into the model, in its layout */
  writeBack: () => void
  dispose: () => void
}

let stacksMade = 0

/**
 * The model as a dense stack, with its current weights copied, or undefined where the model is
 * anything else: another layer type, a hidden activation other than relu or linear, a last
 * activation other than softmax, regularizers, constraints or frozen weights. Those train through
 * the layers API as before.
 */
export function denseStack (model: tf.LayersModel): DenseStack | undefined {
  const dense = model.layers.filter(l => l.getClassName() === 'Dense')
  if (dense.length === 0 || model.layers.some(l => !['Dense', 'Flatten'].includes(l.getClassName()))) return undefined
  if (model.layers.some((l, i) => l.getClassName() === 'Flatten' && i > model.layers.indexOf(dense[0]))) return undefined
  if (model.inputs.length !== 1 || model.outputs.length !== 1) return undefined
  if (model.trainableWeights.length !== model.weights.length) return undefined
  for (const [i, layer] of dense.entries()) {
    const config = layer.getConfig()
    const last = i === dense.length - 1
    if (last ? config.activation !== 'softmax' : !['relu', 'linear'].includes(config.activation as string)) return undefined
    for (const key of ['kernelRegularizer', 'biasRegularizer', 'activityRegularizer', 'kernelConstraint', 'biasConstraint']) {
      if (config[key] !== null && config[key] !== undefined) return undefined
    }
  }
  const id = ++stacksMade
  const layers: DenseLayer[] = dense.map((layer, i) => {
    const [kernel, bias] = layer.getWeights()
    const transposed = kernel.transpose()
    const variable = tf.variable(transposed, true, `dml-dense-stack-${id}-kernel-${i}`)
    transposed.dispose() // the variable holds its own reference to the data
    return {
      kernel: variable,
      bias: bias === undefined ? undefined : tf.variable(bias, true, `dml-dense-stack-${id}-bias-${i}`),
      relu: layer.getConfig().activation === 'relu'
    }
  })
  const variables = layers.flatMap(l => l.bias === undefined ? [l.kernel] : [l.kernel, l.bias])

  function step (xs: tf.Tensor, ys: tf.Tensor, optimizer: tf.Optimizer): tf.Scalar {
    return tf.tidy(() => {
      const n = xs.shape[0]
      const x = xs.reshape([n, -1]) as tf.Tensor2D
      // forward, transposed: the input of each layer ([in, n]) is kept for the backward pass
      const inputs: tf.Tensor2D[] = []
      let activation = x.transpose() as tf.Tensor2D
      for (const [i, layer] of layers.entries()) {
        inputs.push(activation)
        let z: tf.Tensor2D = tf.matMul(layer.kernel as tf.Tensor2D, activation)
        if (layer.bias !== undefined) z = tf.add(z, layer.bias.reshape([-1, 1]))
        activation = i < layers.length - 1 && layer.relu ? tf.relu(z) : z
      }
      const probs = tf.softmax(activation.transpose())
      const loss = tf.neg(tf.div(tf.sum(tf.mul(ys, tf.log(tf.clipByValue(probs, 1e-7, 1 - 1e-7)))), n)) as tf.Scalar
      // backward: d(loss)/d(logits) of softmax with cross-entropy is (probs - ys) / n
      let delta = tf.div(tf.sub(probs, ys), n).transpose() as tf.Tensor2D // [out, n]
      const gradients: tf.NamedTensorMap = {}
      for (let i = layers.length - 1; i >= 0; i--) {
        const layer = layers[i]
        gradients[layer.kernel.name] = tf.matMul(delta, i === 0 ? x : inputs[i].transpose() as tf.Tensor2D)
        if (layer.bias !== undefined) gradients[layer.bias.name] = tf.sum(delta, 1)
        if (i === 0) break
        delta = tf.matMul(layer.kernel.transpose() as tf.Tensor2D, delta)
        // inputs[i] is the previous layer's output: relu passes the gradient where it is positive
        if (layers[i - 1].relu) delta = tf.mul(delta, tf.step(inputs[i]))
      }
      optimizer.applyGradients(gradients)
      return loss
    })
  }

  function writeBack (): void {
    const kernels = layers.map(l => tf.tidy(() => l.kernel.transpose()))
    model.setWeights(layers.flatMap((l, i) => l.bias === undefined ? [kernels[i]] : [kernels[i], l.bias]))
    tf.dispose(kernels)
  }

  return { variables, step, writeBack, dispose: () => { tf.dispose(variables) } }
}
