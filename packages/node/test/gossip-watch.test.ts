// silentPeers: which connected peers gossip never reached, so that the host connects to them again.
import { expect } from 'chai'
import { GOSSIP_GRACE_MS, silentPeers } from '@dml/node'

describe('peers that gossip never reached', () => {
  const now = 100_000
  it('a peer connected for the grace that never subscribed is named; a subscriber or a fresh connection is not', () => {
    const connections = [
      { peer: 'deaf', openedAt: now - GOSSIP_GRACE_MS },
      { peer: 'talking', openedAt: now - 60_000 },
      { peer: 'new', openedAt: now - GOSSIP_GRACE_MS + 1 }
    ]
    expect(silentPeers(connections, new Set(['talking']), now)).to.deep.equal(['deaf'])
  })

  it('a peer with several connections counts from its oldest', () => {
    const connections = [{ peer: 'p', openedAt: now - 1000 }, { peer: 'p', openedAt: now - 20_000 }]
    expect(silentPeers(connections, new Set(), now)).to.deep.equal(['p'])
    expect(silentPeers(connections, new Set(['p']), now)).to.deep.equal([])
  })
})
