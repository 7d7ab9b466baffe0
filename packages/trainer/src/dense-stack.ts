// A faster training step for models that are a stack of dense layers (the built-in `mlp`, and
// user models of that shape). The gradients are written out (softmax with cross-entropy, relu, the
// products): about 30-45 operations a step, instead of the layers API's taped graph with its
// per-step bookkeeping. That matters most where each operation costs tens of microseconds of
// JavaScript and binding (tfjs-node: 70 kernels a step through this file's first version, 46 now).
// The layout follows the backend:
// - wasm multiplies with XNNPACK, which first packs the right operand and caches the packing by
//   tensor. With the kernel on the right, as the layers API has it, every step re-packed every
//   kernel (about 1.3 ms of the mlp's 8 ms). On wasm each kernel is kept transposed, [out, in], as
//   the left operand; activations flow transposed, [features, batch], and only they are packed.
// - Elsewhere kernels keep the model's layout, [in, out]: tfjs-node multiplies transposed operands
//   at no cost, and each explicit transpose would be one more operation.
// The loss and its gradient are those of `modelLoss` in train.ts; the step is checked against it.
import * as tf from './tf.ts'
import { wasmMomentum } from './wasm-kernels.ts'

interface DenseLayer {
  /** the kernel: [out, in] on wasm, [in, out] (the model's layout) elsewhere */
  kernel: tf.Variable
  /** the bias, if the layer has one: [out, 1] on wasm (added as a column to [out, batch], no reshape a step), [out] elsewhere */
  bias?: tf.Variable
  relu: boolean
}

export interface DenseStack {
  /** the trained variables, in the stack's own layout: what an optimizer or FedProx acts on */
  variables: tf.Variable[]
  /** one step on a batch: the optimizer applies the gradients; returns the batch's mean loss (a kept scalar, or read already) */
  step: (xs: tf.Tensor, ys: tf.Tensor, optimizer: tf.Optimizer) => tf.Scalar | number
  /** writes the trained weights back into the model, in its layout */
  writeBack: () => void
  dispose: () => void
}

let stacksMade = 0

/**
 * Softmax, the cross-entropy loss and its gradient, on wasm, in JavaScript: the logits are
 * [classes, batch], a few hundred numbers that wasm hands over as a copy of its memory. As tensor
 * operations they were eleven (two transposes, softmax, five for the loss, two for the gradient),
 * each costing more in dispatch than its arithmetic: about 7% of an mlp step.
 * Returns d(loss)/d(logits) times `scale` (1/batch, times the learning rate for plain SGD), in the
 * logits' layout, and the batch's mean loss, with the probabilities clipped as modelLoss does.
 */
function headOnWasm (logits: tf.Tensor2D, ys: tf.Tensor, scale: number): [tf.Tensor2D, number] {
  const [classes, n] = logits.shape
  const z = logits.dataSync() as Float32Array
  const y = ys.dataSync() as Float32Array // [batch, classes]
  const delta = new Float32Array(classes * n)
  let loss = 0
  for (let j = 0; j < n; j++) {
    let max = -Infinity
    for (let c = 0; c < classes; c++) max = Math.max(max, z[c * n + j])
    let total = 0
    for (let c = 0; c < classes; c++) {
      const e = Math.exp(z[c * n + j] - max)
      delta[c * n + j] = e
      total += e
    }
    for (let c = 0; c < classes; c++) {
      const p = delta[c * n + j] / total
      const label = y[j * classes + c]
      if (label !== 0) loss -= label * Math.log(Math.min(Math.max(p, 1e-7), 1 - 1e-7))
      delta[c * n + j] = (p - label) * scale
    }
  }
  return [tf.tensor2d(delta, [classes, n]), loss / n]
}

