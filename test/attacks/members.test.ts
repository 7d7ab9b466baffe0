/// <reference lib="dom" />
// Attacks by members, on real processes: a member that was elected leader by the rules and turns
// (test/turncoat.ts, the project's own dml-node); a member that records the leader's signed
// heartbeats and replays them after its death, that floods the control topic with messages it
// signs, and that shows markup where peers show its words (test/attacker.ts). Each asserts that
// training reaches the clean run's accuracy within two points and that the liar is named.
import { expect } from 'chai'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { EventProcess, PeerProcess, type LogEvent } from '@dml/node/launcher'
import { LocalNetwork, getJson, scrapeMetrics } from '../helpers.ts'

const MINUTE = 60_000
const ATTACKER = fileURLToPath(new URL('../attacker.ts', import.meta.url))
const TURNCOAT = fileURLToPath(new URL('../turncoat.ts', import.meta.url))
const CHROMIUM = process.env.DML_CHROMIUM ?? '/usr/bin/chromium'
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
/** the round whose accuracy the clean and the attacked runs compare */
const COMPARED = 12
const OPTIONS = ['--min-peers', '3', '--rounds', '1000', '--local-epochs', '0.1', '--optimizer', 'sgd', '--lr', '0.1', '--eval-samples', '1000', '--heartbeat-ms', '500', '--lease-ms', '3000', '--transfer-timeout', '10']

const held = (e: LogEvent): boolean => e.event === 'round-done' || e.event === 'model-adopted'

/** The highest round every one of `peers` holds. */
function heldByAll (peers: EventProcess[]): number {
  return Math.min(...peers.map(p => Math.max(0, ...p.events.filter(held).map(e => e.round as number))))
}

/** The best accuracy `peers` reached by `round` (certified, as any recorded it). */
async function reachedBy (peers: EventProcess[], round: number): Promise<number> {
  await Promise.any(peers.map(async p => await p.waitFor(e => held(e) && e.round >= round, 5 * MINUTE)))
  return Math.max(...peers.flatMap(p => p.events.filter(e => held(e) && e.round <= round).map(e => e.accuracy as number)))
}

/** Resident memory of a process, in MB (Linux). */
function rssMb (pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find(l => l.startsWith('VmRSS:'))!
  return Number(/(\d+)/.exec(line)![1]) / 1024
}

/** Whether `status` and `p`'s log name `peer` for one of `reasons`. */
function names (status: any, p: EventProcess, peer: string, reasons: string[]): boolean {
  const entry = (status.misbehaviour.peers as any[]).find(e => e.peer === peer)
  const inStatus = entry !== undefined && reasons.some(r => entry.offences[r] !== undefined || entry.suspicions[r] !== undefined)
  const inLog = p.events.some(e => (e.event === 'misbehaviour' || e.event === 'suspicion') && e.peer === peer && reasons.includes(e.reason as string))
  return inStatus && inLog
}

async function attacker (net: LocalNetwork, bootstrap: string, extra: string[] = []): Promise<{ process: EventProcess, id: string }> {
  const key = await generateKeyPair('Ed25519')
  const file = join(net.dir, `attacker-${net.others.length}.key`)
  writeFileSync(file, privateKeyToProtobuf(key))
  const process_ = new EventProcess('attacker', process.execPath, [ATTACKER, file, bootstrap, ...extra], { stdin: true })
  net.others.push(process_)
  await process_.waitFor('attacker-started', MINUTE)
  return { process: process_, id: peerIdFromPrivateKey(key).toString() }
}

