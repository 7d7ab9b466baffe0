// How the coordinator judges one update before it counts. Each update is judged alone: a bad one
// is dropped with its reason and the round goes on with the rest.
import { assertSameShapes, decodeUpdate, findNonFinite, type NamedTensor } from '@dml/protocol'
import { modelPart } from '@dml/trainer/server-optimizer'

export type UpdateRejection = 'too-many-samples' | 'malformed' | 'wrong-shape' | 'non-finite'

export type UpdateVerdict =
  | { ok: true, weights: NamedTensor[] }
  | { ok: false, reason: UpdateRejection, detail: string }

/**
 * Checks an update blob against what was asked of its peer: at most the `assigned` samples (they
 * weight FedAvg, so a peer must not claim more), well-formed weights (whole, or a difference from
 * the round's model `reference`, hash `referenceHash`) with the model's shapes, and finite values only.
 */
export function checkUpdate (bytes: Uint8Array, numSamples: number, assigned: number, reference: NamedTensor[], referenceHash: string): UpdateVerdict {
  if (numSamples > assigned) return { ok: false, reason: 'too-many-samples', detail: `claims ${numSamples} samples, was assigned ${assigned}` }
  let weights: NamedTensor[]
  try {
    weights = decodeUpdate(bytes, modelPart(reference), referenceHash)
  } catch (err) {
    return { ok: false, reason: 'malformed', detail: (err as Error).message }
  }
  try {
    assertSameShapes(weights, modelPart(reference)) // an update is of the model, not the server's state
  } catch (err) {
    return { ok: false, reason: 'wrong-shape', detail: (err as Error).message }
  }
  const bad = findNonFinite(weights)
  if (bad !== undefined) return { ok: false, reason: 'non-finite', detail: `${bad.tensor}[${bad.index}] is ${bad.value}` }
  return { ok: true, weights }
}
