// Checkpoints: after each round a peer writes the global model, round, term, task and metrics
// history to <data-dir>/checkpoints/round-NNNNNN.cbor. The file is CBOR {sha256, payload} where
// payload is the CBOR state, so a torn or altered file is detected on load; it is written to a
// temporary file and renamed, and the previous checkpoint is kept as a fallback.
import { mkdir, readdir, readFile, rename, rm, open } from 'node:fs/promises'
import { join } from 'node:path'
import { contentHash, decodeCbor, describe, encodeCbor, MAX_BLOB_BYTES, type RoundMetrics, type StrategySpec, type Task } from '@dml/protocol'
import { MAX_KEPT_MEMBERS } from './membership.ts'

export interface RoundRecord {
  round: number
  term: number
  modelHash: string
  /** hash of the round's certificate */
  certHash: string
  metrics: RoundMetrics
}

export interface Checkpoint {
  round: number
  term: number
  modelHash: string
  /** the model blob (encoded tensors), whose hash is modelHash */
  model: Uint8Array
  task: Task
  history: RoundRecord[]
  /** the certificate of `round` and of its term (null at round 0): how this peer proves its rounds */
  roundCert: Uint8Array | null
  termCert: Uint8Array | null
  /** the members its certified rounds proved (ProvenPeers.entries); absent in older checkpoints */
  proven?: Array<[string, number]>
}

/** 2: checkpoints carry the round's certificates. */
const FORMAT = 2
const KEEP = 2

function fileName (round: number): string {
  return `round-${String(round).padStart(6, '0')}.cbor`
}

/** The bytes of a checkpoint file: CBOR {sha256, payload}, the payload the CBOR of the checkpoint. */
export function encodeCheckpointFile (checkpoint: Checkpoint): Uint8Array {
  const payload = encodeCbor({ v: FORMAT, ...checkpoint })
  return encodeCbor({ sha256: contentHash(payload), payload })
}

