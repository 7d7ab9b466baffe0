// System-test helpers: real dml-node processes on loopback, stopped after each test.
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { EventProcess, PeerProcess, DML_MONITOR_BIN, DML_NODE_BIN, type LogEvent } from '@dml/node/launcher'

/** A model that trains in a tenth of a second a round (test/fixtures/tiny-models.js), for 1000 rounds: a network that is always training. */
export const TINY_NET_ARGS = ['--model-module', fileURLToPath(new URL('./fixtures/tiny-models.js', import.meta.url)), '--model', 'tiny-net', '--rounds', '1000', '--local-epochs', '0.05', '--eval-samples', '500']

export class LocalNetwork {
  readonly dir = mkdtempSync(join(tmpdir(), 'dml-test-'))
  readonly peers: PeerProcess[] = []
  readonly others: EventProcess[] = []

  /** Starts `count` peers; the first is the bootstrap peer of the others. */
  async start (count: number, args: string[]): Promise<PeerProcess[]> {
    for (let i = 0; i < count; i++) await this.add(args)
    return this.peers
  }

  async add (args: string[], name = `peer${this.peers.length + 1}`): Promise<PeerProcess> {
    const bootstrap = this.peers.length === 0 ? [] : ['--bootstrap', await this.peers[0].multiaddr('127.0.0.1')]
    const peer = new PeerProcess(name, ['--host', '127.0.0.1', '--port', '0', '--no-mdns', '--http-port', '0', '--data-dir', join(this.dir, name), ...bootstrap, ...args])
    this.peers.push(peer)
    return peer
  }

  /**
   * Starts `count` peers at the same moment, as machines that know their bootstrap address
   * beforehand are started: the first on a port chosen beforehand with an identity made
   * beforehand, the others bootstrapping from it at once. `launched`: when they were. `bin`: the
   * dml-node to run (the built package's, for one).
   */
  async startTogether (count: number, args: string[], bin = DML_NODE_BIN): Promise<{ peers: PeerProcess[], launched: number }> {
    const first = join(this.dir, 'peer1')
    const id = execFileSync(process.execPath, [bin, 'keygen', '--data-dir', first], { encoding: 'utf8' }).trim()
    const port = await freePort()
    const common = ['--host', '127.0.0.1', '--no-mdns', '--http-port', '0', ...args]
    const launched = Date.now()
    this.peers.push(new PeerProcess('peer1', [...common, '--port', String(port), '--data-dir', first], { bin }))
    for (let i = 2; i <= count; i++) {
      this.peers.push(new PeerProcess(`peer${i}`, [...common, '--port', '0', '--data-dir', join(this.dir, `peer${i}`), '--bootstrap', `/ip4/127.0.0.1/tcp/${port}/p2p/${id}`], { bin }))
    }
    return { peers: this.peers, launched }
  }

  /** Starts one dml-node that joins no one: for checks of a single process. */
  alone (name: string, args: string[]): PeerProcess {
    const peer = new PeerProcess(name, ['--host', '127.0.0.1', '--port', '0', '--no-mdns', '--http-port', '0', '--data-dir', join(this.dir, name), ...args])
    this.others.push(peer)
    return peer
  }

  /** Runs a dml-node subcommand (keygen, export, ...) as it is typed. */
  command (name: string, args: string[]): EventProcess {
    const process_ = new EventProcess(name, process.execPath, [DML_NODE_BIN, ...args])
    this.others.push(process_)
    return process_
  }

  async monitor (args: string[]): Promise<EventProcess> {
    const monitor = new EventProcess('monitor', process.execPath, [DML_MONITOR_BIN, '--host', '127.0.0.1', '--no-mdns', '--bootstrap', await this.peers[0].multiaddr('127.0.0.1'), ...args])
    this.others.push(monitor)
    return monitor
  }

  async stop (): Promise<void> {
    const all = [...this.peers, ...this.others]
    for (const p of all) p.kill('SIGKILL')
    await Promise.all(all.map(async p => await p.exited))
    rmSync(this.dir, { recursive: true, force: true })
  }
}

export async function getJson (url: string): Promise<any> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) })
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`)
  return await res.json()
}

export function roundsDone (events: LogEvent[]): LogEvent[] {
  return events.filter(e => e.event === 'round-done')
}

/** Each round that any of `peers` finished as leader, once, in order. */
export function finishedRounds (peers: PeerProcess[]): LogEvent[] {
  return [...new Map(peers.flatMap(p => roundsDone(p.events)).map(r => [r.round, r])).values()].sort((a, b) => a.round - b.round)
}

/** A self-signed certificate for `host` (an IP address) and its key, PEM files in `dir`, made by openssl. */
export function selfSignedCert (dir: string, host: string): { cert: string, key: string } {
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${host}`, '-addext', `subjectAltName=IP:${host}`, '-keyout', key, '-out', cert], { stdio: 'ignore' })
  return { cert, key }
}

/** `promise`, or a loud failure naming `what` after `ms`. */
export async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`not within ${ms} ms: ${what}`)) }, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Prometheus's text format, checked line by line: every sample by its name and labels as written
 * (`name{a="x"}`). A line that is neither a comment nor a sample fails loudly.
 */
export async function scrapeMetrics (url: string): Promise<Map<string, number>> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) })
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`)
  if (!(res.headers.get('content-type') ?? '').startsWith('text/plain')) throw new Error(`${url}: content-type ${String(res.headers.get('content-type'))}`)
  const samples = new Map<string, number>()
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || /^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* /.test(line)) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})?) (-?[0-9.eE+-]+|NaN|[+-]Inf)$/.exec(line)
    if (m === null) throw new Error(`${url}: not a Prometheus sample line: ${line}`)
    samples.set(m[1], Number(m[2]))
  }
  return samples
}

/**
 * The package users install (npm run package's bundle), built inside this checkout so that it
 * finds its dependencies in node_modules: its dml-node.js, and how to remove it.
 */
export function buildPackage (): { bin: string, remove: () => void } {
  const root = fileURLToPath(new URL('..', import.meta.url))
  const cache = join(root, 'node_modules', '.cache')
  mkdirSync(cache, { recursive: true })
  const dir = mkdtempSync(join(cache, 'dml-bench-package-'))
  execFileSync(process.execPath, [join(root, 'scripts', 'build-package.ts'), dir], { stdio: 'ignore' })
  return { bin: join(dir, 'dml-node.js'), remove: () => { rmSync(dir, { recursive: true, force: true }) } }
}

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise(resolve => server.close(resolve))
  return port
}
