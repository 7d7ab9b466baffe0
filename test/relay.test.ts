// A member's relay (--relay) on loopback: a member takes a reservation on it and is reachable
// through it; a peer holding the swarm key but off the relay's --allow-peers is refused one, and
// counted; a peer without the key cannot even connect. (Peers behind real NATs: test/netns/nat.test.ts.)
import { expect } from 'chai'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DML_NODE_BIN } from '@dml/node/launcher'
import { LocalNetwork, getJson } from './helpers.ts'

const MINUTE = 60_000

describe('a member\'s relay (--relay)', function () {
  this.timeout(3 * MINUTE)
  const net = new LocalNetwork()
  after(async () => { await net.stop() })

  it('serves a reservation to a member, refuses one to a peer off its allow-list, and is out of reach without the swarm key', async () => {
    const file = (name: string, text: string): string => {
      const path = join(net.dir, name)
      writeFileSync(path, text)
      return path
    }
    const swarmKey = (name: string): string => file(name, `/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString('hex')}\n`)
    const keygen = (name: string): string => {
      mkdirSync(join(net.dir, name), { recursive: true })
      return execFileSync(process.execPath, [DML_NODE_BIN, 'keygen', '--data-dir', join(net.dir, name)], { encoding: 'utf8' }).trim()
    }
    const ours = swarmKey('ours.key')
    const [relayId, memberId, strangerId] = ['peer1', 'peer2', 'peer3'].map(keygen)
    const members = file('members.txt', `${relayId}\n${memberId}\n`)
    const relay = await net.add(['--relay', '--swarm-key', ours, '--allow-peers', members])
    const member = await net.add(['--swarm-key', ours, '--allow-peers', members])
    // holds the key, but the relay's allow-list does not name it
    const stranger = await net.add(['--swarm-key', ours, '--allow-peers', file('strangers.txt', `${relayId}\n${strangerId}\n`)])
    const outsider = await net.add(['--swarm-key', swarmKey('theirs.key')])

    // the member: reachable through the relay, at a relayed address others behind NAT would dial
    const reserved = await member.waitFor(e => e.event === 'relay-reserved' && e.relay === relayId, MINUTE)
    expect(reserved.addrs as string[]).to.satisfy((addrs: string[]) => addrs.length > 0 && addrs.every(a => a.includes(`/p2p/${relayId}/p2p-circuit`)))
    await relay.waitFor(e => e.event === 'relay-reservation' && e.peer === memberId, MINUTE)
    const served = await getJson(await relay.statusUrl())
    expect(served.relay).to.include({ serving: true, reservations: 1 })
    expect((await getJson(await member.statusUrl())).relay.via).to.deep.equal([relayId])

    // the stranger: refused, named and counted by the relay, and reachable through no relay
    await relay.waitFor(e => e.event === 'suspicion' && e.reason === 'relay-refused' && e.peer === strangerId, MINUTE)
    expect((await getJson(await relay.statusUrl())).limits['relay-refused']).to.be.at.least(1)
    expect((await getJson(await stranger.statusUrl())).relay.via).to.deep.equal([])
    expect(relay.events.some(e => e.event === 'relay-reservation' && e.peer === strangerId)).to.equal(false)

    // the outsider: without the key no connection comes up, so there is nothing to reserve with
    await outsider.waitFor('bootstrap-unreachable', MINUTE)
    expect((await getJson(await outsider.statusUrl())).relay.via).to.deep.equal([])
    expect((await getJson(await relay.statusUrl())).relay.reservations).to.equal(1)
  })
})
