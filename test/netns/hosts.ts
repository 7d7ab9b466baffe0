// Hosts for multi-host tests: one network namespace per host, each with its own IP on a bridge
// that lives in a namespace of its own, so the machine's own network is never touched.
// Needs root and iproute2; `Hosts.create` says why when it can't.
import { addNamespace, buildOrWhy, removeNamespaces, run } from './namespaces.ts'

const SUBNET = '10.201.0'

function ip (...args: string[]): void {
  run('ip', ...args)
}

export class Hosts {
  readonly count: number
  readonly prefix: string
  private readonly switchNs: string

  private constructor (count: number, prefix: string) {
    this.count = count
    this.prefix = prefix
    this.switchNs = `${prefix}-sw`
  }

  /** Makes `count` hosts; returns a reason string instead when namespaces can't be made here. */
  static create (count: number): Hosts | string {
    return buildOrWhy(new Hosts(count, `dmlt${process.pid}`), 'root and iproute2')
  }

  namespace (i: number): string { return `${this.prefix}-h${i}` }
  address (i: number): string { return `${SUBNET}.${10 + i}` }
  /** Prefix for a command that runs on host i. */
  wrap (i: number): string[] { return ['ip', 'netns', 'exec', this.namespace(i)] }

  build (): void {
    addNamespace(this.switchNs)
    for (const bridge of ['br0', 'br1']) {
      // no multicast snooping: mDNS must reach every port of the bridge
      ip('-n', this.switchNs, 'link', 'add', bridge, 'type', 'bridge', 'mcast_snooping', '0')
      ip('-n', this.switchNs, 'link', 'set', bridge, 'up')
    }
    for (let i = 0; i < this.count; i++) {
      const ns = this.namespace(i)
      addNamespace(ns)
      ip('-n', this.switchNs, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns)
      ip('-n', this.switchNs, 'link', 'set', `p${i}`, 'master', 'br0')
      ip('-n', this.switchNs, 'link', 'set', `p${i}`, 'up')
      ip('-n', ns, 'addr', 'add', `${this.address(i)}/24`, 'dev', 'eth0')
      ip('-n', ns, 'link', 'set', 'eth0', 'up')
      // without a multicast route, mDNS sends fail silently
      ip('-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0')
    }
  }

  /** Splits the network: the hosts in `side` move to a bridge of their own. */
  cut (side: number[]): void {
    for (const i of side) ip('-n', this.switchNs, 'link', 'set', `p${i}`, 'master', 'br1')
  }

  /** Puts every host back on one bridge. */
  heal (): void {
    for (let i = 0; i < this.count; i++) ip('-n', this.switchNs, 'link', 'set', `p${i}`, 'master', 'br0')
  }

  destroy (): void {
    removeNamespaces(`${this.prefix}-`)
  }
}

/** Hosts for a mocha suite, or the suite is skipped with the reason printed. */
export function hostsOrSkip (ctx: Mocha.Context, count: number): Hosts {
  const hosts = Hosts.create(count)
  if (typeof hosts === 'string') {
    console.log(`      skipped: ${hosts}`)
    ctx.skip()
  }
  return hosts as Hosts
}