/** Writes `path` whole or not at all: to a temporary file, synced to disk, then renamed over it. */
async function writeSynced (path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp`
  const handle = await open(tmp, 'w')
  try {
    await handle.writeFile(data)
    await handle.sync()
  } finally {
    await handle.close()
  }
  await rename(tmp, path)
}

export async function saveCheckpoint (dataDir: string, checkpoint: Checkpoint): Promise<string> {
  const dir = join(dataDir, 'checkpoints')
  await mkdir(dir, { recursive: true })
  const bytes = encodeCheckpointFile(checkpoint)
  const path = join(dir, fileName(checkpoint.round))
  await writeSynced(path, bytes)
  const old = (await listCheckpoints(dir)).slice(KEEP)
  await Promise.all(old.map(async name => { await rm(join(dir, name), { force: true }) }))
  return path
}

async function listCheckpoints (dir: string): Promise<string[]> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch {
    return []
  }
  return names.filter(n => /^round-\d{6}\.cbor$/.test(n)).sort().reverse()
}

export class CheckpointError extends Error {
  override name = 'CheckpointError'
  /** the user's to fix: a command says it in one line (see errors.ts in @dml/node) */
  readonly expected = true
}

/** Reads and verifies one checkpoint file. */
export function parseCheckpoint (bytes: Uint8Array, path: string): Checkpoint {
  const fail = (why: string): never => { throw new CheckpointError(`${path}: ${why}`) }
  let outer: { sha256?: unknown, payload?: unknown }
  try {
    outer = decodeCbor(bytes, MAX_BLOB_BYTES + 1024 * 1024) as typeof outer
  } catch (err) {
    return fail(`unreadable (${(err as Error).message})`)
  }
  if (!(outer?.payload instanceof Uint8Array) || typeof outer.sha256 !== 'string') return fail('not a checkpoint')
  if (contentHash(outer.payload) !== outer.sha256) return fail('hash mismatch: the file is corrupt')
  let c: Checkpoint & { v: number }
  try {
    c = decodeCbor(outer.payload, MAX_BLOB_BYTES + 1024 * 1024) as Checkpoint & { v: number }
  } catch (err) {
    return fail(`unreadable (${(err as Error).message})`)
  }
  if (c === null || typeof c !== 'object') return fail('unexpected layout')
  if (c.v !== FORMAT) return fail(`format ${describe(c.v)}, this dml reads format ${FORMAT}`)
  const bytesOrNull = (v: unknown): boolean => v === null || v instanceof Uint8Array
  if (!Number.isSafeInteger(c.round) || c.round < 0 || !Number.isSafeInteger(c.term) || c.term < 0 || !(c.model instanceof Uint8Array) || !Array.isArray(c.history) ||
    c.task === null || typeof c.task !== 'object' || typeof c.task.model !== 'string' || typeof c.task.dataset !== 'string' ||
    !bytesOrNull(c.roundCert) || !bytesOrNull(c.termCert)) return fail('unexpected layout')
  if (c.proven !== undefined && !(Array.isArray(c.proven) && c.proven.length <= MAX_KEPT_MEMBERS && c.proven.every(isProvenEntry))) return fail('unexpected layout')
  if (contentHash(c.model) !== c.modelHash) return fail('model does not match its hash')
  // checkpoints from before the task named its input are of MNIST-shaped sets (MNIST, Fashion-MNIST);
  // before protocol 8 the strategy's fields stood in the task itself
  const { aggregation, trim, byzantine, clip, normBound, serverOptimizer, serverLr, ...saved } = c.task as Task & Partial<StrategySpec>
  const strategy = c.task.strategy ?? { aggregation, trim, byzantine, clip, normBound, serverOptimizer: serverOptimizer ?? 'none', serverLr: serverLr ?? 1 } as StrategySpec
  const task: Task = { ...{ input: '28x28x1', classes: 10, inputScale: 255, lrSchedule: 'constant', optimizer: 'sgd', proxMu: 0 }, ...saved, strategy }
  return { round: c.round, term: c.term, modelHash: c.modelHash, model: c.model, task, history: c.history, roundCert: c.roundCert, termCert: c.termCert, ...(c.proven === undefined ? {} : { proven: c.proven }) }
}

function isProvenEntry (e: unknown): boolean {
  return Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && e[0].length <= 128 && Number.isSafeInteger(e[1]) && e[1] >= 0
}

/** Checkpoints in a data directory (--data-dir); a failure to write names the directory. */
export class DataDirStore {
  readonly dataDir: string
  constructor (dataDir: string) { this.dataDir = dataDir }

  async save (checkpoint: Checkpoint): Promise<void> {
    try {
      await saveCheckpoint(this.dataDir, checkpoint)
    } catch (err) {
      throw new Error(`--data-dir ${this.dataDir}: ${(err as Error).message}`)
    }
  }

  /** one vote written at a time, in the order given: two writes of one temporary file would mix */
  private voteWrites: Promise<void> = Promise.resolve()

  async saveVote (vote: SavedVote): Promise<void> {
    const write = this.voteWrites.then(async () => {
      try {
        await saveVote(this.dataDir, vote)
      } catch (err) {
        throw new Error(`--data-dir ${this.dataDir}: ${(err as Error).message}`)
      }
    })
    this.voteWrites = write.catch(() => {}) // the caller hears the failure; the next write goes ahead
    await write
  }
}

/** The vote a peer gave last: written before anyone hears it (see DmlNode.saveVote). */
export interface SavedVote {
  term: number
  candidate: string
}

/** Writes <data-dir>/vote.json, through a temporary file, synced and renamed. */
export async function saveVote (dataDir: string, vote: SavedVote): Promise<void> {
  await mkdir(dataDir, { recursive: true })
  await writeSynced(join(dataDir, 'vote.json'), JSON.stringify({ term: vote.term, candidate: vote.candidate }))
}

/** The saved vote; none if there is no file. A file that does not read as one is reported through `onCorrupt`. */
export async function loadVote (dataDir: string, onCorrupt: (err: Error) => void): Promise<SavedVote | undefined> {
  const path = join(dataDir, 'vote.json')
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch {
    return undefined
  }
  try {
    const v = JSON.parse(text) as Partial<SavedVote> | null
    if (v === null || typeof v !== 'object' || !Number.isSafeInteger(v.term) || (v.term as number) < 1 || typeof v.candidate !== 'string' || v.candidate === '') throw new Error('unexpected layout')
    return { term: v.term as number, candidate: v.candidate }
  } catch (err) {
    onCorrupt(new CheckpointError(`${path}: ${(err as Error).message}`))
    return undefined
  }
}

/** The newest checkpoint that verifies; corrupt ones are reported through `onCorrupt` and skipped. */
export async function loadLatestCheckpoint (dataDir: string, onCorrupt: (err: Error) => void): Promise<Checkpoint | undefined> {
  const dir = join(dataDir, 'checkpoints')
  for (const name of await listCheckpoints(dir)) {
    try {
      return parseCheckpoint(await readFile(join(dir, name)), join(dir, name))
    } catch (err) {
      onCorrupt(err as Error)
    }
  }
  return undefined
}


/**
 * The newest checkpoint of `dataDir`, or if it holds none, of the data directories right under it
 * (the README's network keeps its peers in .dml/a, .dml/b, ...): the highest round, the first by
 * name among equals, with the others found beside it.
 */
export async function loadNewestCheckpointUnder (dataDir: string, onCorrupt: (err: Error) => void): Promise<{ checkpoint: Checkpoint, dir: string, others: Array<{ dir: string, round: number }> } | undefined> {
  const own = await loadLatestCheckpoint(dataDir, onCorrupt)
  if (own !== undefined) return { checkpoint: own, dir: dataDir, others: [] }
  let names: string[]
  try {
    names = (await readdir(dataDir, { withFileTypes: true })).filter(e => e.isDirectory()).map(e => e.name).sort()
  } catch {
    return undefined // no such directory: it holds no checkpoint
  }
  const found: Array<{ dir: string, checkpoint: Checkpoint }> = []
  for (const name of names) {
    const checkpoint = await loadLatestCheckpoint(join(dataDir, name), onCorrupt)
    if (checkpoint !== undefined) found.push({ dir: join(dataDir, name), checkpoint })
  }
  if (found.length === 0) return undefined
  const newest = found.reduce((best, f) => f.checkpoint.round > best.checkpoint.round ? f : best)
  return { ...newest, others: found.filter(f => f !== newest).map(f => ({ dir: f.dir, round: f.checkpoint.round })) }
}
