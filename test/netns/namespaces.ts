// Network namespaces for the multi-host tests (hosts.ts, nat.ts): made, and removed again at
// exit whatever happens, also when the run is interrupted.
import { execFileSync } from 'node:child_process'

/** Runs a command (ip, iptables, sysctl), its stderr kept for the error. */
export function run (cmd: string, ...args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

/** Every namespace made in this process. */
const made = new Set<string>()
const removeAll = (): void => {
  for (const ns of made) {
    try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }) } catch {}
  }
  made.clear()
}
process.once('exit', removeAll)
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  process.once(signal, () => {
    removeAll()
    process.exit(code)
  })
}

/** A namespace with its loopback up. */
export function addNamespace (name: string): void {
  run('ip', 'netns', 'add', name)
  made.add(name)
  run('ip', '-n', name, 'link', 'set', 'lo', 'up')
}

/** Removes the namespaces made here whose names start with `prefix`. */
export function removeNamespaces (prefix: string): void {
  for (const ns of [...made].filter(n => n.startsWith(prefix))) {
    try { run('ip', 'netns', 'del', ns) } catch {}
    made.delete(ns)
  }
}

/** `hosts`, built; or, when that fails here, the reason, with what it needs (`needs`), and nothing left behind. */
export function buildOrWhy<T extends { build: () => void, destroy: () => void }> (hosts: T, needs: string): T | string {
  try {
    hosts.build()
    return hosts
  } catch (err) {
    hosts.destroy()
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim()
    return `cannot build the hosts (needs ${needs}): ${stderr || (err as Error).message}`
  }
}
