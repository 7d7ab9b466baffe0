// The privacy accountant of differential privacy: Rényi DP of the sampled Gaussian mechanism
// (Mironov, Talwar and Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian Mechanism"),
// composed over steps, and turned into (epsilon, delta) by the conversion of Balle et al. 2020
// ("Hypothesis testing interpretations and Rényi differential privacy"). A step adds Gaussian noise
// of `noiseMultiplier` times the clipping bound to a sum over a sample of its units taken with
// probability `sampleRate` each: for dml, a round's sum of clipped updates, each peer a unit.

/** The orders the RDP is computed at: those of Opacus and TensorFlow Privacy, for the same answers. */
export const RDP_ORDERS: readonly number[] = [...Array.from({ length: 99 }, (_, x) => 1 + (x + 1) / 10), ...Array.from({ length: 52 }, (_, x) => 12 + x)]

export class PrivacyError extends Error {
  override name = 'PrivacyError'
}

const logAdd = (a: number, b: number): number => {
  if (a === -Infinity) return b
  if (b === -Infinity) return a
  const m = Math.max(a, b)
  return m + Math.log1p(Math.exp(-Math.abs(a - b)))
}

/** log(exp(a) - exp(b)), a >= b. */
const logSub = (a: number, b: number): number => {
  if (b === -Infinity) return a
  if (a === b) return -Infinity
  if (a < b) throw new PrivacyError('the log of a negative number')
  return a + Math.log(-Math.expm1(b - a))
}

/**
 * log(erfc(x)): Numerical Recipes' Chebyshev fit (relative error below 1.2e-7 everywhere), kept in
 * the log so that it does not underflow where erfc is tiny.
 */
function logErfc (x: number): number {
  const z = Math.abs(x)
  const t = 1 / (1 + 0.5 * z)
  const poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
  const logErfcAbs = Math.log(t) + poly
  return x >= 0 ? logErfcAbs : Math.log(2 - Math.exp(logErfcAbs))
}

/** log A_alpha for an integer order: a finite sum. */
function logAInt (q: number, sigma: number, alpha: number): number {
  let logA = -Infinity
  let logBinom = 0
  for (let k = 0; k <= alpha; k++) {
    if (k > 0) logBinom += Math.log((alpha - k + 1) / k)
    logA = logAdd(logA, logBinom + k * Math.log(q) + (alpha - k) * Math.log1p(-q) + (k * k - k) / (2 * sigma * sigma))
  }
  return logA
}

/** log A_alpha for a fractional order: two series, summed until their terms are negligible. */
function logAFrac (q: number, sigma: number, alpha: number): number {
  let logA0 = -Infinity
  let logA1 = -Infinity
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5
  let coef = 1 // binom(alpha, i), built up term by term
  for (let i = 0; ; i++) {
    if (i > 0) coef *= (alpha - i + 1) / i
    const logCoef = Math.log(Math.abs(coef))
    const j = alpha - i
    const logT0 = logCoef + i * Math.log(q) + j * Math.log1p(-q)
    const logT1 = logCoef + j * Math.log(q) + i * Math.log1p(-q)
    const logE0 = Math.log(0.5) + logErfc((i - z0) / (Math.SQRT2 * sigma))
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / (Math.SQRT2 * sigma))
    const logS0 = logT0 + (i * i - i) / (2 * sigma * sigma) + logE0
    const logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1
    if (coef > 0) {
      logA0 = logAdd(logA0, logS0)
      logA1 = logAdd(logA1, logS1)
    } else {
      logA0 = logSub(logA0, logS0)
      logA1 = logSub(logA1, logS1)
    }
    if (Math.max(logS0, logS1) < -30 || i > 10_000) break
  }
  return logAdd(logA0, logA1)
}

/** The RDP of one step of the sampled Gaussian mechanism at `order`. */
export function stepRdp (sampleRate: number, noiseMultiplier: number, order: number): number {
  if (!(sampleRate >= 0 && sampleRate <= 1)) throw new PrivacyError(`a sampling rate of ${sampleRate}: from 0 to 1`)
  if (!(noiseMultiplier >= 0)) throw new PrivacyError(`a noise multiplier of ${noiseMultiplier}: 0 or more`)
  if (sampleRate === 0) return 0
  if (noiseMultiplier === 0) return Infinity
  if (sampleRate === 1) return order / (2 * noiseMultiplier * noiseMultiplier)
  const logA = Number.isInteger(order) ? logAInt(sampleRate, noiseMultiplier, order) : logAFrac(sampleRate, noiseMultiplier, order)
  return logA / (order - 1)
}

/** (epsilon, delta) from RDP values at `orders` (Balle et al. 2020's conversion): the best order's epsilon, and that order. */
export function epsilonOf (rdp: readonly number[], orders: readonly number[], delta: number): { epsilon: number, order: number } {
  if (!(delta > 0 && delta < 1)) throw new PrivacyError(`a delta of ${delta}: between 0 and 1`)
  let best = { epsilon: Infinity, order: NaN }
  for (let i = 0; i < orders.length; i++) {
    const a = orders[i]
    const epsilon = rdp[i] - (Math.log(delta) + Math.log(a)) / (a - 1) + Math.log((a - 1) / a)
    if (epsilon < best.epsilon) best = { epsilon: Math.max(0, epsilon), order: a }
  }
  return best
}

/** The privacy a run has spent: each step's mechanism composed (RDP adds up), as epsilon at `delta`. */
export class PrivacyAccountant {
  private readonly orders: readonly number[]
  private readonly rdp: number[]
  private stepsTaken = 0

  constructor (orders: readonly number[] = RDP_ORDERS) {
    this.orders = orders
    this.rdp = orders.map(() => 0)
  }

  /** `steps` more steps at this sampling rate and noise. */
  step (sampleRate: number, noiseMultiplier: number, steps = 1): void {
    for (let i = 0; i < this.orders.length; i++) this.rdp[i] += steps * stepRdp(sampleRate, noiseMultiplier, this.orders[i])
    this.stepsTaken += steps
  }

  get steps (): number { return this.stepsTaken }

  epsilon (delta: number): number {
    return this.stepsTaken === 0 ? 0 : epsilonOf(this.rdp, this.orders, delta).epsilon
  }
}

/** The least noise multiplier (within 0.1% of it) whose `steps` steps at `sampleRate` spend at most `epsilon` at `delta`. */
export function noiseForEpsilon (epsilon: number, delta: number, sampleRate: number, steps: number): number {
  if (!(epsilon > 0)) throw new PrivacyError(`a target epsilon of ${epsilon}: above 0`)
  const spent = (sigma: number): number => {
    const rdp = RDP_ORDERS.map(a => steps * stepRdp(sampleRate, sigma, a))
    return epsilonOf(rdp, RDP_ORDERS, delta).epsilon
  }
  let high = 1
  while (spent(high) > epsilon) {
    high *= 2
    if (high > 1e6) throw new PrivacyError(`no noise reaches epsilon ${epsilon} at delta ${delta} over ${steps} steps`)
  }
  let low = 0
  while (high - low > high * 1e-3) {
    const mid = (low + high) / 2
    if (spent(mid) > epsilon) low = mid
    else high = mid
  }
  return high
}
