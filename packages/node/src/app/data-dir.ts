// The data directory (--data-dir) belongs to one running node: two nodes on one directory would
// share an identity and overwrite each other's checkpoints. A lock file holds the owner's pid;
// one left behind by a node that died is taken over.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError } from './errors.ts'

export interface DataDirLock {
  readonly path: string
  release: () => void
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' // exists, owned by someone else
  }
}

/** Creates `dir` if needed and locks it for this process; a clear error if another node holds it. */
export function lockDataDir (dir: string): DataDirLock {
  const fail = (err: unknown): never => {
    const e = err as NodeJS.ErrnoException
    throw new ConfigError(`cannot use --data-dir ${dir}: ${e.code === 'EACCES' ? 'permission denied' : e.code === 'ENOTDIR' ? 'a part of the path is a file, not a directory' : e.message}`)
  }
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
  } catch (err) {
    fail(err)
  }
  const path = join(dir, 'lock')
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx', mode: 0o600 })
      const release = (): void => {
        try {
          if (readFileSync(path, 'utf8').trim() === String(process.pid)) rmSync(path, { force: true })
        } catch {} // already gone: nothing to release
      }
      process.once('exit', release)
      return { path, release }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') fail(err)
    }
    const owner = Number.parseInt(readFileSync(path, 'utf8'), 10)
    if (Number.isSafeInteger(owner) && owner > 0 && owner !== process.pid && alive(owner)) {
      throw new ConfigError(`--data-dir ${dir} is in use by another dml-node (pid ${owner}); give every node its own --data-dir`)
    }
    rmSync(path, { force: true }) // left by a node that is gone
  }
  throw new ConfigError(`cannot lock --data-dir ${dir}: another process keeps creating ${path}`)
}
