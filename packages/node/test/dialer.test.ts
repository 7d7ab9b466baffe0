// The dial policy with fake time: trusted peers are redialed for as long as it takes; gossiped
// addresses are hints with a budget, so no liar can aim this peer at someone else's machine.
import { expect } from 'chai'
import { Dialer, DEFAULT_DIALER } from '@dml/node'
import { FakeClock } from './support/fake-clock.ts'

function setup (answers: (peer: string, addr?: string) => boolean): { clock: FakeClock, dialer: Dialer, dials: Array<{ peer: string, addr?: string }>, connected: Set<string>, refused: Record<string, number> } {
  const clock = new FakeClock()
  const refused: Record<string, number> = {}
  const dials: Array<{ peer: string, addr?: string }> = []
  const connected = new Set<string>()
  const dialer = new Dialer({
    clock,
    connected: (peer) => connected.has(peer),
    dial: async (peer, addr) => {
      dials.push({ peer, addr })
      if (!answers(peer, addr)) throw new Error('connection refused')
      connected.add(peer)
    },
    refused: (reason) => { refused[reason] = (refused[reason] ?? 0) + 1 }
  })
  return { clock, dialer, dials, connected, refused }
}

async function run (clock: FakeClock, dialer: Dialer, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 1000) {
    dialer.tick()
    await clock.advance(1000)
  }
}

describe('the dialer', () => {
  it('redials a trusted peer (mDNS, --bootstrap) for as long as it takes, with backoff', async () => {
    const { clock, dialer, dials } = setup(() => false)
    dialer.trust('boot')
    await run(clock, dialer, 600_000)
    expect(dials.length).to.be.within(20, 40) // 1, 2, 4, ... then every 30 s for ten minutes
    expect(dialer.lastError('boot')).to.equal('connection refused')
  })

  it('a trusted peer heard again through others is redialed at once, not after its backoff', async () => {
    let up = false
    const { clock, dialer, dials } = setup(() => up)
    dialer.trust('boot')
    await run(clock, dialer, 120_000) // down for two minutes: the backoff is at its longest
    const before = dials.length
    up = true
    dialer.hint('boot', []) // its heartbeat, through another peer: it is back
    await run(clock, dialer, 500)
    expect(dials.length).to.equal(before + 1)
  })

  it('dials a hinted address a few times at most, whatever peer ids name it', async () => {
    const { clock, dialer, dials, refused } = setup(() => false)
    const victim = '/ip4/10.9.9.9/tcp/80'
    for (let i = 0; i < 50; i++) dialer.hint(`liar${i}`, [victim]) // fifty identities, one victim
    await run(clock, dialer, 600_000)
    expect(dials.filter(d => d.addr === victim)).to.have.length(DEFAULT_DIALER.attemptsPerAddr)
    expect(refused['addr-budget']).to.be.greaterThan(0)
  })

  it('a relayed address is one relay\'s for every peer behind it: its budget is each peer\'s own', async () => {
    const relayed = '/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWDWG31EDrNyzFQKcBHtq2P5n2x9Vz6Y8JpRPQVhGmdHcK/p2p-circuit'
    const { clock, dialer, dials } = setup((peer) => peer !== 'away')
    dialer.hint('away', [relayed]) // not behind the relay (any more): spends its own budget
    await run(clock, dialer, 600_000)
    for (let i = 0; i < 8; i++) dialer.hint(`behind${i}`, [relayed])
    await run(clock, dialer, 2000)
    expect(dials.filter(d => d.peer === 'away')).to.have.length(DEFAULT_DIALER.attemptsPerAddr)
    expect(new Set(dials.filter(d => d.peer.startsWith('behind')).map(d => d.peer)).size).to.equal(8)
  })

  it('a hint refused for its budget is said once, however many heartbeats repeat it', async () => {
    const { clock, dialer, refused } = setup(() => false)
    dialer.hint('silent', ['/ip4/10.9.9.9/tcp/80'])
    await run(clock, dialer, 600_000)
    for (let i = 0; i < 20; i++) dialer.hint('silent', ['/ip4/10.9.9.9/tcp/80'])
    expect(refused['addr-budget']).to.equal(1)
  })

  it('takes a few addresses from a heartbeat, not all of them', async () => {
    const { clock, dialer, dials, refused } = setup(() => false)
    dialer.hint('liar', Array.from({ length: 32 }, (_, i) => `/ip4/10.0.0.${i}/tcp/1`))
    await run(clock, dialer, 60_000)
    expect(new Set(dials.map(d => d.addr)).size).to.equal(DEFAULT_DIALER.maxAddrsPerPeer)
    expect(refused['too-many-addrs']).to.equal(1)
  })

  it('keeps redialing a hinted address that answered as its peer: a restart is not a lie', async () => {
    let up = true
    const { clock, dialer, dials, connected } = setup(() => up)
    dialer.hint('honest', ['/ip4/10.0.0.2/tcp/4001'])
    await run(clock, dialer, 2000)
    expect(connected.has('honest')).to.equal(true)
    connected.delete('honest') // it restarts: down for a minute
    up = false
    await run(clock, dialer, 60_000)
    up = true
    await run(clock, dialer, 60_000)
    expect(connected.has('honest')).to.equal(true)
    expect(dials.length).to.be.greaterThan(DEFAULT_DIALER.attemptsPerAddr + 1)
  })

  it('an honest peer\'s address named for a liar\'s id stays on its budget', async () => {
    const addr = '/ip4/10.0.0.2/tcp/4001'
    const { clock, dialer, dials } = setup((peer) => peer === 'honest')
    dialer.hint('honest', [addr])
    await run(clock, dialer, 2000)
    for (let i = 0; i < 20; i++) dialer.hint(`liar${i}`, [addr])
    await run(clock, dialer, 600_000)
    expect(dials.filter(d => d.peer.startsWith('liar'))).to.have.length(DEFAULT_DIALER.attemptsPerAddr)
  })
})
