// A browser tab as a peer, for real: two dml-node processes and two tabs of Debian's Chromium
// (headless, driven by playwright-core), each tab opened on the /train page of a node, in a
// browser context of its own (its own storage: its own key). The tabs dial the nodes over
// WebSockets, train on the data set the nodes serve, check and sign rounds, and never lead.
import { expect } from 'chai'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import type { LogEvent } from '@dml/node/launcher'
import { mnistDirectory } from '@dml/trainer'
import { getJson, LocalNetwork, selfSignedCert } from './helpers.ts'

const MINUTE = 60_000
const CHROMIUM = process.env.DML_CHROMIUM ?? '/usr/bin/chromium'
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // a tab in the background trains as one in front (the test's tabs are all in the background)
  '--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows']

/** How `page`'s tab reaches `other`: waits until it is over WebRTC (set up through a node's relay), and fails naming its links if not within a minute. */
async function overWebRTC (page: Page, other: string): Promise<{ addr: string, reach: string }> {
  type Tab = { dmlTab: { network: () => { reach: Record<string, string>, links: Array<{ peer: string, addr: string }> } } }
  try {
    await page.waitForFunction((peer) => (window as unknown as Tab).dmlTab.network().links.some(l => l.peer === peer && l.addr.includes('/webrtc')), other, { timeout: MINUTE, polling: 250 })
  } catch (err) {
    const links = await page.evaluate(() => (window as unknown as Tab).dmlTab.network().links).catch(() => '(page gone)')
    throw new Error(`the tab did not reach ${other} over WebRTC within a minute (${(err as Error).message.split('\n')[0]}); its links: ${JSON.stringify(links)}`)
  }
  return await page.evaluate((peer) => {
    const n = (window as unknown as Tab).dmlTab.network()
    return { addr: n.links.find(l => l.peer === peer && l.addr.includes('/webrtc'))!.addr, reach: n.reach[peer] }
  }, other)
}

/** The tab's peer id, once it has joined (its page sets window.dmlTab). */
async function joined (page: Page): Promise<string> {
  try {
    await page.waitForFunction(() => (window as unknown as { dmlTab?: unknown }).dmlTab !== undefined, undefined, { timeout: MINUTE, polling: 250 })
  } catch (err) {
    const shown = await page.evaluate(() => document.body.innerText.slice(0, 1500)).catch(() => '(page gone)')
    throw new Error(`the tab did not join within a minute (${(err as Error).message.split('\n')[0]})\n--- the page shows:\n${shown}`)
  }
  return await page.evaluate(() => (window as unknown as { dmlTab: { peerId: string } }).dmlTab.peerId)
}

