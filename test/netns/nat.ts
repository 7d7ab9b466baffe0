// Hosts behind NAT, for the tests across networks: one public network (a bridge in a namespace
// of its own) with public hosts on it, and private sites, each a LAN behind a router namespace
// that masquerades it (iptables), as a home or an office is. A host on one site reaches the
// public hosts and its own site, never another site's hosts: only a relay, or a hole punch, joins
// them. Needs root, iproute2 and iptables; `NatHosts.create` says why when it can't.
import { execFileSync } from 'node:child_process'
import { addNamespace, buildOrWhy, removeNamespaces, run } from './namespaces.ts'

const PUBLIC = '10.202.0'

export interface NatLayout {
  /** hosts on the public network */
  public: number
  /** hosts behind each site's router, one entry a site */
  sites: number[]
  /** the routers pick a random source port for every connection (a symmetric NAT, where hole punching fails) */
  symmetric?: boolean
}

export class NatHosts {
  readonly count: number
  readonly prefix: string
  /** for each host, its site (-1: public) and its index there */
  private readonly place: Array<{ site: number, index: number }> = []
  private readonly layout: NatLayout

  private constructor (layout: NatLayout, prefix: string) {
    this.layout = layout
    this.prefix = prefix
    for (let i = 0; i < layout.public; i++) this.place.push({ site: -1, index: i })
    layout.sites.forEach((n, site) => { for (let i = 0; i < n; i++) this.place.push({ site, index: i }) })
    this.count = this.place.length
  }

  /** Makes the layout; returns a reason string instead when it can't be made here. */
  static create (layout: NatLayout): NatHosts | string {
    return buildOrWhy(new NatHosts(layout, `dmln${process.pid}`), 'root, iproute2 and iptables')
  }

  namespace (i: number): string { return `${this.prefix}-h${i}` }
  /** The host's own address: public, or private on its site's LAN. */
  address (i: number): string {
    const { site, index } = this.place[i]
    return site < 0 ? `${PUBLIC}.${10 + index}` : `192.168.${site + 1}.${10 + index}`
  }

  /** The site of host i (-1: public). */
  site (i: number): number { return this.place[i].site }
  wrap (i: number): string[] { return ['ip', 'netns', 'exec', this.namespace(i)] }

  private router (site: number): string { return `${this.prefix}-r${site}` }
  private get switchNs (): string { return `${this.prefix}-sw` }

  /** A veth from namespace `ns` (named `dev` there, with `addr`) to a port of `bridge` on the switch. */
  private plug (ns: string, dev: string, addr: string, bridge: string, port: string): void {
    const sw = this.switchNs
    run('ip', '-n', sw, 'link', 'add', port, 'type', 'veth', 'peer', 'name', dev, 'netns', ns)
    run('ip', '-n', sw, 'link', 'set', port, 'master', bridge)
    run('ip', '-n', sw, 'link', 'set', port, 'up')
    run('ip', '-n', ns, 'addr', 'add', `${addr}/24`, 'dev', dev)
    run('ip', '-n', ns, 'link', 'set', dev, 'up')
  }

  build (): void {
    const sw = this.switchNs
    addNamespace(sw)
    const bridges = ['pub', ...this.layout.sites.map((_, s) => `lan${s}`)]
    for (const bridge of bridges) {
      // no multicast snooping: mDNS must reach every port of a LAN
      run('ip', '-n', sw, 'link', 'add', bridge, 'type', 'bridge', 'mcast_snooping', '0')
      run('ip', '-n', sw, 'link', 'set', bridge, 'up')
    }
    this.layout.sites.forEach((_, s) => {
      const r = this.router(s)
      addNamespace(r)
      this.plug(r, 'wan', `${PUBLIC}.${200 + s}`, 'pub', `rw${s}`)
      this.plug(r, 'lan', `192.168.${s + 1}.1`, `lan${s}`, `rl${s}`)
      run('ip', 'netns', 'exec', r, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1')
      run('ip', 'netns', 'exec', r, 'iptables', '-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan', '-j', 'MASQUERADE', ...(this.layout.symmetric === true ? ['--random-fully'] : []))
    })
    for (let i = 0; i < this.count; i++) {
      const ns = this.namespace(i)
      const { site } = this.place[i]
      addNamespace(ns)
      this.plug(ns, 'eth0', this.address(i), site < 0 ? 'pub' : `lan${site}`, `p${i}`)
      if (site >= 0) run('ip', '-n', ns, 'route', 'add', 'default', 'via', `192.168.${site + 1}.1`)
      // without a multicast route, mDNS sends fail silently
      run('ip', '-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0')
    }
  }

  /** Whether host `from` can open a TCP connection to `to`'s `port` (a quick probe, in `from`'s namespace). */
  reaches (from: number, to: number, port: number): boolean {
    try {
      execFileSync('ip', [...this.wrap(from).slice(1), process.execPath, '-e',
        `const s = require('node:net').connect(${port}, ${JSON.stringify(this.address(to))}); s.setTimeout(1500, () => process.exit(1)); s.on('connect', () => process.exit(0)); s.on('error', () => process.exit(1))`], { stdio: 'ignore' })
      return true
    } catch {
      return false
    }
  }

  destroy (): void {
    removeNamespaces(`${this.prefix}-`)
  }
}
