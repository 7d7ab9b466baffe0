// dml's version, for dml-node and dml-monitor: from the nearest package.json of dml above this
// module (the clone's root, named dml, or the installed package's, published as dml-node).
import { readFileSync } from 'node:fs'

/** The name the package is published under (scripts/build-package.ts): its command's. */
export const PUBLISHED_NAME = 'dml-node'

export function version (): string {
  for (let dir = new URL('.', import.meta.url); ; dir = new URL('..', dir)) {
    try {
      const manifest = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string, version: string }
      if (manifest.name === 'dml' || manifest.name === PUBLISHED_NAME) return manifest.version
    } catch {
      // no package.json here: look further up
    }
    if (dir.pathname === '/') return 'unknown'
  }
}
