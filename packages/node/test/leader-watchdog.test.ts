import { expect } from 'chai'
import { LeaderWatchdog, UNPROVEN_GRACE_LEASES } from '@dml/node'

const TIMES = { roundTimeoutMs: 60_000, transferTimeoutMs: 10_000, leaseMs: 2_000 }
/** what a round may take past its deadline: both transfers, the checkers' 30 s, four leases */
const GRACE = 2 * 10_000 + 30_000 + 4 * 2_000

describe('the leader watchdog', () => {
  it('a started round overdue past its deadline and the grace: left; certified in time: not', () => {
    const dog = new LeaderWatchdog(TIMES, 0)
    dog.roundStarted(20_000, 0)
    expect(dog.verdict(20_000 + GRACE, true)).to.equal(undefined)
    expect(dog.verdict(20_000 + GRACE + 1, true)).to.equal('its round was not finished by its deadline')
    dog.held(1, 20_000 + GRACE)
    expect(dog.verdict(20_000 + GRACE + 1, true)).to.equal(undefined)
  })

  it('a leader\'s deadline is bounded by our own round timeout: one far away stretches nothing', () => {
    const dog = new LeaderWatchdog(TIMES, 0)
    dog.roundStarted(Number.MAX_SAFE_INTEGER, 0)
    expect(dog.verdict(TIMES.roundTimeoutMs + GRACE + 1, true)).to.equal('its round was not finished by its deadline')
  })

  it('no round started while enough peers follow: left after a round timeout and the grace; with too few peers, never', () => {
    const dog = new LeaderWatchdog(TIMES, 1_000)
    const late = 1_000 + TIMES.roundTimeoutMs + GRACE + 1
    expect(dog.verdict(late - 1, true)).to.equal(undefined)
    expect(dog.verdict(late, true)).to.equal('it started no round while enough peers followed it')
    expect(dog.verdict(10 * late, false)).to.equal(undefined)
  })

  it('rounds that prove nothing here: left after the grace from the first, which later ones do not move', () => {
    const dog = new LeaderWatchdog(TIMES, 0)
    dog.roundStarted(1_000_000, 0)
    dog.unproven(5_000)
    dog.unproven(9_000)
    const by = 5_000 + UNPROVEN_GRACE_LEASES * TIMES.leaseMs + TIMES.transferTimeoutMs
    expect(dog.verdict(by, true)).to.equal(undefined)
    expect(dog.verdict(by + 1, true)).to.equal('the rounds it announces prove nothing here')
  })

  it('a round held that is no newer than one held before is no progress', () => {
    const dog = new LeaderWatchdog(TIMES, 0)
    dog.held(3, 0)
    dog.roundStarted(1_000, 0)
    dog.held(3, 500)
    dog.held(2, 600)
    expect(dog.verdict(1_000 + GRACE + 1, true)).to.equal('its round was not finished by its deadline')
  })

  it('a fresh leader (followed, or after one was left) starts with a clean slate', () => {
    const dog = new LeaderWatchdog(TIMES, 0)
    dog.roundStarted(1_000, 0)
    dog.unproven(0)
    dog.reset(100_000)
    expect(dog.verdict(100_000 + TIMES.roundTimeoutMs + GRACE, true)).to.equal(undefined)
  })
})
