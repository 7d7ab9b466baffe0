// The privacy accountant against published values: Opacus's tests of its RDP accountant (the same
// orders and conversion), and the closed form of the Gaussian mechanism without sampling.
import { expect } from 'chai'
import { epsilonOf, noiseForEpsilon, PrivacyAccountant, PrivacyError, RDP_ORDERS, stepRdp } from '@dml/protocol'

describe('the privacy accountant', () => {
  it('DP-SGD at sampling rate 0.04, noise 1.5, 90 epochs (2250 steps): epsilon 7.3291 at delta 1e-5, as Opacus\'s RDP accountant says', () => {
    const accountant = new PrivacyAccountant()
    accountant.step(0.04, 1.5, Math.floor(90 / 0.04))
    expect(accountant.steps).to.equal(2250)
    expect(accountant.epsilon(1e-5)).to.be.closeTo(7.32911117143, 1e-4)
  })

  it('the noise for a target: epsilon 8 at delta 1e-5 over those steps, a little below Opacus\'s more cautious answer (1.4253)', () => {
    const spent = (sigma: number): number => { const a = new PrivacyAccountant(); a.step(0.04, sigma, 2250); return a.epsilon(1e-5) }
    const sigma = noiseForEpsilon(8, 1e-5, 0.04, 2250)
    expect(spent(sigma)).to.be.at.most(8).and.above(7.99)
    expect(sigma).to.be.below(1.425307617).and.above(1.40)
  })

  it('without sampling, a step\'s RDP is the Gaussian mechanism\'s, order / (2 sigma^2); RDP adds up over steps', () => {
    expect(stepRdp(1, 2, 5)).to.equal(5 / 8)
    const rdp = RDP_ORDERS.map(a => 10 * stepRdp(1, 2, a))
    const expected = Math.min(...RDP_ORDERS.map(a => 10 * a / 8 - (Math.log(1e-5) + Math.log(a)) / (a - 1) + Math.log((a - 1) / a)))
    expect(epsilonOf(rdp, RDP_ORDERS, 1e-5).epsilon).to.be.closeTo(expected, 1e-12)
    const once = new PrivacyAccountant()
    once.step(0.01, 1.1)
    once.step(0.01, 1.1)
    const twice = new PrivacyAccountant()
    twice.step(0.01, 1.1, 2)
    expect(once.epsilon(1e-5)).to.equal(twice.epsilon(1e-5))
  })

  it('sampling less spends less; more noise spends less; no step spends nothing; bad parameters are refused', () => {
    const epsilon = (q: number, sigma: number): number => { const a = new PrivacyAccountant(); a.step(q, sigma, 100); return a.epsilon(1e-5) }
    expect(epsilon(0.01, 1)).to.be.below(epsilon(0.1, 1))
    expect(epsilon(0.1, 2)).to.be.below(epsilon(0.1, 1))
    expect(new PrivacyAccountant().epsilon(1e-5)).to.equal(0)
    expect(epsilon(0.1, 0)).to.equal(Infinity)
    expect(() => stepRdp(1.5, 1, 2)).to.throw(PrivacyError)
    expect(() => stepRdp(0.5, Number.NaN, 2)).to.throw(PrivacyError)
    expect(() => new PrivacyAccountant().epsilon(0)).to.not.throw() // nothing spent yet
    const spent = new PrivacyAccountant()
    spent.step(0.5, 1)
    expect(() => spent.epsilon(1)).to.throw(PrivacyError)
  })
})
