/// <reference lib="dom" />
// What a person watching a run sees, against three real peers: the web dashboard in a real
// browser (Debian's Chromium, headless, driven by playwright-core), live as rounds finish and when
// the leader is killed, with a screenshot saved; and dml-monitor's terminal view in a
// pseudo-terminal (util-linux's script).
import { expect } from 'chai'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { DML_MONITOR_BIN } from '@dml/node/launcher'
import { LocalNetwork, getJson } from './helpers.ts'

const MINUTE = 60_000
const CHROMIUM = process.env.DML_CHROMIUM ?? '/usr/bin/chromium'
// no sandbox as root; nothing that reaches for the internet (this machine has none)
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

/** dml-monitor in a pseudo-terminal: what it draws, as the screen's text (escape sequences removed). */
class MonitorInTerminal {
  readonly child: ChildProcess
  private output = ''

  constructor (bootstrap: string) {
    const command = [process.execPath, DML_MONITOR_BIN, '--host', '127.0.0.1', '--no-mdns', '--bootstrap', bootstrap].join(' ')
    this.child = spawn('script', ['-qfec', command, '/dev/null'], { detached: true, env: { ...process.env, TERM: 'xterm', COLUMNS: '120', LINES: '40' } })
    this.child.stdout!.on('data', (chunk: Buffer) => { this.output += chunk.toString() })
  }

  /** The last screen drawn. */
  screen (): string {
    return this.output.slice(this.output.lastIndexOf('\x1b[H')).replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
  }

  async until (what: string, test: (screen: string) => boolean, timeoutMs: number): Promise<string> {
    const started = Date.now()
    while (!test(this.screen())) {
      if (Date.now() - started > timeoutMs) throw new Error(`monitor: not within ${timeoutMs} ms: ${what}\n--- the screen:\n${this.screen()}`)
      await new Promise(resolve => setTimeout(resolve, 250)) // polls the captured output: the event is a redraw we cannot hook
    }
    return this.screen()
  }

  stop (): void {
    if (this.child.pid !== undefined && this.child.exitCode === null) process.kill(-this.child.pid, 'SIGKILL')
  }
}

/** Waits in the page until `predicate` holds, failing loudly with what the page shows. */
async function until (page: Page, what: string, predicate: () => boolean, timeoutMs: number): Promise<void> {
  try {
    await page.waitForFunction(predicate, undefined, { timeout: timeoutMs, polling: 250 })
  } catch (err) {
    const shown = await page.evaluate(() => document.body.innerText.slice(0, 1500)).catch(() => '(page gone)')
    throw new Error(`dashboard: not within ${timeoutMs} ms: ${what} (${(err as Error).message.split('\n')[0]})\n--- the page shows:\n${shown}`)
  }
}

