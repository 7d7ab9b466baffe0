// npm run bench:throughput (part of npm run bench): training samples per second of one peer,
// batch 32, per model and backend: dml's local training against plain TensorFlow.js model.fit;
// then how fast each aggregation strategy combines updates.
// Each figure comes from its own process, so the kernels dml installs on wasm (the convolution
// gradients wasm lacks or runs slowly, matrix products without transposed operands) are
// measured against tfjs as it ships. tfjs-node rows appear where it loads; there "as shipped" means
// TensorFlow's own thread pools, where dml runs one thread an operation (backend.ts).
// Beside them, PyTorch on one thread on the same core (test/bench-torch.py, the reference design's
// models and training step, in its venv: ../shared/bench/reference/setup.sh makes it).
import { execFile, execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { promisify } from 'node:util'
import { cpus, homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const MODELS: Record<string, number> = { mlp: 6400, 'cnn-small': 3200, cnn: 320 }
const BATCH = Number(process.env.DML_BENCH_BATCH ?? 32)
type Runner = 'dml' | 'dml-every-core' | 'fit-stock' | 'fit-dml-kernels'
/** Timed runs of each figure: the median is printed (these machines are noisy). */
const RUNS = 3
/**
 * Untimed runs of the same size first. A peer trains round after round on the same threads, and
 * the first thousands of samples are slower: on wasm a training thread reached full speed on the
 * mlp in its third or fourth run of 6,400 samples, the main thread in its second, and the warm-up
 * of four batches this bench had measured that, not training.
 */
const WARM_RUNS = 2
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function measure (backend: string, model: string, runner: Runner, samples: number): Promise<number> {
  const { CANDIDATES, chooseBackend, installKernels, loadDataset, buildModel, makeBatch, tf, TrainingThreads } = await import('@dml/trainer')
  const choice = await chooseBackend('cpu', [CANDIDATES[backend]]) // the backend asked for, not the best installed
  if (runner !== 'fit-stock') installKernels(choice.backend)
  await tf.ready()
  const data = await loadDataset('mnist')
  const spec = { inputShape: [28, 28, 1], numClasses: 10 }
  const net = buildModel(model, spec)
  const rates: number[] = []
  if (runner === 'dml' || runner === 'dml-every-core') {
    // as many examples for each thread as one thread has
    const threads = new TrainingThreads(runner === 'dml' ? 1 : cpus().length, backend)
    await threads.start()
    const shard = Uint32Array.from({ length: samples * threads.threads }, (_, i) => i % data.train.count)
    const work = samples * threads.threads
    for (let i = 0; i < WARM_RUNS; i++) await threads.train(net, model, spec, data.train, shard, { samples: work, batchSize: BATCH, lr: 0.05, seed: 1 })
    for (let i = 0; i < RUNS; i++) {
      const started = performance.now()
      await threads.train(net, model, spec, data.train, shard, { samples: work, batchSize: BATCH, lr: 0.05, seed: 2 + i })
      rates.push(work / (performance.now() - started) * 1000)
    }
    await threads.close()
    return median(rates)
  }
  const shard = Uint32Array.from({ length: samples }, (_, i) => i)
  net.compile({ optimizer: tf.train.sgd(0.05), loss: 'categoricalCrossentropy' })
  const { xs, ys } = makeBatch(data.train, shard)
  for (let i = 0; i < WARM_RUNS; i++) await net.fit(xs, ys, { batchSize: BATCH, epochs: 1, verbose: 0 })
  for (let i = 0; i < RUNS; i++) {
    const started = performance.now()
    await net.fit(xs, ys, { batchSize: BATCH, epochs: 1, verbose: 0, shuffle: true })
    rates.push(samples / (performance.now() - started) * 1000)
  }
  return median(rates)
}

const BACKENDS = ['wasm', 'native']
const execFileAsync = promisify(execFile)
const RUNNERS: Runner[] = ['dml', 'fit-stock', 'fit-dml-kernels', 'dml-every-core']

if (process.argv[2] === '--one') {
  const [backend, model, runner] = process.argv.slice(3)
  try {
    console.log(JSON.stringify({ rate: await measure(backend, model, runner as Runner, MODELS[model]) }))
  } catch (err) {
    console.log(JSON.stringify({ error: String((err as Error).message ?? err).split('\n')[0].slice(0, 120) }))
  }
  process.exit(0)
}

/** Whether `taskset` runs here: dml on one thread is measured on one core, literally. */
const TASKSET = ((): boolean => {
  try {
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()
const onCore = (core: number): string[] => TASKSET ? ['taskset', '-c', String(core)] : []

type Figure = { rate?: number, error?: string }

const REFERENCE_DIR = dirname(process.env.DML_REFERENCE ?? fileURLToPath(new URL('../../shared/bench/reference/run.sh', import.meta.url)))
const TORCH_PYTHON = join(process.env.DML_REFERENCE_CACHE ?? join(homedir(), '.cache', 'dml-reference'), 'venv', 'bin', 'python')

/** PyTorch's samples/s on one thread on core 0, the same model, batch and examples: or why not. */
async function torchFigure (model: string): Promise<Figure> {
  if (!existsSync(TORCH_PYTHON) || !existsSync(join(REFERENCE_DIR, 'models.py'))) return { error: `no PyTorch (run ${join(REFERENCE_DIR, 'setup.sh')})` }
  const script = fileURLToPath(new URL('./bench-torch.py', import.meta.url))
  const command = [...onCore(0), TORCH_PYTHON, script, REFERENCE_DIR, model, String(MODELS[model]), String(BATCH)]
  try {
    const { stdout } = await execFileAsync(command[0], command.slice(1), { encoding: 'utf8' })
    return JSON.parse(stdout.trim().split('\n').pop()!)
  } catch (err) {
    return { error: String((err as Error).message).split('\n')[0].slice(0, 120) }
  }
}

/** One figure, from a fresh process: samples/s, or why it could not be measured. */
async function figure (backend: string, model: string, runner: Runner, core = 0): Promise<Figure> {
  const command = [...(runner === 'dml' ? onCore(core) : []), process.execPath, fileURLToPath(import.meta.url), '--one', backend, model, runner]
  // tfjs as shipped: TensorFlow's own thread pools at their defaults (0), not dml's one thread an operation
  const env = runner === 'fit-stock' ? { ...process.env, TF_NUM_INTRAOP_THREADS: '0', TF_NUM_INTEROP_THREADS: '0' } : process.env
  const { stdout } = await execFileAsync(command[0], command.slice(1), { encoding: 'utf8', env })
  return JSON.parse(stdout.trim().split('\n').pop()!)
}

/**
 * What the machine gives: one process of dml on one thread per core, all at once, each on its own
 * core, their samples/s summed. The cores of a virtual machine need not be alike or independent
 * (here one ran at two thirds of the other's speed for minutes, then the other way round), so this,
 * not N times the first core alone, is what N threads can reach.
 */
async function ceiling (backend: string, model: string): Promise<Figure> {
  const figures = await Promise.all(cpus().map(async (_, core) => await figure(backend, model, 'dml', core)))
  const failed = figures.find(f => f.rate === undefined)
  return failed ?? { rate: figures.reduce((a, f) => a + f.rate!, 0) }
}

/** Samples/s per backend and model: dml, tfjs fit as shipped, tfjs fit with dml's kernels, dml on every core, the machine's ceiling. */
async function trainingTable (): Promise<Array<Record<string, unknown>>> {
  const rows: Array<Record<string, unknown>> = []
  console.log(`## Training throughput of one peer (samples/s, batch ${BATCH}), ${cpus().length} cores`)
  const cores = cpus().length
  const oneCore = TASKSET ? '1 thread on 1 core' : '1 thread'
  const torch: Record<string, Figure> = {}
  for (const model of Object.keys(MODELS)) torch[model] = await torchFigure(model) // one at a time, on one core
  console.log(`\n| backend | model | tfjs fit, as shipped | tfjs fit, dml's kernels | dml, ${oneCore} | dml, ${cores} threads (default) | ${cores} processes of 1 thread at once (the machine) | dml 1 thread / fit as shipped | dml ${cores} threads / fit as shipped | ${cores} threads / 1 (goal ${(0.85 * cores).toFixed(2)}) | ${cores} threads / the machine | PyTorch, ${oneCore} | dml 1 thread / PyTorch (goal 0.5 on wasm) |`)
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
  for (const backend of BACKENDS) {
    for (const model of Object.keys(MODELS)) {
      const results: Record<Runner | 'machine', Figure> = { dml: {}, 'dml-every-core': {}, 'fit-stock': {}, 'fit-dml-kernels': {}, machine: {} }
      for (const runner of RUNNERS) results[runner] = await figure(backend, model, runner)
      if (results.dml.error !== undefined) {
        console.log(`| ${backend} | ${model} | not measured: ${results.dml.error} | | | | | | | | | | |`)
        if (results.dml.error.includes('no TensorFlow.js backend')) break // not installed: one row says so
        continue
      }
      results.machine = await ceiling(backend, model)
      const cell = (r: Figure): string => r.rate !== undefined ? r.rate.toFixed(0) : `fails: ${r.error ?? ''}`
      const everyCore = results['dml-every-core'].rate
      const fit = results['fit-stock'].rate
      const ratio = (a: number | undefined, b: number | undefined): string => a === undefined || b === undefined ? '' : `${(a / b).toFixed(2)}x`
      const overFit = (rate: number | undefined): string => fit === undefined ? 'tfjs cannot train it' : ratio(rate, fit)
      console.log(`| ${backend} | ${model} | ${cell(results['fit-stock'])} | ${cell(results['fit-dml-kernels'])} | ${cell(results.dml)} | ${cell(results['dml-every-core'])} | ${cell(results.machine)} | ${overFit(results.dml.rate)} | ${overFit(everyCore)} | ${ratio(everyCore, results.dml.rate)} | ${ratio(everyCore, results.machine.rate)} | ${torch[model].rate?.toFixed(0) ?? torch[model].error!} | ${ratio(results.dml.rate, torch[model].rate)} |`)
      rows.push({ backend, model, ...Object.fromEntries(Object.entries(results).map(([r, f]) => [r, f.rate ?? f.error])), pytorch: torch[model].rate ?? torch[model].error })
    }
  }
  return rows
}

/** GB/s of update bytes in, per strategy: 4 updates the size of `cnn` (1.66M parameters) on one core. */
async function aggregationTable (): Promise<Array<{ strategy: string, gbPerS: number }>> {
  const { aggregateRound, STRATEGIES } = await import('@dml/trainer')
  const PARAMS = 1_663_370
  const UPDATES = 4
  const random = (seed: number): Float32Array => { let x = seed; return Float32Array.from({ length: PARAMS }, () => { x = (x * 1103515245 + 12345) % 2147483648; return x / 2147483648 - 0.5 }) }
  const current = [{ name: 'w0', shape: [PARAMS], values: random(1) }]
  const updates = Array.from({ length: UPDATES }, (_, i) => ({ peer: `peer${i}`, numSamples: 1000 + i, weights: [{ name: 'w0', shape: [PARAMS], values: random(i + 2) }] }))
  const results: Array<{ strategy: string, gbPerS: number }> = []
  // A strategy's result is fresh memory, which the operating system hands over page by page as it
  // is first written: on some virtual machines that alone takes longer than the arithmetic.
  const firstTouch = [0, 1, 2, 3, 4].map(() => {
    const started = performance.now()
    const fresh = new Float32Array(PARAMS)
    for (let j = 0; j < PARAMS; j += 1024) fresh[j] = 1
    return performance.now() - started
  }).sort((a, b) => a - b)[2]
  console.log(`\n## Aggregation: ${UPDATES} updates of ${(PARAMS * 4 / 1e6).toFixed(1)} MB (the size of cnn), one core, with the default norm bound check`)
  console.log(`\nWriting a fresh model-sized array takes ${firstTouch.toFixed(1)} ms here (the memory's first touch, median of 5), part of every round below.`)
  console.log('\n| strategy | GB/s of updates in | ms per round |')
  console.log('| --- | --- | --- |')
  for (const strategy of Object.keys(STRATEGIES)) {
    const spec = { aggregation: strategy, trim: 0.2, byzantine: 1, clip: 1, normBound: 5, serverOptimizer: 'none', serverLr: 1 }
    // compiled and warm, as in a long run: the first two rounds of a peer's life are slower
    aggregateRound(updates, current, spec)
    aggregateRound(updates, current, spec)
    const runs = 10
    const started = performance.now()
    for (let i = 0; i < runs; i++) aggregateRound(updates, current, spec)
    const ms = (performance.now() - started) / runs
    const gbPerS = UPDATES * PARAMS * 4 / 1e9 / (ms / 1000)
    results.push({ strategy, gbPerS })
    console.log(`| ${strategy} | ${gbPerS.toFixed(2)} | ${ms.toFixed(0)} |`)
  }
  return results
}

// `-- --only training` or `-- --only aggregation` runs one part
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined
const throughput = only === 'aggregation' ? [] : await trainingTable()
const aggregation = only === 'training' ? [] : await aggregationTable()
console.log(`\n${JSON.stringify({ throughput, aggregation })}`)
