// Starts dml-node processes and follows their --json-logs events. Used by the demo (npm start),
// the benchmarks and the system tests: one way to run a local network of real peers.
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const DML_NODE_BIN = fileURLToPath(new URL('../../../../bin/dml-node.js', import.meta.url))
export const DML_MONITOR_BIN = fileURLToPath(new URL('../../../../bin/dml-monitor.js', import.meta.url))

export interface LogEvent {
  event: string
  ts: number
  [key: string]: any
}

type Waiter = { match: (e: LogEvent) => boolean, resolve: (e: LogEvent) => void, reject: (err: Error) => void }

export class TimeoutError extends Error {
  override name = 'TimeoutError'
}

/** The process ended before the event it was waited for. */
export class ExitedError extends Error {
  override name = 'ExitedError'
}

/** A child process that prints one JSON object per line; its events can be awaited. */
export class EventProcess {
  readonly name: string
  readonly child: ChildProcess
  readonly events: LogEvent[] = []
  readonly stderr: string[] = []
  readonly exited: Promise<number | null>
  private waiters: Waiter[] = []
  onEvent?: (e: LogEvent, p: EventProcess) => void

  constructor (name: string, command: string, args: string[], options: { env?: NodeJS.ProcessEnv, onEvent?: (e: LogEvent, p: EventProcess) => void, wrap?: string[], stdin?: boolean } = {}) {
    this.name = name
    this.onEvent = options.onEvent
    const [cmd, ...rest] = [...(options.wrap ?? []), command, ...args]
    this.child = spawn(cmd, rest, { stdio: [options.stdin === true ? 'pipe' : 'ignore', 'pipe', 'pipe'], env: options.env ?? process.env })
    createInterface({ input: this.child.stdout! }).on('line', line => { this.line(line) })
    createInterface({ input: this.child.stderr! }).on('line', line => { this.stderr.push(line); if (this.stderr.length > 200) this.stderr.shift() })
    this.exited = new Promise(resolve => this.child.once('exit', code => { resolve(code) }))
    // nothing can come after exit: whoever still waits hears why now, not at a timeout
    // ('close' comes after the output streams are read, so the last lines are in)
    this.child.once('close', (code, signal) => {
      const waiters = this.waiters
      this.waiters = []
      for (const w of waiters) w.reject(new ExitedError(`${this.name} exited (${signal ?? `code ${String(code)}`}) before the event; stderr: ${this.stderr.slice(-5).join(' | ') || '(none)'}`))
    })
  }

  private line (line: string): void {
    let event: LogEvent
    try {
      event = JSON.parse(line)
    } catch {
      event = { event: 'text', ts: Date.now(), msg: line }
    }
    if (typeof event?.event !== 'string') event = { event: 'text', ts: Date.now(), msg: line }
    this.events.push(event)
    this.onEvent?.(event, this)
    this.waiters = this.waiters.filter(w => { if (w.match(event)) { w.resolve(event); return false } return true })
  }

  /** The first event (already seen, or future) that matches; fails loudly after `timeoutMs`. */
  async waitFor (match: string | ((e: LogEvent) => boolean), timeoutMs: number, after = 0): Promise<LogEvent> {
    const test = typeof match === 'string' ? (e: LogEvent) => e.event === match : match
    const seen = this.events.slice(after).find(test)
    if (seen !== undefined) return seen
    if (this.closed) throw new ExitedError(`${this.name} has exited (code ${String(this.child.exitCode ?? this.child.signalCode)}); stderr: ${this.stderr.slice(-5).join(' | ') || '(none)'}`)
    return await new Promise<LogEvent>((resolve, reject) => {
      const waiter: Waiter = {
        match: test,
        resolve: (e) => { clearTimeout(timer); resolve(e) },
        reject: (err) => { clearTimeout(timer); reject(err) }
      }
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter(w => w !== waiter)
        reject(new TimeoutError(`${this.name}: no ${typeof match === 'string' ? `"${match}" event` : 'matching event'} within ${timeoutMs} ms; last events: ${this.events.slice(-5).map(e => e.msg ?? e.event).join(' | ')}; stderr: ${this.stderr.slice(-5).join(' | ')}`))
      }, timeoutMs)
      this.waiters.push(waiter)
    })
  }

  /** Writes one line to the process's stdin (started with `stdin: true`). */
  send (line: string): void {
    this.child.stdin?.write(`${line}\n`)
  }

  kill (signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal)
  }

  /** The process has exited and its output has been read. */
  get closed (): boolean {
    return this.child.stdout!.readableEnded && !this.running
  }

  get running (): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }
}

/** A dml-node started with --json-logs. */
export class PeerProcess extends EventProcess {
  /**
   * Peers launched here share one machine's cores, so each trains on one thread unless `args`
   * say otherwise (--threads): a peer's default of a thread per core is for a machine of its own.
   * `bin`: the dml-node to run, this checkout's by default (the built package's, for one).
   */
  constructor (name: string, args: string[], options: { onEvent?: (e: LogEvent, p: EventProcess) => void, wrap?: string[], bin?: string } = {}) {
    const threads = args.some(a => a === '--threads' || a.startsWith('--threads=')) ? [] : ['--threads', '1']
    super(name, process.execPath, [options.bin ?? DML_NODE_BIN, '--json-logs', ...threads, ...args], options)
  }

  async peerId (timeoutMs = 60_000): Promise<string> {
    return (await this.waitFor('started', timeoutMs)).peerId as string
  }

  /** A multiaddr that others can bootstrap from (the first with /ip4/ that matches `ip`, if given). */
  async multiaddr (ip?: string, timeoutMs = 60_000): Promise<string> {
    const e = await this.waitFor(ev => ev.event === 'listening' && (ip === undefined || String(ev.addr).startsWith(`/ip4/${ip}/`)), timeoutMs)
    return e.addr as string
  }

  async statusUrl (timeoutMs = 60_000): Promise<string> {
    const e = await this.waitFor('status-api', timeoutMs)
    return `${e.tls === true ? 'https' : 'http'}://127.0.0.1:${e.port as number}/api/status`
  }
}
