// How a peer trains locally: the optimizer, the learning rate of a round, and FedProx's pull
// towards the round's global model. Peers agree on all three (they are part of the task), and
// none of it imports TensorFlow.js, so the CLI checks its flags without loading a backend.

import { LOCAL_OPTIMIZERS } from '@dml/protocol'

/** Local optimizers: plain SGD, SGD with momentum 0.9, Adam (0.9, 0.999). Fresh each round. */
export const OPTIMIZERS = LOCAL_OPTIMIZERS
export type OptimizerName = typeof OPTIMIZERS[number]

export function isOptimizer (name: string): name is OptimizerName {
  return (OPTIMIZERS as readonly string[]).includes(name)
}

export const LR_SCHEDULE_FORMS = 'constant, exp:<gamma> (lr x gamma^(round-1), e.g. exp:0.9) or step:<rounds>:<gamma> (lr x gamma every so many rounds, e.g. step:5:0.5)'

export type LrSchedule = { kind: 'constant' } | { kind: 'exp', gamma: number } | { kind: 'step', every: number, gamma: number }

export function parseLrSchedule (spec: string): LrSchedule {
  if (spec === 'constant') return { kind: 'constant' }
  const exp = /^exp:(0?\.\d{1,6}|1(\.0+)?)$/.exec(spec)
  if (exp !== null && Number(exp[1]) > 0) return { kind: 'exp', gamma: Number(exp[1]) }
  const step = /^step:(\d{1,6}):(0?\.\d{1,6}|1(\.0+)?)$/.exec(spec)
  if (step !== null && Number(step[1]) >= 1 && Number(step[2]) > 0) return { kind: 'step', every: Number(step[1]), gamma: Number(step[2]) }
  throw new RangeError(`learning-rate schedule "${spec}" is not one of ${LR_SCHEDULE_FORMS} (gamma above 0 and at most 1)`)
}

/** The local learning rate of `round` (1-based). */
export function lrOfRound (lr: number, schedule: LrSchedule, round: number): number {
  const r = Math.max(1, round)
  if (schedule.kind === 'exp') return lr * schedule.gamma ** (r - 1)
  if (schedule.kind === 'step') return lr * schedule.gamma ** Math.floor((r - 1) / schedule.every)
  return lr
}
