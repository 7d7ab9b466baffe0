// The trained model out, in TensorFlow.js's layers format: model.json (topology, weights manifest,
// metadata) and weights.bin. tf.loadLayersModel reads it over http in a browser or in Node, from
// file:// with tfjs-node, and with loadModelFiles here (no tfjs-node needed).
import type { io } from '@tensorflow/tfjs-core'
import * as tf from './tf.ts'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'

export const MODEL_JSON = 'model.json'
const WEIGHTS_BIN = 'weights.bin'

function concat (data: ArrayBuffer | ArrayBuffer[]): Uint8Array {
  const parts = (Array.isArray(data) ? data : [data]).map(b => new Uint8Array(b))
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.byteLength
  }
  return out
}

async function writeAtomic (path: string, data: Uint8Array | string): Promise<void> {
  await writeFile(`${path}.tmp`, data)
  await rename(`${path}.tmp`, path)
}

/**
 * Writes `model` to `dir` (created if missing). The weights go first and model.json last, each
 * by rename: a reader never finds a model.json whose weights are not there yet.
 */
export async function saveModelFiles (model: tf.LayersModel, dir: string, metadata: Record<string, unknown>): Promise<void> {
  await mkdir(dir, { recursive: true })
  await model.save(tf.io.withSaveHandler(async (artifacts) => {
    await writeAtomic(join(dir, WEIGHTS_BIN), artifacts.weightData === undefined ? new Uint8Array(0) : concat(artifacts.weightData))
    await writeAtomic(join(dir, MODEL_JSON), JSON.stringify({
      format: 'layers-model',
      generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
      convertedBy: null,
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }],
      userDefinedMetadata: metadata
    }))
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }
  }))
}

/** Reads a model written by saveModelFiles (or any layers-format model.json with its weight files beside it). */
export async function loadModelFiles (dir: string): Promise<{ model: tf.LayersModel, metadata: Record<string, unknown> }> {
  const json = JSON.parse(await readFile(join(dir, MODEL_JSON), 'utf8')) as { modelTopology?: object, weightsManifest?: Array<{ paths: string[], weights: io.WeightsManifestEntry[] }>, userDefinedMetadata?: Record<string, unknown> }
  if (json.modelTopology === undefined || !Array.isArray(json.weightsManifest)) throw new Error(`${join(dir, MODEL_JSON)} is not a TensorFlow.js layers model (no modelTopology or weightsManifest)`)
  const buffers: ArrayBuffer[] = []
  for (const group of json.weightsManifest) {
    for (const path of group.paths) {
      // weight files live beside model.json: a manifest cannot name a file elsewhere
      if (basename(path) !== path) throw new Error(`${MODEL_JSON} names weight file "${path}" outside its directory`)
      const bytes = await readFile(join(dir, path))
      buffers.push(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength))
    }
  }
  const model = await tf.loadLayersModel(tf.io.fromMemory({
    modelTopology: json.modelTopology,
    weightSpecs: json.weightsManifest.flatMap(g => g.weights),
    weightData: concat(buffers).buffer as ArrayBuffer
  }))
  return { model, metadata: json.userDefinedMetadata ?? {} }
}
