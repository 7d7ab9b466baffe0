// The ledger of what peers do wrong, with time passed in by hand.
import { expect } from 'chai'
import { Counts, isOffence, Ledger, type Logger } from '@dml/node'

const OPTIONS = { banAfter: 3, banMs: 60_000, memoryMs: 10_000 }

function setUp (): { ledger: Ledger, counts: Counts, said: string[], banned: string[], at: (ms: number) => void } {
  let now = 0
  const said: string[] = []
  const banned: string[] = []
  const log: Logger = { info: (event) => { said.push(event) }, warn: (event) => { said.push(event) } }
  const counts = new Counts()
  return { ledger: new Ledger(log, () => now, peer => { banned.push(peer) }, counts, OPTIONS), counts, said, banned, at: (ms) => { now = ms } }
}

describe('the misbehaviour ledger', () => {
  it('bans a peer after banAfter offences within its memory, once; says each reason once', () => {
    const { ledger, counts, said, banned, at } = setUp()
    ledger.offence('p', 'malformed', 'x')
    at(1000)
    ledger.offence('p', 'malformed', 'x')
    expect(ledger.isBanned('p')).to.equal(false)
    expect(ledger.score('p')).to.equal(-20)
    ledger.offence('p', 'bad-vote', 'y')
    expect(ledger.isBanned('p')).to.equal(true)
    expect(ledger.score('p')).to.equal(-1000)
    ledger.offence('p', 'bad-vote', 'y')
    expect(banned).to.deep.equal(['p'])
    expect(said.filter(e => e === 'misbehaviour')).to.have.length(2)
    at(1000 + OPTIONS.banMs)
    expect(ledger.isBanned('p')).to.equal(false)
    expect(counts.offences).to.deep.equal({ malformed: 2, 'bad-vote': 2 })
  })

  it('forgets offences older than its memory: a peer that errs now and then is never banned', () => {
    const { ledger, at } = setUp()
    for (let i = 0; i < 10; i++) {
      at(i * OPTIONS.memoryMs)
      ledger.offence('p', 'flood', 'z')
    }
    expect(ledger.isBanned('p')).to.equal(false)
  })

  it('convicts at once what a peer\'s own signatures prove, and never holds a suspicion against it', () => {
    const { ledger, banned } = setUp()
    for (let i = 0; i < 10; i++) ledger.note('q', 'unproven-leader', 'w')
    expect(ledger.isBanned('q')).to.equal(false)
    expect(ledger.score('q')).to.equal(0)
    ledger.convict('r', 'equivocation', 'two votes in term 3')
    expect(banned).to.deep.equal(['r'])
    expect(ledger.snapshot()).to.deep.include.members([
      { peer: 'q', offences: {}, suspicions: { 'unproven-leader': 10 }, banned: false },
      { peer: 'r', offences: { equivocation: 1 }, suspicions: {}, banned: true }
    ])
  })

  it('tells offences from reasons that are not: a stale message is counted, not held against its sender', () => {
    expect(isOffence('spoofed')).to.equal(true)
    expect(isOffence('relay-flood')).to.equal(true)
    expect(isOffence('stale-term')).to.equal(false)
    expect(isOffence('fetch-failed')).to.equal(false)
  })
})