/** A MomentumOptimizer's rate and momentum, where wasm-kernels.wat steps as it does (not Nesterov). */
function momentumOf (optimizer: tf.Optimizer): { lr: number, mu: number } | undefined {
  const config = optimizer.getConfig()
  return config.useNesterov === true ? undefined : { lr: config.learningRate as number, mu: config.momentum as number }
}

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
  const transposed = tf.getBackend() === 'wasm'
  const layers: DenseLayer[] = dense.map((layer, i) => {
    const [kernel, bias] = layer.getWeights()
    // the variables start from the model's values; steps assign them new data, so the model's
    // weights stay as they are until writeBack
    return {
      kernel: tf.tidy(() => tf.variable(transposed ? kernel.transpose() : kernel, true, `dml-dense-stack-${id}-kernel-${i}`)),
      bias: bias === undefined ? undefined : tf.tidy(() => tf.variable(transposed ? bias.reshape([-1, 1]) : bias, true, `dml-dense-stack-${id}-bias-${i}`)),
      relu: layer.getConfig().activation === 'relu'
    }
  })
  const variables = layers.flatMap(l => l.bias === undefined ? [l.kernel] : [l.kernel, l.bias])
  // momentum on wasm is stepped here, its accumulators this stack's own (the optimizer's state is
  // as fresh, made with it for one round's training)
  const momentumStep = transposed ? wasmMomentum() : undefined
  let accumulators: tf.Tensor[] | undefined

  function step (xs: tf.Tensor, ys: tf.Tensor, optimizer: tf.Optimizer): tf.Scalar | number {
    // plain SGD is applied here: its learning rate scales the first gradient, and every later one
    // is then a step already, subtracted as it is. The optimizer spends a scope and two operations
    // on each variable: 4% of an mlp step on wasm
    const name = optimizer.getClassName()
    const sgd = name === tf.SGDOptimizer.className ? optimizer.getConfig().learningRate as number : undefined
    const momentum = momentumStep !== undefined && name === tf.MomentumOptimizer.className ? momentumOf(optimizer) : undefined
    return tf.tidy(() => {
      const n = xs.shape[0]
      const x = xs.reshape([n, -1]) as tf.Tensor2D
      // forward; the input of each layer is kept for the backward pass
      const inputs: tf.Tensor2D[] = []
      let activation = transposed ? x.transpose() as tf.Tensor2D : x
      for (const [i, layer] of layers.entries()) {
        inputs.push(activation)
        const kernel = layer.kernel as tf.Tensor2D
        let z: tf.Tensor2D = transposed ? tf.matMul(kernel, activation) : tf.matMul(activation, kernel)
        if (layer.bias !== undefined) z = tf.add<tf.Tensor2D>(z, layer.bias)
        activation = i < layers.length - 1 && layer.relu ? tf.relu(z) : z
      }
      let delta: tf.Tensor2D
      let loss: tf.Scalar | number
      if (transposed) [delta, loss] = headOnWasm(activation, ys, (sgd ?? 1) / n)
      else {
        const probs = tf.softmax(activation)
        loss = tf.neg(tf.div(tf.sum(tf.mul(ys, tf.log(tf.clipByValue(probs, 1e-7, 1 - 1e-7)))), n)) as tf.Scalar
        // backward: d(loss)/d(logits) of softmax with cross-entropy is (probs - ys) / n (times the
        // learning rate, for plain SGD)
        delta = tf.mul(tf.sub(probs, ys), (sgd ?? 1) / n) as tf.Tensor2D
      }
      // for plain SGD these are the steps themselves (delta holds the learning rate)
      const gradients: tf.NamedTensorMap = {}
      for (let i = layers.length - 1; i >= 0; i--) {
        const layer = layers[i]
        const kernel = layer.kernel as tf.Tensor2D
        // on wasm the first layer's input is x itself, untransposed: no transpose needed there
        gradients[layer.kernel.name] = !transposed ? tf.matMul(inputs[i], delta, true, false) : i === 0 ? tf.matMul(delta, x) : tf.matMul(delta, inputs[i], false, true)
        if (layer.bias !== undefined) gradients[layer.bias.name] = transposed ? tf.sum(delta, 1, true) : tf.sum(delta, 0)
        if (i === 0) break
        delta = transposed ? tf.matMul(kernel, delta, true, false) : tf.matMul(delta, kernel, false, true)
        // inputs[i] is the previous layer's relu output, never negative: its step (or sign) is
        // relu's derivative. tf.step is four kernels on tfjs-node, sign one; on wasm step is cheaper
        if (layers[i - 1].relu) delta = tf.mul(delta, transposed ? tf.step(inputs[i]) : tf.sign(inputs[i]))
      }
      if (sgd !== undefined) for (const v of variables) v.assign(tf.sub(v, gradients[v.name]))
      else if (momentum !== undefined) {
        accumulators ??= variables.map(v => tf.keep(tf.zeros(v.shape)))
        for (const [i, v] of variables.entries()) v.assign(momentumStep!(v, accumulators[i], gradients[v.name] as tf.Tensor, momentum.lr, momentum.mu))
      } else optimizer.applyGradients(gradients)
      return loss
    })
  }

  function writeBack (): void {
    const weights = tf.tidy(() => layers.flatMap(l => {
      const kernel = transposed ? l.kernel.transpose() : l.kernel.clone()
      // not a reshape of the column: wasm keeps a tensor's first shape with its data, and the layers
      // API's fused product refuses a bias whose data was made [out, 1]
      return l.bias === undefined ? [kernel] : [kernel, transposed ? tf.tensor(l.bias.dataSync(), [l.bias.size]) : l.bias.clone()]
    }))
    model.setWeights(weights)
    tf.dispose(weights)
  }

  return { variables, step, writeBack, dispose: () => { tf.dispose([...variables, ...(accumulators ?? [])]) } }
}
