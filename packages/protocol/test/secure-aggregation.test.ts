// Secure aggregation's arithmetic: the ring, masks that cancel, dropouts recovered from shares,
// and what a lying participant's share or box does.
import { expect } from 'chai'
import {
  addInto, combineShares, decodeSum, encodeInRing, mask, maskStream, newKeyPair, openShare, pairSeed, publicKeyOf, recoverSecret,
  ringScale, roundContext, sealShare, SecureAggregationError, seedCommitment, splitSecret, unmaskSum
} from '@dml/protocol'

const CONTEXT = roundContext(3, 7, 1_700_000_000_000)
const equal = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((v, i) => v === b[i])

/** `n` participants of a round, each with its update, weight, keys and own seed. */
function participants (n: number, length: number): Array<{ id: string, values: Float32Array, weight: number, keys: ReturnType<typeof newKeyPair>, seal: ReturnType<typeof newKeyPair>, seed: Uint8Array }> {
  return Array.from({ length: n }, (_, i) => ({
    id: `peer-${String.fromCharCode(97 + i)}`,
    values: Float32Array.from({ length }, (_, k) => Math.sin(i * 31 + k) * 0.5),
    weight: 100 + 37 * i,
    keys: newKeyPair(),
    seal: newKeyPair(),
    seed: crypto.getRandomValues(new Uint8Array(32))
  }))
}

