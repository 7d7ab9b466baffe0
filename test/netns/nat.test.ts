// Across networks: peers behind NAT routers (iptables masquerade, one namespace a router) train
// with a public peer that relays for them (--relay). Peers on different sites cannot open a
// connection to each other; they exchange heartbeats, votes, models and updates through the
// relay, or directly where a hole punch (DCUtR) succeeds.
import { expect } from 'chai'
import { execFileSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { DML_NODE_BIN } from '@dml/node/launcher'
import { Cluster, type HostEvent } from './cluster.ts'
import { NatHosts, type NatLayout } from './nat.ts'

const MINUTE = 60_000
const LAYOUT = { public: 1, sites: [2, 2] }
const TRAIN = ['--min-peers', '5', '--local-epochs', '1', '--lr', '0.1', '--threads', '1']

function natOrSkip (ctx: Mocha.Context, layout: NatLayout): NatHosts {
  const hosts = NatHosts.create(layout)
  if (typeof hosts === 'string') {
    console.log(`      skipped: ${hosts}`)
    ctx.skip()
  }
  return hosts as NatHosts
}

/** The peer id of the identity in `dataDir` (made there if there is none). */
function keygen (dataDir: string): string {
  mkdirSync(dataDir, { recursive: true })
  return execFileSync(process.execPath, [DML_NODE_BIN, 'keygen', '--data-dir', dataDir], { encoding: 'utf8' }).trim()
}

/** A cluster on `hosts`: host 0 relays, every other bootstraps from it. */
function relayedCluster (hosts: NatHosts, args: string[]): Cluster {
  const net = new Cluster(hosts, args, i => i === 0 ? ['--relay'] : ['--bootstrap', `/ip4/${hosts.address(0)}/tcp/4001/p2p/${relay}`])
  const relay = keygen(net.dataDir(0))
  return net
}

/**
 * How every peer reaches every other, from their statuses, and the bytes on relays' streams: asked
 * again until each peer behind a NAT reaches every peer of the other sites (the dials through the
 * relay follow the heartbeats that name the peers, and one may still be on its way), or `withinMs`
 * has passed.
 */
async function reachAll (net: Cluster, hosts: NatHosts, withinMs: number): Promise<{ across: string[], relayedBytes: number, totalBytes: number, waitedMs: number }> {
  const started = Date.now()
  for (;;) {
    const reach = await reachNow(net, hosts)
    const waitedMs = Date.now() - started
    if (reach.across.length === acrossPairs(hosts) || waitedMs > withinMs) return { ...reach, waitedMs }
    await new Promise(resolve => setTimeout(resolve, 500)) // the status API is all there is to ask
  }
}

/** Each peer behind a NAT with each peer of another site, as the first of the two sees it. */
function acrossPairs (hosts: NatHosts): number {
  const sites = Array.from({ length: hosts.count }, (_, i) => hosts.site(i)).filter(s => s >= 0)
  return sites.reduce((sum, s) => sum + sites.filter(t => t !== s).length, 0)
}

async function reachNow (net: Cluster, hosts: NatHosts): Promise<{ across: string[], relayedBytes: number, totalBytes: number }> {
  const statuses = await Promise.all(Array.from({ length: hosts.count }, async (_, i) => await net.status(i)))
  const site = new Map(statuses.map((s, i) => [s.peerId as string, hosts.site(i)]))
  // each pair of peers on different sites, as the one of them behind a NAT sees it
  const across = statuses.flatMap((s, i) => hosts.site(i) < 0 ? [] : Object.entries(s.reach as Record<string, string>).filter(([peer]) => (site.get(peer) ?? -1) >= 0 && site.get(peer) !== hosts.site(i)).map(([, how]) => how))
  return {
    across,
    relayedBytes: statuses[0].traffic.relayed.sent + statuses[0].traffic.relayed.received,
    totalBytes: statuses.reduce((sum, s) => sum + s.traffic.total.sent + s.traffic.total.received, 0)
  }
}

describe('peers behind NAT', function () {
  this.timeout(20 * MINUTE)
  let hosts: NatHosts | undefined
  let net: Cluster | undefined
  afterEach(async () => {
    await net?.destroy()
    hosts?.destroy()
  })

  for (const symmetric of [false, true]) {
    it(`one public relay and two peers behind each of two ${symmetric ? 'symmetric ' : ''}NATs train MNIST to 97% together, through the relay`, async function () {
      hosts = natOrSkip(this, { ...LAYOUT, symmetric })
      net = relayedCluster(hosts, [...TRAIN, '--rounds', '8', '--target-accuracy', '0.97', '--exit-when-done'])
      const started = Date.now()
      net.startAll()
      await net.waitAny(e => e.event === 'round-start', 3 * MINUTE)
      // the sites are apart: a peer behind a NAT reaches the public host and its own site, never
      // the other site, and nobody outside reaches it
      expect(hosts.reaches(1, 0, 4001), 'a site to the public host').to.equal(true)
      expect(hosts.reaches(1, 2, 4001), 'within a site').to.equal(true)
      expect(hosts.reaches(1, 3, 4001), 'one site to the other').to.equal(false)
      expect(hosts.reaches(0, 1, 4001), 'the public host into a site').to.equal(false)

      await net.waitAny(e => e.event === 'round-done' && e.round >= 2, 5 * MINUTE)
      const { across, relayedBytes, totalBytes, waitedMs } = await reachAll(net, hosts, 20_000)
      const done = await net.waitAny(e => e.event === 'training-finished', 10 * MINUTE)
      // a peer drains for at most 15 s once training has finished
      await net.allExited(MINUTE)
      const seconds = (Date.now() - started) / 1000
      const participants = new Set(net.events(e => e.event === 'round-done').flatMap(e => e.participants as string[]))
      console.log(`      ${done.round as number} rounds, ${(100 * (done.accuracy as number)).toFixed(2)}% in ${seconds.toFixed(1)} s (all exited); ` +
        `across the NATs: ${across.filter(h => h === 'relayed').length} relayed, ${across.filter(h => h === 'hole-punched').length} hole-punched of ${across.length}; ` +
        `${(relayedBytes / 1e6).toFixed(1)} MB through the relay so far, ${(100 * relayedBytes / totalBytes).toFixed(0)}% of all bytes` +
        (waitedMs > 1000 ? `; every pair across was connected ${(waitedMs / 1000).toFixed(1)} s after round 2` : ''))
      expect(done.accuracy).to.be.at.least(0.97)
      // every peer behind a NAT took part: its updates counted in the rounds
      expect(participants.size).to.equal(5)
      // peers on different sites are connected, each pair through the relay or after a hole punch
      expect(across).to.have.length(acrossPairs(hosts))
      expect(across.every(h => h === 'relayed' || h === 'hole-punched')).to.equal(true)
      expect(relayedBytes).to.be.greaterThan(0)
    })
  }

  it('the relay dies mid-run: the peers behind NAT say they lost it, and train on together once it is back', async function () {
    hosts = natOrSkip(this, LAYOUT)
    net = relayedCluster(hosts, [...TRAIN, '--rounds', '100', '--local-epochs', '0.2'])
    net.startAll()
    await net.waitAny(e => e.event === 'round-done' && e.round >= 2 && (e.participants as string[]).length === 5, 5 * MINUTE)
    const killedAt = Date.now()
    await net.kill(0)
    const behindNat = [1, 2, 3, 4]
    const lost = await Promise.all(behindNat.map(async i => await net!.current[i]!.waitFor(e => e.event === 'relay-lost', MINUTE)))
    expect(lost.every(e => (e.left as string[]).length === 0)).to.equal(true)
    const restartedAt = Date.now()
    net.start(0)
    await Promise.all(behindNat.map(async i => await net!.current[i]!.waitFor(e => e.event === 'relay-reserved' && e.ts >= restartedAt, 2 * MINUTE)))
    const together = await net.waitAny(e => e.event === 'round-done' && (e.participants as string[]).length === 5, 5 * MINUTE, restartedAt)
    console.log(`      relay lost ${((lost[0].ts - killedAt) / 1000).toFixed(1)} s after the kill; all five trained round ${together.round as number} ${((together.ts - restartedAt) / 1000).toFixed(1)} s after it came back`)
    // no round finished twice with different models, whatever the sites did while apart
    net.roundHashes()
    expect(net.events((e: HostEvent) => e.event === 'round-done' && e.ts > killedAt && e.ts < restartedAt && (e.participants as string[]).length === 5)).to.have.length(0)
  })
})
