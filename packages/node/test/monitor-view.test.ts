// dml-monitor's views: the lines it prints, and the terminal screen it redraws.
import { expect } from 'chai'
import { PassThrough } from 'node:stream'
import { linesView, sparkline, terminalView, type ShownRound } from '@dml/node/cli'
import { PROTOCOL_VERSION, type Heartbeat } from '@dml/protocol'

const LEADER = '12D3KooWLeaderAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAleader'
const OTHER = '12D3KooWOtherBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBother'

function heartbeat (peer: string, work: Heartbeat['work']): Heartbeat {
  return { type: 'heartbeat', v: PROTOCOL_VERSION, seq: 1, term: 2, peer, leader: LEADER, round: 3, modelHash: null, device: 'cpu', backend: 'wasm', speed: 100, examples: 0, addrs: [], termCert: null, roundCert: null, work, everyMs: 1000 }
}

const round = (n: number, accuracy: number, before = false, ownData = false): ShownRound => ({
  round: n, term: 2, leader: LEADER, modelHash: 'a'.repeat(64), finished: false, signers: 2, before, ownData,
  evaluation: { accuracy, loss: 0.1, federatedAccuracy: accuracy, federatedLoss: 0.1, evaluatedSamples: 100 }
})

describe('monitor views', () => {
  it('a sparkline spans the lowest to the highest accuracy', () => {
    expect(sparkline([0.9, 0.95, 0.97])).to.equal('▁▆█')
    expect(sparkline([0.5])).to.equal('█')
  })

  it('the terminal view shows the leader, the round with its progress and ETA, the accuracy, the peers and the events', () => {
    const out = new PassThrough() as unknown as NodeJS.WriteStream
    let written = ''
    ;(out as unknown as PassThrough).on('data', (chunk: Buffer) => { written += chunk.toString() })
    const view = terminalView(out, 60_000, () => 1_000_000)
    view.started('12D3KooWMonitorCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCmonitr')
    view.heartbeat(heartbeat(LEADER, { round: 4, done: 300, total: 1000 }), true)
    view.heartbeat(heartbeat(OTHER, { round: 4, done: 700, total: 1000 }), true)
    view.round(round(2, 0.91, true))
    view.round(round(3, 0.95))
    view.stop()
    const screen = written.slice(written.lastIndexOf('\x1b[H')).replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
    expect(screen).to.include(`leader ${LEADER.slice(-6)} (term 2)`).and.include('round 3').and.include('2 peers')
    expect(screen).to.match(/round 4 {2}█+░+ {2}50% {2}ETA 7 s/) // the slower peer has 700 examples left at 100/s
    expect(screen).to.include('▁█').and.include('95.00% (round 3, signed by 2)')
    expect(screen).to.include(`${LEADER.slice(-6)} ★`).and.include(`${OTHER.slice(-6)}  `).and.include('round 4: 70%')
    expect(screen).to.include('round 2 done: accuracy 91.00%, signed by 2 (before this monitor joined)')
  })

  it('lines: a round finished before the monitor joined says so', () => {
    const lines: string[] = []
    const view = linesView(false, l => { lines.push(l) }, l => { lines.push(l) })
    view.round(round(5, 0.97, true))
    expect(lines[0]).to.match(/^round {3}5 {2}accuracy {2}97\.00%.*\(finished before this monitor joined\) {2}leader \w{6} term 2 {2}signed by 2$/)
  })

  it('lines: the federated accuracy only where the peers evaluate on examples of their own; on a shared test set it is the same figure again', () => {
    const lines: string[] = []
    const view = linesView(false, l => { lines.push(l) })
    view.round(round(5, 0.97, true))
    view.round(round(6, 0.98, true, true))
    expect(lines[0]).to.not.include('federated')
    expect(lines[1]).to.include('federated 98.00% on 100')
  })

  it('lines: a warning goes to stderr as text, or with --json to stdout as a warning event', () => {
    const out: string[] = []
    const err: string[] = []
    linesView(false, l => { out.push(l) }, l => { err.push(l) }).warn('not following abcdef as leader of term 3')
    expect(out).to.deep.equal([])
    expect(err).to.deep.equal(['not following abcdef as leader of term 3'])
    err.length = 0
    linesView(true, l => { out.push(l) }, l => { err.push(l) }).warn('not following abcdef as leader of term 3')
    expect(err).to.deep.equal([])
    expect(out.map(l => JSON.parse(l))).to.deep.equal([{ event: 'warning', msg: 'not following abcdef as leader of term 3' }])
  })
})
