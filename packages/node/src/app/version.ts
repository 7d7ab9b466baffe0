// dml's version, for dml-node and dml-monitor: from the nearest package.json named dml above this
// module (the clone's root, or the installed package's).
import { readFileSync } from 'node:fs'

export function version (): string {
  for (let dir = new URL('.', import.meta.url); ; dir = new URL('..', dir)) {
    try {
      const manifest = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string, version: string }
      if (manifest.name === 'dml') return manifest.version
    } catch {
      // no package.json here: look further up
    }
    if (dir.pathname === '/') return 'unknown'
  }
}