describe('secure aggregation', () => {
  const range = 1
  const length = 1000

  it('in the ring, the weighted mean comes back within the fixed point\'s step; values out of range are clipped, NaN is 0', () => {
    const scale = ringScale(range, 10_000)
    const a = encodeInRing(Float32Array.from([0.25, -0.5, 3, Number.NaN]), 10, range, scale)
    const b = encodeInRing(Float32Array.from([0.75, 0.5, -3, 1]), 30, range, scale)
    addInto(a, b)
    const { weight, mean } = decodeSum(a, scale)
    expect(weight).to.equal(40)
    const expected = [(0.25 * 10 + 0.75 * 30) / 40, 0.25, (10 - 30) / 40, 30 / 40]
    for (let i = 0; i < 4; i++) expect(mean[i]).to.be.closeTo(expected[i], 1 / scale)
    expect(() => ringScale(1, 2 ** 32)).to.throw(SecureAggregationError)
    expect(() => encodeInRing(new Float32Array(1), 20_000, range, scale)).to.throw(SecureAggregationError, 'does not fit')
    expect(() => encodeInRing(new Float32Array(1), 1.5, range, scale)).to.throw(SecureAggregationError)
  })

  it('masked updates say nothing of the update alone, and their sum is the sum of the plain ones', () => {
    const peers = participants(5, length)
    const scale = ringScale(range, peers.reduce((s, p) => s + p.weight, 0))
    const plain = peers.map(p => encodeInRing(p.values, p.weight, range, scale))
    const masked = new Map(peers.map((p, i) => {
      const seeds = new Map(peers.filter(q => q !== p).map(q => [q.id, pairSeed(p.keys.secret, q.keys.public, CONTEXT)]))
      return [p.id, mask(plain[i], p.id, p.seed, seeds)]
    }))
    // nothing of the plain update shows: about half its bits differ, word by word
    for (const [i, p] of peers.entries()) {
      const y = masked.get(p.id)!
      const same = plain[i].filter((w, k) => w === y[k]).length
      expect(same).to.be.below(5)
    }
    const sum = unmaskSum(masked, new Map(peers.map(p => [p.id, p.seed])), new Map(), new Map(peers.map(p => [p.id, p.keys.public])), CONTEXT)
    const expected = new Uint32Array(length + 1)
    for (const v of plain) addInto(expected, v)
    expect(equal(new Uint8Array(sum.buffer), new Uint8Array(expected.buffer))).to.equal(true)
  })

  for (const dropped of [['peer-a'], ['peer-c', 'peer-e'], ['peer-b', 'peer-d']]) {
    it(`participants that dropped out after masking began (${dropped.join(', ')}): their pair masks come out with their keys, rebuilt from the survivors' shares`, () => {
      const peers = participants(5, length)
      const scale = ringScale(range, peers.reduce((s, p) => s + p.weight, 0))
      const threshold = 3
      // each splits its masking key and its seed among all five (x = its index + 1 for each recipient)
      const keyShares = new Map(peers.map(p => [p.id, splitSecret(p.keys.secret, peers.length, threshold)]))
      const seedShares = new Map(peers.map(p => [p.id, splitSecret(p.seed, peers.length, threshold)]))
      const survivors = peers.filter(p => !dropped.includes(p.id))
      const masked = new Map(survivors.map(p => {
        const seeds = new Map(peers.filter(q => q !== p).map(q => [q.id, pairSeed(p.keys.secret, q.keys.public, CONTEXT)]))
        return [p.id, mask(encodeInRing(p.values, p.weight, range, scale), p.id, p.seed, seeds)]
      }))
      const index = (id: string): number => peers.findIndex(p => p.id === id)
      const ownSeeds = new Map(survivors.map(p => {
        const shares = survivors.map(q => ({ from: q.id, share: seedShares.get(p.id)![index(q.id)] }))
        return [p.id, recoverSecret(shares, threshold, s => equal(seedCommitment(s), seedCommitment(p.seed)))!.secret]
      }))
      const droppedKeys = new Map(dropped.map(id => {
        const shares = survivors.map(q => ({ from: q.id, share: keyShares.get(id)![index(q.id)] }))
        return [id, recoverSecret(shares, threshold, s => equal(publicKeyOf(s), peers[index(id)].keys.public))!.secret]
      }))
      const sum = unmaskSum(masked, ownSeeds, droppedKeys, new Map(peers.map(p => [p.id, p.keys.public])), CONTEXT)
      const { weight, mean } = decodeSum(sum, scale)
      expect(weight).to.equal(survivors.reduce((s, p) => s + p.weight, 0))
      for (let k = 0; k < length; k += 97) {
        const expected = survivors.reduce((s, p) => s + p.weight * Math.max(-range, Math.min(range, p.values[k])), 0) / weight
        expect(mean[k]).to.be.closeTo(expected, 1e-6)
      }
    })
  }

  it('Shamir shares: any threshold of them rebuild the secret, fewer do not; duplicates and mixed lengths are refused', () => {
    const secret = crypto.getRandomValues(new Uint8Array(32))
    const shares = splitSecret(secret, 7, 4)
    expect(equal(combineShares([shares[6], shares[1], shares[3], shares[0]]), secret)).to.equal(true)
    expect(equal(combineShares(shares.slice(2, 6)), secret)).to.equal(true)
    expect(equal(combineShares(shares.slice(0, 3)), secret)).to.equal(false)
    expect(() => combineShares([shares[0], shares[0]])).to.throw(SecureAggregationError, 'two shares at x = 1')
    expect(() => combineShares([shares[0], shares[1].slice(0, 10)])).to.throw(SecureAggregationError)
    expect(() => splitSecret(secret, 256, 3)).to.throw(SecureAggregationError)
    expect(() => splitSecret(secret, 5, 6)).to.throw(SecureAggregationError)
  })

  it('a wrong share is named and left out: the secret comes from the others, checked against its owner\'s commitment', () => {
    const owner = newKeyPair()
    const shares = splitSecret(owner.secret, 6, 3).map((share, i) => ({ from: `peer-${i}`, share }))
    const lies = shares.map(s => s.from === 'peer-1' ? { ...s, share: s.share.map((b, k) => k === 0 ? b : b ^ 0x5a) } : s.from === 'peer-4' ? { ...s, share: s.share.slice(0, 5) } : s)
    const fits = (s: Uint8Array): boolean => equal(publicKeyOf(s), owner.public)
    const recovered = recoverSecret(lies, 3, fits)!
    expect(equal(recovered.secret, owner.secret)).to.equal(true)
    expect(recovered.wrong.sort()).to.deep.equal(['peer-1', 'peer-4'])
    // too few honest shares: nothing fits, nothing is made up
    expect(recoverSecret(lies.filter(s => ['peer-0', 'peer-1', 'peer-4', 'peer-5'].includes(s.from)), 3, fits)).to.equal(undefined)
  })

  it('a sealed share opens only for its recipient, as from its sender, in its round', () => {
    const [alice, bob, eve] = [newKeyPair(), newKeyPair(), newKeyPair()]
    const share = splitSecret(crypto.getRandomValues(new Uint8Array(32)), 3, 2)[1]
    const box = sealShare(share, alice.secret, bob.public, CONTEXT, 'alice', 'bob')
    expect(equal(openShare(box, bob.secret, alice.public, CONTEXT, 'alice', 'bob'), share)).to.equal(true)
    expect(() => openShare(box, eve.secret, alice.public, CONTEXT, 'alice', 'eve')).to.throw(SecureAggregationError, 'does not open')
    expect(() => openShare(box, bob.secret, alice.public, roundContext(3, 8, 1), 'alice', 'bob')).to.throw(SecureAggregationError)
    expect(() => openShare(box, bob.secret, alice.public, CONTEXT, 'carol', 'bob')).to.throw(SecureAggregationError)
    const tampered = Uint8Array.from(box)
    tampered[3] ^= 1
    expect(() => openShare(tampered, bob.secret, alice.public, CONTEXT, 'alice', 'bob')).to.throw(SecureAggregationError)
  })

  it('masking streams are ChaCha20\'s, fixed by the seed; a key that is not one fails with a clear error', () => {
    const seed = new Uint8Array(32).fill(7)
    expect(equal(new Uint8Array(maskStream(seed, 64).buffer), new Uint8Array(maskStream(seed, 64).buffer))).to.equal(true)
    expect(() => maskStream(new Uint8Array(16), 4)).to.throw(SecureAggregationError, '16 bytes')
    expect(() => pairSeed(newKeyPair().secret, new Uint8Array(31), CONTEXT)).to.throw(SecureAggregationError, 'not a key')
  })
})
