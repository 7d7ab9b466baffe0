// Admission (admission.ts): what is new, and how much a peer may send.
import { expect } from 'chai'
import { PROTOCOL_VERSION, type Heartbeat, type Vote } from '@dml/protocol'
import { Admission, AUTHOR_BURST, AUTHOR_RATE, NEW_AUTHOR_BURST, REPLAY_AFTER_MS, RELAY_BURST } from '@dml/node'

const A = '12D3KooWAuthorAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAauthor'
const R = '12D3KooWRelayRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRrelay'

function heartbeat (seq: number, peer = A): Heartbeat {
  return { type: 'heartbeat', v: PROTOCOL_VERSION, seq, term: 1, peer, leader: peer, round: 0, modelHash: null, device: 'cpu', backend: 'wasm', speed: 0, examples: 0, addrs: [], termCert: null, roundCert: null, work: null, everyMs: 1000 }
}
function vote (seq: number): Vote {
  return { type: 'vote', v: PROTOCOL_VERSION, seq, term: 2, candidate: R, voter: A, signature: new Uint8Array(64) }
}

describe('admission', () => {
  it('takes each message newer than the newest of its kind from its author; an older one that comes late is dropped quietly', () => {
    const admission = new Admission()
    expect(admission.admit(heartbeat(1000), A, A, 0)).to.deep.equal({ admit: true })
    expect(admission.admit(heartbeat(2000), A, R, 1000)).to.deep.equal({ admit: true })
    // the same again, or the one before it through another path: gossip keeps no order
    expect(admission.admit(heartbeat(2000), A, R, 1100)).to.include({ admit: false, reason: 'not-newer' })
    expect(admission.admit(heartbeat(1000), A, R, 1200)).to.include({ admit: false, reason: 'not-newer' })
    // kinds are apart: a vote sent between two heartbeats is not older than either
    expect(admission.admit(vote(1500), A, R, 1300)).to.deep.equal({ admit: true })
  })

  it('an author that stamps a message with the largest seq there is silences only itself', () => {
    const admission = new Admission()
    expect(admission.admit(heartbeat(Number.MAX_SAFE_INTEGER), A, A, 0).admit).to.equal(true)
    expect(admission.admit(heartbeat(Date.now()), A, A, 1).admit).to.equal(false)
    const other = '12D3KooWOtherOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOother'
    expect(admission.admit(heartbeat(Date.now(), other), other, A, 2).admit).to.equal(true)
  })

  it('an old message of an author, replayed: refused as the relay\'s doing, whoever signed it', () => {
    const admission = new Admission()
    for (let t = 0; t <= 60_000; t += 1000) expect(admission.admit(heartbeat(1e12 + t), A, A, t).admit).to.equal(true)
    // captured a minute ago, sent again now
    const replayed = admission.admit(heartbeat(1e12), A, R, 61_000)
    expect(replayed).to.include({ admit: false, reason: 'replayed', culprit: R })
    // the newest one itself, long after it came (gossip forgets a message after two minutes; we do not)
    const late = admission.admit(heartbeat(1e12 + 60_000), A, R, 60_000 + REPLAY_AFTER_MS + 1)
    expect(late).to.include({ admit: false, reason: 'replayed', culprit: R })
  })

  it(`an author may send ${AUTHOR_BURST} messages at once and ${AUTHOR_RATE} a second; beyond, each is a flood of its own`, () => {
    const admission = new Admission()
    let seq = 1
    let refused = 0
    for (let i = 0; i < AUTHOR_BURST + 50; i++) if (!admission.admit(heartbeat(seq++), A, A, 0).admit) refused++
    expect(refused).to.equal(50)
    expect(admission.admit(heartbeat(seq++), A, A, 0)).to.include({ admit: false, reason: 'flood', culprit: A })
    // a second later: room for AUTHOR_RATE more
    let taken = 0
    for (let i = 0; i < 2 * AUTHOR_RATE; i++) if (admission.admit(heartbeat(seq++), A, A, 1000).admit) taken++
    expect(taken).to.equal(AUTHOR_RATE)
  })

  it('a relay bringing messages of ever new made-up authors: held to its own budgets, and what is kept stays bounded', () => {
    const admission = new Admission()
    const made = (i: number): string => `12D3KooWMadeUp${String(i).padStart(37, 'x')}`
    let refused = 0
    for (let i = 0; i < NEW_AUTHOR_BURST + 100; i++) {
      const verdict = admission.admit(heartbeat(1, made(i)), made(i), R, 0)
      if (!verdict.admit) {
        expect(verdict).to.include({ reason: 'relay-flood', culprit: R })
        refused++
      }
    }
    expect(refused).to.equal(100)
    expect(admission.size).to.equal(NEW_AUTHOR_BURST)
    // and messages of authors it knows, each within its own budget: no more than a relay may bring at once
    refused = 0
    for (let seq = 2; seq < 6; seq++) {
      for (let i = 0; i < NEW_AUTHOR_BURST; i++) if (!admission.admit(heartbeat(seq, made(i)), made(i), R, 0).admit) refused++
    }
    expect(refused).to.equal((NEW_AUTHOR_BURST + 100) + 4 * NEW_AUTHOR_BURST - RELAY_BURST) // every message it brought counts, refused ones too
  })
})
