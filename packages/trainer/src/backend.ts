// Backend selection. Order of preference: the native TensorFlow bindings (tfjs-node-gpu when
// --gpu is asked for, then tfjs-node), then the wasm backend, then tfjs's pure-JS cpu backend.
// The native packages are optional dependencies: they need libtensorflow, which their install
// script downloads, so where that failed they are simply absent and we fall through.
import { createRequire } from 'node:module'
import * as tf from './tf.ts'
import { installKernels } from './kernels.ts'

export interface BackendChoice {
  /** tfjs backend name: 'tensorflow', 'wasm' or 'cpu' */
  backend: string
  device: 'gpu' | 'cpu'
  /** the package that provides it */
  source: string
  /** set when the choice differs from what was asked for, e.g. --gpu on a machine without it */
  warning?: string
}

export interface BackendCandidate {
  source: string
  backend: string
  device: 'gpu' | 'cpu'
  /** loads the package (registering its backend); throws if it is not installed or not usable */
  load: () => Promise<unknown>
}

// CommonJS packages, required: imported as ES modules, Node would first scan them for the names
// they export (see tf.ts)
const requireBackend = createRequire(import.meta.url)

export const CANDIDATES: Record<string, BackendCandidate> = {
  gpu: { source: '@tensorflow/tfjs-node-gpu', backend: 'tensorflow', device: 'gpu', load: async () => requireBackend('@tensorflow/tfjs-node-gpu') },
  native: {
    source: '@tensorflow/tfjs-node',
    backend: 'tensorflow',
    device: 'cpu',
    load: async () => {
      oneThreadPerOperation()
      return requireBackend('@tensorflow/tfjs-node')
    }
  },
  wasm: { source: '@tensorflow/tfjs-backend-wasm', backend: 'wasm', device: 'cpu', load: async () => requireBackend('@tensorflow/tfjs-backend-wasm') },
  cpu: { source: '@tensorflow/tfjs (cpu)', backend: 'cpu', device: 'cpu', load: async () => undefined }
}

/**
 * tfjs-node runs each operation on one thread unless the user set TensorFlow's thread variables.
 * TensorFlow's default spreads each operation over every core, which costs more than it gains on
 * dml's small operations (on 2 cores the mlp trained 17k samples/s that way, 32k with one thread an
 * operation); the cores go to dml's training threads instead (--threads). libtensorflow reads
 * these as it starts, and training threads see the process's environment.
 */
export function oneThreadPerOperation (env: Record<string, string | undefined> = process.env): void {
  env.TF_NUM_INTRAOP_THREADS ??= '1'
  env.TF_NUM_INTEROP_THREADS ??= '1'
}

export type DevicePreference = 'gpu' | 'cpu' | 'auto'

/** The candidates to try, in order, for a preference. `--cpu` never tries the GPU build. */
export function candidateOrder (preference: DevicePreference): BackendCandidate[] {
  const order = preference === 'gpu' ? ['gpu', 'native', 'wasm', 'cpu'] : ['native', 'wasm', 'cpu']
  return order.map(k => CANDIDATES[k])
}

/**
 * Tries each candidate in order and activates the first one that loads and initialises.
 * `activate` is injected so the selection logic can be tested without the real packages.
 */
export async function chooseBackend (
  preference: DevicePreference,
  candidates: BackendCandidate[] = candidateOrder(preference),
  activate: (backend: string) => Promise<boolean> = async (name) => await tf.setBackend(name)
): Promise<BackendChoice & { failures: string[] }> {
  const failures: string[] = []
  for (const candidate of candidates) {
    try {
      await candidate.load()
      if (!(await activate(candidate.backend))) throw new Error(`backend ${candidate.backend} did not initialise`)
    } catch (err) {
      failures.push(`${candidate.source}: ${firstLine(err)}`)
      continue
    }
    const choice: BackendChoice & { failures: string[] } = { backend: candidate.backend, device: candidate.device, source: candidate.source, failures }
    if (preference === 'gpu' && candidate.device !== 'gpu') {
      choice.warning = `--gpu was asked for but ${CANDIDATES.gpu.source} could not be loaded (${failures[0] ?? 'unknown reason'}); training on the CPU with ${candidate.source}`
    }
    return choice
  }
  throw new Error(`no TensorFlow.js backend could be loaded:\n  ${failures.join('\n  ')}`)
}

/** The key in CANDIDATES of a chosen backend: what training threads load to use the same one. */
export function backendKey (choice: Pick<BackendChoice, 'source'>): string {
  const key = Object.keys(CANDIDATES).find(k => CANDIDATES[k].source === choice.source)
  if (key === undefined) throw new Error(`no backend candidate is ${choice.source}`)
  return key
}

function firstLine (err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0].slice(0, 200)
}

/**
 * Selects and activates a backend for this process; supplies the kernels wasm lacks. TensorFlow's
 * native start-up lines (tfjs-node) are kept quiet unless `nativeLogs` (or TF_CPP_MIN_LOG_LEVEL
 * says otherwise): libtensorflow reads the variable when it logs, so it is set before the load.
 */
export async function initBackend (preference: DevicePreference, { nativeLogs = false }: { nativeLogs?: boolean } = {}): Promise<BackendChoice> {
  process.env.TF_CPP_MIN_LOG_LEVEL ??= nativeLogs ? '0' : '2'
  const choice = await chooseBackend(preference)
  installKernels(choice.backend)
  await tf.ready()
  return choice
}
