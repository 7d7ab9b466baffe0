// A dml network on Hosts: one dml-node per host (mDNS discovery, no bootstrap), which a test can
// kill, restart and cut off. Events of every process it ever ran are kept for the checks.
import { execFile } from 'node:child_process'
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ExitedError, PeerProcess, TimeoutError, type LogEvent } from '@dml/node/launcher'
import { within } from '../helpers.ts'

/** Hosts a cluster runs on: Hosts (one LAN) or NatHosts (sites behind NAT). */
export interface HostSet {
  readonly count: number
  address: (i: number) => string
  /** the prefix of a command that runs on host i */
  wrap: (i: number) => string[]
}

const run = promisify(execFile)

export type HostEvent = LogEvent & { host: string }

export class Cluster {
  readonly hosts: HostSet
  readonly dir = mkdtempSync(join(tmpdir(), 'dml-hosts-'))
  readonly args: string[]
  /** options of host i's peer only */
  readonly own: (i: number) => string[]
  /** the process now running on each host, if any */
  readonly current: Array<PeerProcess | undefined>
  /** every process started, in order */
  readonly all: PeerProcess[] = []

  constructor (hosts: HostSet, args: string[], own: (i: number) => string[] = () => []) {
    this.hosts = hosts
    this.args = args
    this.own = own
    this.current = new Array(hosts.count).fill(undefined)
  }

  dataDir (i: number): string { return join(this.dir, `host${i}`) }

  start (i: number): PeerProcess {
    const peer = new PeerProcess(`host${i}`, ['--host', this.hosts.address(i), '--port', '4001', '--data-dir', this.dataDir(i), ...this.args, ...this.own(i)], { wrap: this.hosts.wrap(i) })
    this.current[i] = peer
    this.all.push(peer)
    return peer
  }

  startAll (): PeerProcess[] {
    return this.current.map((_, i) => this.start(i))
  }

  async kill (i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const peer = this.current[i]
    if (peer === undefined) return
    peer.kill(signal)
    await peer.exited
    this.current[i] = undefined
  }

  async stopAll (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await Promise.all(this.current.map(async (_, i) => { await this.kill(i, signal) }))
  }

  /** Every event of every process, oldest first. */
  events (match: (e: HostEvent) => boolean = () => true): HostEvent[] {
    return this.all.flatMap(p => p.events.map(e => ({ ...e, host: p.name })).filter(match)).sort((a, b) => a.ts - b.ts)
  }

  /** The first event from a running process (already seen since `sinceTs`, or future) that matches. */
  async waitAny (match: (e: HostEvent) => boolean, timeoutMs: number, sinceTs = 0): Promise<HostEvent> {
    const seen = this.events(e => e.ts >= sinceTs && match(e))[0]
    if (seen !== undefined) return seen
    const running = this.current.filter((p): p is PeerProcess => p !== undefined)
    try {
      return await Promise.any(running.map(async p => ({ ...await p.waitFor(e => e.ts >= sinceTs && match({ ...e, host: p.name }), timeoutMs), host: p.name })))
    } catch (err) {
      const why = (err as AggregateError).errors ?? []
      // a process that could not start says why on stderr: that, not a timeout, is the news
      if (why.length > 0 && why.every(e => e instanceof ExitedError)) throw new ExitedError(`every host's process exited before the event: ${why.map(e => (e as Error).message).join(' / ')}`)
      throw new TimeoutError(`no matching event on any host within ${timeoutMs} ms; last events: ${this.events().slice(-8).map(e => `${e.host}: ${String(e.msg ?? e.event)}`).join(' | ')}`)
    }
  }

  /** Waits until every running process has exited; names those still running after `timeoutMs`, with their last events. */
  async allExited (timeoutMs: number): Promise<void> {
    try {
      await within(Promise.all(this.current.map(async p => await p?.exited)), timeoutMs, 'every peer exits')
    } catch {
      // the ones still running are named below
    }
    const running = this.current.filter((p): p is PeerProcess => p?.running === true)
    if (running.length > 0) {
      throw new TimeoutError(`still running ${timeoutMs} ms later: ${running.map(p => `${p.name} (last events: ${p.events.slice(-12).map(e => String(e.msg ?? e.event)).join(' | ')})`).join('; ')}`)
    }
  }

  /** Index of the host whose process started the latest round: the leader, as far as events tell. */
  leader (): number {
    const last = this.events(e => e.event === 'round-start').at(-1)
    if (last === undefined) throw new Error('no round has started')
    return Number(last.host.replace('host', ''))
  }

  /** GET /api/status of host i, from inside its namespace. */
  async status (i: number): Promise<any> {
    const url = `http://${this.hosts.address(i)}:5000/api/status`
    const { stdout } = await run('ip', [...this.hosts.wrap(i).slice(1), process.execPath, '-e',
      `fetch(${JSON.stringify(url)}, { signal: AbortSignal.timeout(5000) }).then(r => r.text()).then(t => process.stdout.write(t))`])
    return JSON.parse(stdout)
  }

  /** Model hash of every finished round, as announced or adopted by anyone; throws on a conflict. */
  roundHashes (): Map<number, string> {
    const hashes = new Map<number, string>()
    for (const e of this.events(ev => ev.event === 'round-done' || (ev.event === 'model-adopted' && ev.accuracy !== undefined))) {
      const known = hashes.get(e.round)
      if (known !== undefined && known !== e.modelHash) throw new Error(`round ${e.round as number} finished twice with different models: ${known.slice(0, 12)} and ${String(e.modelHash).slice(0, 12)} (${e.host})`)
      hashes.set(e.round, e.modelHash)
    }
    return hashes
  }

  async destroy (): Promise<void> {
    await this.stopAll('SIGKILL')
    // DML_TEST_EVENTS=file keeps every event of the run for a post-mortem
    if (process.env.DML_TEST_EVENTS !== undefined) appendFileSync(process.env.DML_TEST_EVENTS, this.events().map(e => JSON.stringify(e)).join('\n') + '\n')
    rmSync(this.dir, { recursive: true, force: true })
  }
}
