// The leader's round as a state machine, and its roster: pure logic, time passed in by hand.
import { expect } from 'chai'
import { PROTOCOL_VERSION, type Heartbeat, type RoundStart, type Unstamped } from '@dml/protocol'
import { AbortError, ProvenPeers, Roster, RoundState, type Logger } from '@dml/node'
import { task } from '../../protocol/test/samples.ts'

function start (round: number, peers: string[], checkers = peers): Unstamped<RoundStart> {
  return { type: 'round-start', v: PROTOCOL_VERSION, term: 1, round, leader: peers[0], modelHash: 'a'.repeat(64), deadline: 60_000, task, assignments: peers.map((peer, i) => ({ peer, samples: 100, shard: [i, peers.length] as [number, number] })), checkers }
}

function heartbeat (peer: string): Unstamped<Heartbeat> {
  return { type: 'heartbeat', v: PROTOCOL_VERSION, term: 1, peer, leader: 'A', round: 0, modelHash: null, device: 'cpu', backend: 'wasm', speed: 100, examples: 0, addrs: [], termCert: null, roundCert: null, work: null, everyMs: 1000 }
}

describe('a round as its leader runs it', () => {
  it('moves only forward: collecting, aggregating, evaluating (or not), certifying, done', () => {
    const state = new RoundState(start(1, ['A', 'B']), ['A', 'B'], 0, new AbortController().signal)
    expect(state.phase).to.equal('collecting')
    expect(() => { state.enter('certifying') }).to.throw('cannot go from collecting to certifying')
    state.enter('aggregating')
    state.enter('certifying') // the leader is no checker: no evaluation
    expect(() => { state.enter('aggregating') }).to.throw('cannot go from certifying to aggregating')
    state.done()
    expect(state.snapshot(1)).to.include({ round: 1, term: 1, state: 'done', expected: 2, updates: 0, signatures: 0 })
  })

  it('the term\'s end aborts the round: no phase is entered after it, but a round whose RoundDone is out is done', () => {
    const term = new AbortController()
    const state = new RoundState(start(1, ['A']), ['A'], 0, term.signal)
    state.enter('aggregating')
    state.enter('certifying')
    term.abort(new AbortError('stepping down'))
    expect(state.signal.aborted).to.equal(true)
    expect(() => { state.enter('evaluating') }).to.throw('stepping down')
    state.done()
    expect(state.phase).to.equal('done')
  })

  it('the roster benches a peer that brought nothing for 1, 2, 4 rounds as its misses add up, unless too few would be left', () => {
    const said: string[] = []
    const log: Logger = { info: (_event, _fields, text) => { said.push(text) }, warn: () => {} }
    const live = ['A', 'B', 'C'].map(heartbeat)
    const roster = new Roster({ self: 'A', policy: { self: 'A' }, proven: new ProvenPeers(), standing: () => { throw new Error('not asked') }, live: () => live, log })
    let benchedUntil = 0
    for (const [round, rounds] of [[1, 1], [3, 2], [6, 4]] as const) {
      expect(roster.workers(live, round, 2).map(h => h.peer), `round ${round}`).to.deep.equal(['A', 'B', 'C'])
      const state = new RoundState(start(round, ['A', 'B', 'C']), ['A', 'B', 'C'], 0, new AbortController().signal)
      state.updates.set('B', { peer: 'B', weights: [], numSamples: 100, trainMs: 1, hash: 'b' })
      roster.collected(state)
      expect(said.at(-1)).to.include(`no work for it for ${rounds} round`)
      benchedUntil = round + rounds + 1
      expect(roster.workers(live, benchedUntil - 1, 2).map(h => h.peer)).to.deep.equal(['A', 'B'])
      expect(roster.workers(live, benchedUntil - 1, 3).map(h => h.peer), 'too few without it').to.deep.equal(['A', 'B', 'C'])
    }
    expect(roster.workers(live, benchedUntil, 2).map(h => h.peer)).to.deep.equal(['A', 'B', 'C'])
  })
})
