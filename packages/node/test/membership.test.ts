// Membership: how long a silent member stays counted, from the lease and its announced interval.
import { expect } from 'chai'
import { PROTOCOL_VERSION, MAX_HEARTBEAT_EVERY_MS, type Heartbeat } from '@dml/protocol'
import { Counts, Membership, SILENT_INTERVALS } from '@dml/node'

const PEER = '12D3KooWPeerAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAApeer'

function heartbeat (everyMs: number): Heartbeat {
  return { type: 'heartbeat', v: PROTOCOL_VERSION, seq: 1, term: 1, peer: PEER, leader: null, round: 0, modelHash: null, device: 'cpu', backend: 'wasm', speed: 0, examples: 0, addrs: [], termCert: null, roundCert: null, work: null, everyMs }
}

describe('membership', () => {
  it('a member that beats every second is dropped after the lease of silence', () => {
    const counts = new Counts()
    const m = new Membership(5000, counts)
    expect(m.observe(heartbeat(1000), 0)).to.equal(true)
    expect(m.expire(4999)).to.deep.equal([])
    expect(m.live(4999)).to.have.length(1)
    expect(m.live(5000)).to.have.length(0)
    expect(m.expire(5000)).to.deep.equal([{ peer: PEER, silentMs: 5000 }])
    expect(counts.recovery).to.include({ peersJoined: 1, peersLost: 1 })
  })

  it('a member that announced a longer interval may miss that many of them before it is dropped', () => {
    const m = new Membership(5000, new Counts())
    m.observe(heartbeat(4000), 0)
    expect(m.expire(SILENT_INTERVALS * 4000 - 1)).to.deep.equal([])
    expect(m.live(SILENT_INTERVALS * 4000 - 1)).to.have.length(1)
    expect(m.expire(SILENT_INTERVALS * 4000)).to.have.length(1)
  })

  it('a heartbeat that comes renews the member from then', () => {
    const m = new Membership(5000, new Counts())
    m.observe(heartbeat(1000), 0)
    expect(m.observe(heartbeat(1000), 4000)).to.equal(false)
    expect(m.expire(8999)).to.deep.equal([])
    expect(m.lastSeen(PEER)).to.equal(4000)
  })

  it('the longest interval a heartbeat may name keeps a dead peer counted for minutes, not longer', () => {
    const m = new Membership(5000, new Counts())
    m.observe(heartbeat(MAX_HEARTBEAT_EVERY_MS), 0)
    expect(m.expire(SILENT_INTERVALS * MAX_HEARTBEAT_EVERY_MS)).to.have.length(1)
    expect(SILENT_INTERVALS * MAX_HEARTBEAT_EVERY_MS).to.be.at.most(5 * 60_000)
  })
})