describe('a browser tab as a peer', function () {
  this.timeout(10 * MINUTE)
  const net = new LocalNetwork()
  let browser: Browser | undefined
  before(async function () {
    if (!existsSync(CHROMIUM)) {
      console.log(`    (skipped: no Chromium at ${CHROMIUM}; apt-get install chromium, or set DML_CHROMIUM)`)
      this.skip()
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS })
  })
  after(async () => {
    await browser?.close()
    await net.stop()
  })

  it('two nodes and two tabs train MNIST to 97% together, all four in the rounds; a tab closed mid-round stalls no round; a reloaded tab is the same peer', async () => {
    const started = Date.now()
    // rounds start once a tab is in (the other follows within a round or two); one leaving leaves three
    const nodes = await net.start(2, ['--min-peers', '3', '--rounds', '300', '--threads', '1'])
    const pages = await Promise.all(nodes.map(async node => (await node.statusUrl()).replace('/api/status', '/train?join')))
    const errors: string[] = []
    const tabs = await Promise.all(pages.map(async url => {
      const page = await (await browser!.newContext()).newPage()
      page.on('pageerror', e => { errors.push(e.message) })
      await page.goto(url)
      return page
    }))
    const tabIds = await Promise.all(tabs.map(joined))
    expect(new Set(tabIds).size, 'two tabs, two peers').to.equal(2)
    // the tabs reach each other: WebRTC, its handshake carried by a node's relay, and no relay left between them
    const link = await overWebRTC(tabs[0], tabIds[1])
    expect(link.reach, `tab to tab over ${link.addr}`).to.not.equal('relayed')
    console.log(`      the tabs reached each other over WebRTC (${link.reach}) ${((Date.now() - started) / 1000).toFixed(1)} s after the first node started`)
    const nodeIds = await Promise.all(nodes.map(async n => await n.peerId()))
    /** The first event of either node, since `sinceTs`, that matches: whichever leads. */
    const either = async (match: (e: LogEvent) => boolean, timeoutMs: number, sinceTs = 0): Promise<LogEvent> => {
      try {
        return await Promise.any(nodes.map(async n => await n.waitFor(e => e.ts >= sinceTs && match(e), timeoutMs)))
      } catch {
        const rounds = nodes.flatMap(n => n.events.filter(e => e.event === 'round-done')).slice(-5)
        throw new Error(`neither node saw it within ${timeoutMs} ms; the last rounds: ${rounds.map(e => `${e.round as number}: ${(100 * (e.accuracy as number)).toFixed(2)}% by ${(e.participants as string[]).length}`).join(', ')}; ` +
          `the last events: ${nodes.map(n => `${n.name}: ${n.events.slice(-6).map(e => e.msg ?? e.event).join(' | ')}`).join(' // ')}`)
      }
    }

    // 97% in a round that all four took part in
    const allFour = (e: LogEvent): boolean => e.event === 'round-done' && [...nodeIds, ...tabIds].every(id => (e.participants as string[]).includes(id))
    const target = await either(e => allFour(e) && (e.accuracy as number) >= 0.97, 6 * MINUTE)
    const toTarget = (Date.now() - started) / 1000
    const leader = nodes.find(n => n.events.some(e => e.event === 'round-done' && e.round === target.round))!
    const status = await getJson(await leader.statusUrl())
    const speeds = (device: string): number[] => (status.nodes as Array<{ device: string, samplesPerSec: number }>).filter(n => n.device === device).map(n => n.samplesPerSec)
    console.log(`      97% (${(100 * (target.accuracy as number)).toFixed(2)}%) at round ${target.round as number}, ${toTarget.toFixed(1)} s after the first node started, with both tabs in the round; ` +
      `samples/s: nodes ${speeds('cpu').join(', ')}, tabs ${speeds('browser').join(', ')} (${(status.nodes as Array<{ device: string, backend: string }>).filter(n => n.device === 'browser').map(n => n.backend).join(', ')})`)
    expect(status.browserNodes).to.equal(2)
    expect(status.cpuNodes).to.equal(2)
    // a tab never leads
    expect(nodeIds).to.include(status.leader)
    expect(nodes.flatMap(n => n.events).filter(e => e.event === 'voted' && tabIds.includes(e.candidate as string))).to.deep.equal([])

    // a tab closed while a round it works in trains: that round still closes, without it
    const leaving = tabIds[1]
    const inTraining = await either(e => e.event === 'round-start' && (e.round as number) > (target.round as number), MINUTE, Date.now())
    const closedAt = Date.now()
    await tabs[1].close({ runBeforeUnload: true })
    const closed = await either(e => e.event === 'round-done' && e.round === inTraining.round, 2 * MINUTE)
    console.log(`      a tab closed as round ${inTraining.round as number} started: the round closed ${((Date.now() - closedAt) / 1000).toFixed(1)} s later, with ${(closed.participants as string[]).length} updates`)
    await either(e => e.event === 'round-done' && !(e.participants as string[]).includes(leaving), 2 * MINUTE, closedAt)

    // the other tab reloads: the same peer, back in the rounds
    const reloadedAt = Date.now()
    await tabs[0].reload()
    expect(await joined(tabs[0]), 'the same peer after a reload').to.equal(tabIds[0])
    const back = await either(e => e.event === 'round-done' && (e.participants as string[]).includes(tabIds[0]), 2 * MINUTE, reloadedAt)
    console.log(`      the reloaded tab was back in round ${back.round as number}, ${((Date.now() - reloadedAt) / 1000).toFixed(1)} s after its reload`)
    expect(errors, 'errors in the pages').to.deep.equal([])
  })

  it('a tab trains on files its user picks, which never leave it, beside a node on its own data', async () => {
    const own = new LocalNetwork()
    try {
      // the node trains on MNIST's test set as its own data; the tab on the training set's files
      const [node] = await own.start(1, ['--min-peers', '2', '--rounds', '3', '--data', join(mnistDirectory(), 't10k-images-idx3-ubyte')])
      const page = await (await browser!.newContext()).newPage()
      const requests: string[] = []
      page.on('request', r => { requests.push(new URL(r.url()).pathname) })
      await page.goto((await node.statusUrl()).replace('/api/status', '/train'))
      await page.setInputFiles('#files', ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte'].map(f => join(mnistDirectory(), f)))
      await page.click('#join')
      const tab = await joined(page)
      const done = await node.waitFor(e => e.event === 'round-done' && (e.participants as string[]).includes(tab), 3 * MINUTE)
      const said = await page.$$eval('#log li', ls => ls.map(l => l.textContent ?? ''))
      console.log(`      round ${done.round as number} with the tab on its own 54000 examples: ${(100 * (done.accuracy as number)).toFixed(2)}%`)
      expect(said.some(l => /your files: 54000 examples to train on, 6000 kept to evaluate on; they stay in this tab/.test(l)), said.slice(0, 5).join(' | ')).to.equal(true)
      expect(requests.filter(p => p.startsWith('/tab/data/')), 'the data set fetched').to.deep.equal([])
    } finally {
      await own.stop()
    }
  })

  it('a node with a certificate serves the page on https, and its tab connects over secure WebSockets', async () => {
    const secure = new LocalNetwork()
    try {
      const { cert, key } = selfSignedCert(secure.dir, '127.0.0.1')
      const [node] = await secure.start(1, ['--min-peers', '2', '--rounds', '2', '--threads', '1', '--tls-cert', cert, '--tls-key', key])
      const url = (await node.statusUrl()).replace('/api/status', '/train?join')
      expect(url).to.match(/^https:/)
      // the test's certificate is its own: the browser is told to take it, as a user would install theirs
      const page = await (await browser!.newContext({ ignoreHTTPSErrors: true })).newPage()
      await page.goto(url)
      const tab = await joined(page)
      const done = await node.waitFor(e => e.event === 'round-done' && (e.participants as string[]).includes(tab), 3 * MINUTE)
      const links = await page.evaluate(() => (window as unknown as { dmlTab: { network: () => { links: Array<{ addr: string }> } } }).dmlTab.network().links.map(l => l.addr))
      expect(links.length > 0 && links.every(a => a.includes('/tls/ws')), `the tab's links: ${links.join(' ')}`).to.equal(true)
      console.log(`      round ${done.round as number} with a tab on https and wss: ${(100 * (done.accuracy as number)).toFixed(2)}%`)
    } finally {
      await secure.stop()
    }
  })
})
