// gossipRepairs: connections that gossip has not reached, and what the host does about them.
import { expect } from 'chai'
import { GOSSIP_GRACE_MS, gossipRepairs } from '@dml/node'

describe('connections that gossip has not reached', () => {
  const now = 100_000
  const old = now - GOSSIP_GRACE_MS
  it('after the grace: a peer gossip never took on is hung up on; one without our stream gets it again; the others are left alone', () => {
    const connections = [
      { peer: 'unknown', openedAt: old },
      { peer: 'no-stream', openedAt: old },
      { peer: 'talking', openedAt: now - 60_000 },
      { peer: 'new', openedAt: old + 1 }
    ]
    const repairs = gossipRepairs(connections, { known: new Set(['no-stream', 'talking', 'new']), outbound: new Set(['talking']) }, now)
    expect(repairs).to.deep.equal({ hangUp: ['unknown'], reopen: ['no-stream'] })
  })

  it('a peer with several connections counts from its oldest', () => {
    const connections = [{ peer: 'p', openedAt: now - 1000 }, { peer: 'p', openedAt: old }]
    expect(gossipRepairs(connections, { known: new Set(), outbound: new Set() }, now).hangUp).to.deep.equal(['p'])
    expect(gossipRepairs(connections, { known: new Set(['p']), outbound: new Set(['p']) }, now)).to.deep.equal({ hangUp: [], reopen: [] })
  })
})