describe('attacks by members that turn', function () {
  this.timeout(20 * MINUTE)
  let clean = 0
  /** What training reaches despite the attack: the clean run's accuracy by round COMPARED, within two points. */
  const trainsAsClean = async (peers: EventProcess[]): Promise<void> => {
    expect(clean, 'the clean run must pass first').to.be.greaterThan(0)
    const attacked = await reachedBy(peers, COMPARED)
    console.log(`      ${(100 * attacked).toFixed(2)}% reached by round ${COMPARED} (clean ${(100 * clean).toFixed(2)}%)`)
    expect(attacked).to.be.at.least(clean - 0.02)
  }

  it(`a clean run of 4 peers, for comparison: the accuracy reached by round ${COMPARED}`, async () => {
    const net = new LocalNetwork()
    try {
      const peers = await net.start(4, OPTIONS)
      clean = await reachedBy(peers, COMPARED)
      console.log(`      clean run: ${(100 * clean).toFixed(2)}% reached by round ${COMPARED}`)
      expect(clean).to.be.greaterThan(0.9)
    } finally {
      await net.stop()
    }
  })

  it('a member elected leader by the rules turns, and certifies a round with itself and a key it made up: no honest peer adopts its model; they name it, leave it, and train on', async () => {
    const net = new LocalNetwork()
    try {
      // four identities; the turncoat's sorts first, so a fresh network elects it by the rules
      const keys = await Promise.all(Array.from({ length: 4 }, async () => await generateKeyPair('Ed25519')))
      const ids = keys.map(k => ({ key: k, id: peerIdFromPrivateKey(k).toString() })).sort((a, b) => (a.id < b.id ? -1 : 1))
      const dirs = ids.map((_, i) => join(net.dir, `peer${i + 1}`))
      ids.forEach(({ key }, i) => { mkdirSync(dirs[i], { recursive: true }); writeFileSync(join(dirs[i], 'identity.key'), privateKeyToProtobuf(key), { mode: 0o600 }) })
      const turncoat = new EventProcess('turncoat', process.execPath, [TURNCOAT, '--json-logs', '--threads', '1', '--host', '127.0.0.1', '--port', '0', '--no-mdns', '--http-port', '0', '--data-dir', dirs[0], ...OPTIONS], { stdin: true })
      net.others.push(turncoat)
      const bootstrap = (await turncoat.waitFor(e => e.event === 'listening' && String(e.addr).startsWith('/ip4/127.0.0.1/'), MINUTE)).addr as string
      const honest = dirs.slice(1).map((dir, i) => new PeerProcess(`peer${i + 2}`, ['--host', '127.0.0.1', '--port', '0', '--no-mdns', '--http-port', '0', '--data-dir', dir, '--bootstrap', bootstrap, ...OPTIONS]))
      net.peers.push(...honest)
      // elected with the honest peers' votes (up first, it may lead alone for a moment, and stands
      // again for theirs; its certificate holds the votes that made the quorum), it leads two
      // rounds as any leader would, the honest peers following it
      const elected = await turncoat.waitFor(e => e.event === 'leader-elected' && e.votes >= 2, 2 * MINUTE)
      await turncoat.waitFor(e => e.event === 'round-done' && e.round >= 2, 3 * MINUTE, turncoat.events.indexOf(elected))
      const before = honest.map(p => p.events.length)
      turncoat.send(JSON.stringify({ attack: 'forge-round' }))
      const forged = await turncoat.waitFor('turncoat-forged', MINUTE)
      console.log(`      round ${forged.round as number} certified by the turncoat and a made-up key: model ${String(forged.modelHash).slice(0, 12)}`)
      // the others leave it and go on from the last round they hold, under another leader: each
      // distrusts it, or follows (or becomes) a leader one that distrusted it first elected
      const leftTurncoat = (e: Record<string, unknown>): boolean => (e.event === 'leader-distrusted' && e.leader === ids[0].id) ||
        (e.event === 'leader-followed' && e.leader !== ids[0].id) || e.event === 'leader-elected'
      await Promise.all(honest.map(async (p, i) => await p.waitFor(leftTurncoat, 2 * MINUTE, before[i])))
      expect(honest.some((p, i) => p.events.slice(before[i]).some(e => e.event === 'leader-distrusted' && e.leader === ids[0].id)), 'someone distrusted the turncoat').to.equal(true)
      await Promise.all(honest.map(async p => await p.waitFor(e => held(e) && e.round >= (forged.round as number) + 1, 3 * MINUTE)))
      const statuses = await Promise.all(honest.map(async p => await getJson(await p.statusUrl())))
      statuses.forEach((s, i) => {
        expect(s.leader, 'it follows the turncoat').to.not.equal(ids[0].id)
        expect(s.history.some((h: any) => h.modelHash === forged.modelHash), 'it adopted the forged model').to.equal(false)
        expect(s.state).to.not.equal('finished')
        expect(names(s, honest[i], ids[0].id, ['bad-certificate', 'unproven-round']), 'it names the turncoat').to.equal(true)
      })
      const reasons = honest.flatMap(p => p.events.filter(e => e.event === 'leader-distrusted' && e.leader === ids[0].id).map(e => e.reason as string))
      console.log(`      the honest peers left it: ${[...new Set(reasons)].join('; ')}`)
      await trainsAsClean(honest)
    } finally {
      await net.stop()
    }
  })

  it('a member records the leader\'s signed heartbeats and replays them after the leader dies: the others see it gone at once, elect another, train on, and name the replayer', async () => {
    const net = new LocalNetwork()
    try {
      const peers = await net.start(4, OPTIONS)
      await Promise.any(peers.map(async p => await p.waitFor(held, 3 * MINUTE)))
      const { process: liar, id } = await attacker(net, await peers[0].multiaddr('127.0.0.1'))
      liar.send(JSON.stringify({ attack: 'record' }))
      // gossip drops a copy of a message it saw in the last two minutes: record for longer, so
      // that the oldest recorded heartbeats are new to gossip again when they are replayed
      const recorded = await liar.waitFor(e => e.event === 'recorded' && (e.count as number) >= 261, 4 * MINUTE)
      const statuses = await Promise.all(peers.map(async p => await getJson(await p.statusUrl())))
      const leaderIndex = statuses.findIndex(s => s.peerId === recorded.of)
      expect(leaderIndex, 'the recorded peer leads').to.be.at.least(0)
      const term = statuses[leaderIndex].term as number
      const survivors = peers.filter((_, i) => i !== leaderIndex)
      const from = heldByAll(survivors)
      peers[leaderIndex].kill('SIGKILL')
      const killed = Date.now()
      liar.send(JSON.stringify({ attack: 'replay', count: 600, everyMs: 100 }))
      const replaying = await liar.waitFor('replaying', MINUTE)
      expect(replaying.to).to.equal(3)
      const next = await Promise.any(survivors.map(async p => await p.waitFor(e => e.event === 'round-start' && e.term > term, 2 * MINUTE)))
      const took = next.ts - killed
      await Promise.all(survivors.map(async p => await p.waitFor(e => held(e) && e.round >= from + 2, 3 * MINUTE)))
      const during = liar.events.some(e => e.event === 'replayed')
      console.log(`      ${replaying.captured as number} heartbeats recorded, 600 sent again: the next leader's first round started ${took} ms after the kill; two more rounds done ${during ? 'after' : 'while'} the replay went on`)
      expect(took).to.be.below(20_000)
      expect(during, 'the two rounds came while the replay went on').to.equal(false)
      await liar.waitFor('replayed', 2 * MINUTE)
      const after = await Promise.all(survivors.map(async p => await getJson(await p.statusUrl())))
      after.forEach((s, i) => {
        expect(s.leader).to.not.equal(statuses[leaderIndex].peerId)
        expect(s.rejectedMessages.replayed, 'replays counted').to.be.above(0)
        expect(names(s, survivors[i], id, ['replayed']), 'the replayer named').to.equal(true)
      })
      console.log(`      replays refused: ${after.map(s => s.rejectedMessages.replayed as number).join(', ')}`)
      await trainsAsClean(survivors)
    } finally {
      await net.stop()
    }
  })

  it('a member floods the control topic for two minutes with well-formed messages it signs (heartbeats, votes, round votes): memory stays bounded, rounds go on, it is scored down and disconnected', async () => {
    const net = new LocalNetwork()
    try {
      const peers = await net.start(3, OPTIONS)
      await Promise.any(peers.map(async p => await p.waitFor(held, 3 * MINUTE)))
      const { process: liar, id } = await attacker(net, await peers[0].multiaddr('127.0.0.1'))
      // its heartbeats reach everyone before it floods
      await Promise.all(peers.map(async p => await p.waitFor(e => e.event === 'peer-joined' && e.peer === id, MINUTE)))
      const before = peers.map(p => rssMb(p.child.pid!))
      const most = [...before]
      const watch = setInterval(() => { peers.forEach((p, i) => { most[i] = Math.max(most[i], rssMb(p.child.pid!)) }) }, 500)
      const from = heldByAll(peers)
      try {
        liar.send(JSON.stringify({ attack: 'flood', ms: 2 * MINUTE }))
        await Promise.all(peers.map(async p => await p.waitFor(e => e.event === 'peer-banned' && e.peer === id, MINUTE)))
        const flooded = await liar.waitFor('flooded', 3 * MINUTE)
        const rounds = heldByAll(peers) - from
        console.log(`      ${flooded.sent as number} messages in two minutes; ${rounds} rounds done meanwhile; RSS ${before.map((b, i) => `${b.toFixed(0)} -> at most ${most[i].toFixed(0)}`).join(', ')} MB; the flooder ended with ${flooded.connectedPeers as number} lasting connections`)
        expect(rounds).to.be.at.least(3)
        most.forEach((m, i) => expect(m - before[i], `${peers[i].name}'s memory`).to.be.below(150))
        expect(flooded.connectedPeers, 'every honest peer hung up on it').to.equal(0)
      } finally {
        clearInterval(watch)
      }
      const statuses = await Promise.all(peers.map(async p => await getJson(await p.statusUrl())))
      statuses.forEach((s, i) => {
        expect(names(s, peers[i], id, ['flood']), 'the flooder named').to.equal(true)
        expect((s.misbehaviour.peers as any[]).find(e => e.peer === id).banned).to.equal(true)
        expect((s.nodes as any[]).some(n => n.peerId === id), 'counted as a node').to.equal(false)
      })
      await trainsAsClean(peers)
    } finally {
      await net.stop()
    }
  })

  it('a member shows markup and label-breaking strings where peers show its words: the dashboard (in Chromium) and /metrics show them as text; no route gives away the data directory', async function () {
    if (!existsSync(CHROMIUM)) {
      console.log(`      (skipped: no Chromium at ${CHROMIUM}; apt-get install chromium, or set DML_CHROMIUM)`)
      this.skip()
    }
    const net = new LocalNetwork()
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS })
    try {
      const swarmKey = join(net.dir, 'swarm.key')
      const secret = randomBytes(32).toString('hex')
      writeFileSync(swarmKey, `/key/swarm/psk/1.0.0/\n/base16/\n${secret}\n`)
      const peers = await net.start(3, [...OPTIONS, '--swarm-key', swarmKey])
      await Promise.any(peers.map(async p => await p.waitFor(held, 3 * MINUTE)))
      const { process: liar, id } = await attacker(net, await peers[0].multiaddr('127.0.0.1'), [swarmKey])
      liar.send(JSON.stringify({ attack: 'markup' }))
      // it is given work on probation and says its work failed, with markup for a reason
      const statuses = await Promise.all(peers.map(async p => await getJson(await p.statusUrl())))
      const leader = peers[statuses.findIndex(s => s.isLeader)]
      await leader.waitFor(e => e.event === 'work-failed' && e.peer === id, 3 * MINUTE)
      const base = (await leader.statusUrl()).replace('/api/status', '')

      const page = await browser.newPage()
      const dialogs: string[] = []
      page.on('dialog', d => { dialogs.push(d.message()); d.dismiss().catch(() => {}) })
      await page.goto(`${base}/`)
      await page.waitForFunction((peer) => document.querySelector(`#peers tbody tr[data-peer="${peer}"]`) !== null, id, { timeout: MINUTE, polling: 250 })
      await page.waitForFunction(() => Array.from(document.querySelectorAll('#events li')).some(li => li.textContent!.includes('<img src=x')), undefined, { timeout: MINUTE, polling: 250 })
      const shown = await page.evaluate((peer) => ({
        backend: document.querySelector(`#peers tbody tr[data-peer="${peer}"]`)!.children[2].textContent,
        event: Array.from(document.querySelectorAll('#events li')).map(li => li.textContent).find(t => t!.includes('<img src=x')),
        injected: document.querySelectorAll('#peers img, #events img, #peers script, #events script').length,
        pwned: (window as unknown as { __pwned?: number }).__pwned
      }), id)
      console.log(`      the dashboard shows its backend as "${String(shown.backend).replace(/\n/g, '\\n')}", and an event "${String(shown.event).slice(0, 90).replace(/\n/g, '\\n')}..."`)
      expect(shown.backend).to.equal('<img src=x onerror=window.__pwned=1>x"} 1\ndml_injected_total 1\n')
      expect(shown.event).to.include('<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>')
      expect(shown.injected, 'elements made of its markup').to.equal(0)
      expect(shown.pwned, 'its script ran').to.equal(undefined)
      expect(dialogs).to.deep.equal([])

      // /metrics: every line a comment or a sample, and no sample of its making
      const metrics = await scrapeMetrics(`${base}/metrics`)
      expect([...metrics.keys()].some(k => k.startsWith('dml_injected')), 'a metric of its making').to.equal(false)

      // nothing of the data directory on any route, however the path is spelled
      const secrets = [secret, ...peers.map(p => Buffer.from(readFileSync(join(net.dir, p.name, 'identity.key'))).toString('hex').slice(-64)), ...peers.map(p => Buffer.from(readFileSync(join(net.dir, p.name, 'identity.key'))).subarray(-32).toString('base64'))]
      const port = new URL(base).port
      const paths = ['/identity.key', '/../identity.key', '/%2e%2e/identity.key', '/..%2fidentity.key', '/vendor/../../identity.key', '/vendor/..%2f..%2fidentity.key', '/api/status/../../swarm.key', '//etc/passwd', '/dashboard.js/../../../checkpoints', '/checkpoints/', '/vote.json', '/\\..\\identity.key', `/${'../'.repeat(12)}etc/passwd`, '/vendor/uplot.js%00.key']
      for (const path of paths) {
        const answer = await rawGet(Number(port), path)
        expect(answer.status, `GET ${path}`).to.be.oneOf([400, 404])
        for (const s of secrets) expect(answer.text.includes(s), `GET ${path} gives away a secret`).to.equal(false)
      }
      const everything = [await (await fetch(`${base}/api/status`)).text(), await (await fetch(`${base}/metrics`)).text(), await (await fetch(`${base}/dashboard.js`)).text()]
      for (const text of everything) for (const s of secrets) expect(text.includes(s), 'a secret in the status, the metrics or the dashboard').to.equal(false)
      // showing odd text is no offence: its work that failed is named and counted, as any peer's
      expect((await getJson(await leader.statusUrl())).rejectedUpdates['work-failed'], 'its failed work counted').to.be.above(0)
      expect(leader.events.some(e => e.event === 'work-failed' && e.peer === id), 'named in the log').to.equal(true)
      await trainsAsClean(peers)
    } finally {
      await browser.close()
      await net.stop()
    }
  })
})

/** A GET of `path` exactly as written (fetch would normalise the dots away), and its answer. */
async function rawGet (port: number, path: string): Promise<{ status: number, text: string }> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => { socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`) })
    let text = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => { text += chunk })
    socket.on('end', () => { resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0), text }) })
    socket.on('error', reject)
    socket.setTimeout(10_000, () => { socket.destroy(new Error(`GET ${path}: no answer within 10 s`)) })
  })
}