describe('watching a run: the dashboard and the monitor', function () {
  this.timeout(8 * MINUTE)
  const net = new LocalNetwork()
  let browser: Browser | undefined
  let monitor: MonitorInTerminal | undefined
  before(function () {
    if (!existsSync(CHROMIUM)) {
      console.log(`    (skipped: no Chromium at ${CHROMIUM}; apt-get install chromium, or set DML_CHROMIUM)`)
      this.skip()
    }
  })
  after(async () => {
    monitor?.stop()
    await browser?.close()
    await net.stop()
  })

  it('the dashboard shows the chart, the peers and the leader, live through a round and the leader\'s death; the monitor\'s terminal view the leader, the round, its progress and the peers', async () => {
    const peers = await net.start(3, ['--min-peers', '2', '--rounds', '30', '--local-epochs', '0.2'])
    await Promise.any(peers.map(async p => await p.waitFor('round-done', 3 * MINUTE)))
    const statuses = await Promise.all(peers.map(async p => await getJson(await p.statusUrl())))
    const leader = statuses.find(s => s.isLeader)
    expect(leader, 'a leader').to.not.equal(undefined)
    // the dashboard of a follower, which lives through the leader's death
    const follower = peers[statuses.findIndex(s => !s.isLeader)]
    const base = (await follower.statusUrl()).replace('/api/status', '')

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS })
    const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } })
    const requests: string[] = []
    page.on('request', r => { requests.push(r.url()) })
    const failed: string[] = []
    page.on('response', r => { if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`) })
    const errors: string[] = []
    page.on('pageerror', e => { errors.push(e.message) })
    await page.goto(`${base}/`)

    await until(page, 'live, with a chart of at least one round', () =>
      document.getElementById('connection')!.classList.contains('live') &&
      document.querySelector('#chart canvas') !== null &&
      Number(document.getElementById('chart')!.dataset.rounds) >= 1, 30_000)
    await until(page, 'three peers in the table', () => document.querySelectorAll('#peers tbody tr').length === 3, 30_000)
    expect(await page.getAttribute('#leader', 'data-peer')).to.equal(leader.peerId)
    expect(await page.locator('#peers tbody tr.leader').getAttribute('data-peer')).to.equal(leader.peerId)
    expect(await page.locator('#events li').count()).to.be.greaterThan(0)

    // a round finishing reaches the chart without a reload; the round's progress shows while it trains
    const plotted = Number(await page.getAttribute('#chart', 'data-rounds'))
    await until(page, 'a round in training', () => /round \d+: \d+% trained/.test(document.getElementById('progress-text')!.textContent!), 2 * MINUTE)
    await page.waitForFunction((n) => Number(document.getElementById('chart')!.dataset.rounds) > n, plotted, { timeout: 2 * MINUTE, polling: 250 })
    // the legend shows the newest round's figures without a hover, not "--"
    const legend = await page.$$eval('#chart .u-legend .u-value', cells => cells.map(c => c.textContent ?? ''))
    expect(legend.length, 'legend values').to.be.at.least(3)
    expect(legend.every(v => v !== '--' && v !== ''), legend.join(' | ')).to.equal(true)

    // the monitor, joining late, on a terminal: the screen, with the round finished before it joined
    monitor = new MonitorInTerminal(await peers[0].multiaddr('127.0.0.1'))
    const ids = statuses.map(st => (st.peerId as string).slice(-6))
    const screen = await monitor.until('the leader, the round, its progress and three peers', s =>
      ids.some(id => s.includes(`leader ${id} (term `)) &&
      /round \d+ of 30/.test(s) && /round \d+ {2}(█|░)+ +\d+% {2}ETA/.test(s) &&
      ids.every(id => new RegExp(`^${id}( ★|  ) {2}cpu`, 'm').test(s)), 2 * MINUTE)
    // the newest round finished before it joined, from its certificate; unless a round finished
    // live came first (rounds of this size take a second or two), which the monitor shows instead
    expect(screen).to.match(/round \d+ done: accuracy [\d.]+%, signed by \d+( \(before this monitor joined\))?/)
    expect(screen).to.match(/accuracy {2}[▁▂▃▄▅▆▇█]+ {2}[\d.]+% \(round \d+/)

    // the leader dies: the dashboard names the new one
    peers[statuses.indexOf(leader)].kill('SIGKILL')
    await page.waitForFunction((old) => {
      const now = document.getElementById('leader')!.dataset.peer
      return now !== undefined && now !== '' && now !== old
    }, leader.peerId, { timeout: 2 * MINUTE, polling: 250 })
    await until(page, 'two peers in the table', () => document.querySelectorAll('#peers tbody tr').length === 2, MINUTE)
    // the events say so: the old leader dropped (as "leader-lost" only if no new leader came first), a leader elected or followed
    await until(page, 'the lost peer and the new leader among the events', () =>
      document.querySelector('#events li[data-event="peer-lost"]') !== null &&
      document.querySelector('#events li[data-event="leader-elected"], #events li[data-event="leader-followed"]') !== null, MINUTE)

    // the peer whose page this is dies: the page says so, and no longer says it trains
    follower.kill('SIGKILL')
    await until(page, 'the page saying its peer is not answering', () =>
      document.getElementById('connection')!.textContent === 'reconnecting…' && /^not answering since /.test(document.getElementById('state')!.textContent!), MINUTE)

    const dir = process.env.DML_TEST_ARTIFACTS ?? tmpdir()
    mkdirSync(dir, { recursive: true })
    const shot = join(dir, 'dml-dashboard.png')
    await page.screenshot({ path: shot, fullPage: true })
    writeFileSync(join(dir, 'dml-monitor.txt'), monitor.screen())
    console.log(`    screenshot: ${shot}; the monitor's last screen: ${join(dir, 'dml-monitor.txt')}`)

    expect(errors, 'errors in the page').to.deep.equal([])
    expect(failed, 'requests the peer refused (a missing icon, a file)').to.deep.equal([])
    // offline: every file the page loaded came from the peer itself
    expect(requests.filter(u => !u.startsWith(base))).to.deep.equal([])
  })
})
