// Certificates with real Ed25519 keys: what proves a leader and a finished round, and what does not.
// A signature proves who signed; whether the signer counts is the checking peer's own judgement
// (its Standing: the members it knows, and those it sees live).
import { expect } from 'chai'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { contentHash, decodeRoundCert, MAX_ROUND_CHECKERS, roundCheckers, decodeTermCert, encodeResult, encodeRoundCert, encodeTermCert, PROTOCOL_VERSION, resultSigningBytes, roundVoteSigningBytes, voteSigningBytes, type RoundResult, type TermCert } from '@dml/protocol'
import { checkRoundCert, checkTermCert, coversView, drawCheckers, isQuorum, keySigner, poolSlack, quorumFollowers, quorumOf, roundQuorum, type QuorumPolicy, type Standing } from '@dml/node'
import { identities, type Identity } from './support/cluster.ts'

const HASH = 'b'.repeat(64)

async function termCert (term: number, leader: Identity, voters: Identity[], electorate: string[]): Promise<TermCert> {
  const votes = await Promise.all(voters.map(async v => ({ voter: v.id, signature: await v.signer.sign(voteSigningBytes(term, leader.id)) })))
  return decodeTermCert(encodeTermCert({ kind: 'term-cert', v: PROTOCOL_VERSION, term, leader: leader.id, electorate, votes }))
}

/** A round certificate of `term`: checkers drawn from `pool` (or as given), signed by `signers`. */
async function roundCert (leader: Identity, signers: Identity[], pool: string[], term: TermCert, accuracies: number[], checkers = roundCheckers(pool, HASH)): Promise<ReturnType<typeof decodeRoundCert>> {
  const result: RoundResult = {
    kind: 'round-result', v: PROTOCOL_VERSION, term: term.term, round: 7, leader: leader.id, deadline: 0, prevHash: HASH, modelHash: HASH,
    strategy: { aggregation: 'fedavg', trim: 0.2, byzantine: 1, clip: 1, normBound: 5, serverOptimizer: 'none', serverLr: 1 }, participants: pool, pool, checkers, contributions: [], termCert: contentHash(encodeTermCert(term))
  }
  const bytes = encodeResult(result)
  const resultHash = contentHash(bytes)
  const votes = await Promise.all(signers.map(async (s, i) => ({ peer: s.id, accuracy: accuracies[i], loss: 0.1, samples: 100, signature: await s.signer.sign(roundVoteSigningBytes(resultHash, accuracies[i], 0.1, 100)) })))
  return decodeRoundCert(encodeRoundCert({ kind: 'round-cert', v: PROTOCOL_VERSION, result: bytes, leaderSignature: await leader.signer.sign(resultSigningBytes(resultHash)), votes }))
}

/** A peer whose members are `members`, of which it sees `followers` live following the round's leader (all of them by default). */
function standing (members: string[], followers = members): Standing {
  const set = new Set(members)
  return { isMember: p => set.has(p), followersOf: () => followers, byWork: true }
}

async function failure (check: () => Promise<unknown>): Promise<Error> {
  try {
    await check()
  } catch (err) {
    return err as Error
  }
  throw new Error('it held')
}

describe('certificates', () => {
  let ids: Identity[]
  let open: QuorumPolicy
  let many: Identity[]
  /** a key nobody runs: made up by a liar, which holds it */
  let madeUp: Identity
  before(async () => {
    ids = await identities(6)
    open = { self: ids[5].id }
    many = await identities(12)
    const key = await generateKeyPair('Ed25519')
    const id = peerIdFromPrivateKey(key).toString()
    madeUp = { id, key, signer: keySigner(id, key) }
  })
  const names = (n: number): string[] => ids.slice(0, n).map(i => i.id)

  it('a term certificate with votes of a majority of its electorate holds; one vote short does not', async () => {
    await checkTermCert(await termCert(1, ids[0], ids.slice(0, 3), names(5)), open)
    expect((await failure(async () => { await checkTermCert(await termCert(1, ids[0], ids.slice(0, 2), names(5)), open) })).message).to.match(/2 votes of members, 3 needed/)
  })

  it('a forged vote (signed for another candidate) breaks the certificate', async () => {
    const cert = await termCert(2, ids[0], ids.slice(0, 3), names(4))
    cert.votes[1].signature = await ids[1].signer.sign(voteSigningBytes(2, ids[3].id))
    const error = await failure(async () => { await checkTermCert(cert, open) })
    expect(error.name).to.equal('CertificateError')
    expect(error.message).to.match(/does not check out/)
  })

  it('one identity proves nothing to others: a solo certificate holds only for its own signer', async () => {
    const solo = await termCert(9, ids[0], [ids[0]], [ids[0].id])
    await checkTermCert(solo, { self: ids[0].id })
    expect((await failure(async () => { await checkTermCert(solo, open) })).message).to.match(/it takes two/)
  })

  it('a permissioned quorum is a majority of the allow-list, whatever the electorate says', async () => {
    const allowed = new Set(names(5))
    const policy = { self: ids[4].id, allowed }
    const members = standing(names(5))
    await checkTermCert(await termCert(3, ids[0], ids.slice(0, 3), names(3)), policy, members)
    expect((await failure(async () => { await checkTermCert(await termCert(3, ids[0], ids.slice(0, 2), names(2)), policy, members) })).message).to.match(/2 votes of members, 3 needed/)
    const outsider = await termCert(3, ids[5], [ids[5], ids[0], ids[1]], [ids[5].id, ...names(2)])
    expect((await failure(async () => { await checkTermCert(outsider, policy, members) })).message).to.match(/not an allowed peer/)
    expect(quorumOf(policy, 2)).to.equal(3)
  })

  it('a term certificate counts the votes of members only: made-up voters, and an electorate padded with them, elect nobody', async () => {
    const members = standing(names(4))
    // a member elected by itself and a key it made up: genuine signatures, two of an electorate of two
    const withMadeUp = await termCert(4, ids[0], [ids[0], madeUp], [ids[0].id, madeUp.id])
    await checkTermCert(withMadeUp, open) // to a peer that knows no members, its structure holds
    expect((await failure(async () => { await checkTermCert(withMadeUp, open, members) })).message).to.match(/1 votes of members, 1 needed|it takes two/)
    // the honest peers' votes in an electorate padded with made-up keys: they count as they would alone
    const padded = await termCert(4, ids[0], [ids[0], ids[1], ids[2], madeUp], [...names(4), madeUp.id])
    await checkTermCert(padded, open, members)
    const short = await termCert(4, ids[0], [ids[0], ids[1], madeUp], [...names(4), madeUp.id])
    expect((await failure(async () => { await checkTermCert(short, open, members) })).message).to.match(/2 votes of members, 3 needed/)
  })

  it('a leader to follow now must have the votes of a majority of the peers this node sees, or their word that they follow it', async () => {
    const cert = await termCert(4, ids[0], ids.slice(0, 2), names(2))
    expect(coversView(cert, open, names(2))).to.equal(true)
    expect(coversView(cert, open, names(4))).to.equal(false) // two more peers joined since
    // ... unless enough of the peers in view say they follow it now: 2 voters and 1 follower of 4
    expect(coversView(cert, open, names(4), [names(4)[2]])).to.equal(true)
    // a follower this node does not see, or a voter named again as a follower, adds nothing
    expect(coversView(cert, open, names(4), [ids[5].id])).to.equal(false)
    expect(coversView(cert, open, names(4), [names(4)[0], names(4)[1]])).to.equal(false)
    expect(isQuorum(names(2), open, names(3))).to.equal(true)
    expect(isQuorum(names(1), open, names(2))).to.equal(false)
  })

  it('a round certificate: a quorum of its checkers signed; its accuracy is their median, whatever one liar says', async () => {
    const term = await termCert(5, ids[0], ids.slice(0, 3), names(4))
    const members = standing(names(4))
    const cert = await roundCert(ids[0], ids.slice(0, 3), names(4), term, [0.91, 1, 0.9])
    const checked = await checkRoundCert(cert, term, open, members)
    expect(checked.evaluation.accuracy).to.equal(0.91)
    expect(checked.signers).to.have.length(3)
    expect((await failure(async () => { await checkRoundCert(await roundCert(ids[0], ids.slice(0, 2), names(4), term, [0.9, 0.9]), term, open, members) })).message).to.match(/2 of its 4 checkers signed and count here, 3 needed/)
  })

  it('a round certificate signed by a peer the round start did not name a checker, or under another term, does not hold', async () => {
    const term = await termCert(6, ids[0], ids.slice(0, 3), names(3))
    expect((await failure(async () => { await checkRoundCert(await roundCert(ids[0], [ids[0], ids[1], ids[5]], names(3), term, [1, 1, 1]), term, open) })).message).to.match(/signed but was not eligible/)
    const other = await termCert(7, ids[1], ids.slice(0, 3), names(3))
    expect((await failure(async () => { await checkRoundCert(await roundCert(ids[0], ids.slice(0, 3), names(3), term, [1, 1, 1]), other, open) })).message).to.match(/term certificate is of term 7/)
  })

  it('an elected member that certifies its round with a key it made up: the made-up signature counts for nothing, and the round proves nothing', async () => {
    // elected by the rules: the honest peers voted for it
    const term = await termCert(2, ids[0], ids.slice(0, 4), names(4))
    const members = standing(names(4))
    // its pool: itself and the made-up key, both drawn, both signing an all-zero model at 100%
    const cert = await roundCert(ids[0], [ids[0], madeUp], [ids[0].id, madeUp.id], term, [1, 1])
    await checkRoundCert(cert, term, open) // genuine signatures: its structure holds for a peer that knows no members
    const error = await failure(async () => { await checkRoundCert(cert, term, open, members) })
    expect(error.name).to.equal('CertificateError')
    expect(error.message).to.match(/1 of its 2 checkers signed and count here, 3 needed/)
    // with a member for a friend instead (another liar, or an honest peer that signs anything): still a majority of the four live members short
    const friend = await roundCert(ids[0], [ids[0], ids[1]], [ids[0].id, ids[1].id], term, [1, 1])
    expect((await failure(async () => { await checkRoundCert(friend, term, open, members) })).message).to.match(/2 of its 2 checkers signed and count here, 3 needed/)
    expect(roundQuorum(open, 2, 4)).to.equal(3)
  })

  it('a round\'s quorum counts the followers in its pool and those that followed already when it started, not those that came later', async () => {
    const term = await termCert(3, ids[0], ids.slice(0, 2), names(2))
    // round 1 started with two peers; two more joined and followed its leader while it ran
    const cert = await roundCert(ids[0], [ids[0], ids[1]], names(2), term, [0.9, 0.9])
    const joinedLater: Standing = { ...standing(names(4)), settledAtStart: () => names(2) }
    const checked = await checkRoundCert(cert, term, open, joinedLater)
    expect(checked.signers).to.have.length(2)
    // the two left out had followed before it started (a leader that left out who would not sign, or hid its round start): they count, and two signatures are one short
    const leftOut: Standing = { ...standing(names(4)), settledAtStart: () => names(4) }
    expect((await failure(async () => { await checkRoundCert(cert, term, open, leftOut) })).message).to.match(/2 of its 2 checkers signed and count here, 3 needed/)
    // a peer that cannot tell when its followers began to follow counts them all
    expect((await failure(async () => { await checkRoundCert(cert, term, open, standing(names(4))) })).message).to.match(/3 needed/)
    // those of the pool count whenever they began to follow, and no follower counts twice
    expect(quorumFollowers({ ...standing(names(4)), settledAtStart: () => [] }, { leader: ids[0].id, term: 3, round: 7, pool: names(2) })).to.equal(2)
    expect(quorumFollowers({ ...standing(names(4), names(3)), settledAtStart: () => names(4) }, { leader: ids[0].id, term: 3, round: 7, pool: names(2) })).to.equal(3)
  })

  it('a round of many members is checked and signed by a few, drawn by hash from the round\'s starting model; a draw that is not the pool\'s is forged', async () => {
    const pool = many.map(i => i.id)
    const checkers = roundCheckers(pool, HASH)
    expect(checkers).to.have.length(MAX_ROUND_CHECKERS)
    expect(new Set(checkers).size).to.equal(MAX_ROUND_CHECKERS)
    expect(checkers.every(c => pool.includes(c))).to.equal(true)
    // nobody picks them: the same for any order of the pool, other for another model
    expect(new Set(roundCheckers([...pool].reverse(), HASH))).to.deep.equal(new Set(checkers))
    expect(roundCheckers(pool, 'c'.repeat(64))).to.not.deep.equal(checkers)
    // a small round: everyone checks; a permissioned network: everyone checks, whatever the number
    expect(roundCheckers(pool.slice(0, 4), HASH)).to.deep.equal(pool.slice(0, 4))
    expect(drawCheckers({ self: pool[0], allowed: new Set(pool) }, pool, HASH)).to.deep.equal(pool)

    const term = await termCert(8, many[0], many.slice(0, 7), pool)
    const members = standing(pool)
    const byId = new Map(many.map(i => [i.id, i]))
    const checking = checkers.map(c => byId.get(c)!)
    const others = many.filter(i => !checkers.includes(i.id))
    const checked = await checkRoundCert(await roundCert(many[0], checking.slice(0, 4), pool, term, [0.9, 0.9, 0.9, 0.9]), term, open, members)
    expect(checked.signers).to.have.length(4)
    expect(checked.checkers).to.deep.equal(checkers)
    expect((await failure(async () => { await checkRoundCert(await roundCert(many[0], checking.slice(0, 3), pool, term, [0.9, 0.9, 0.9]), term, open, members) })).message).to.match(/3 of its 7 checkers signed and count here, 4 needed/)
    // members that are not checkers, however many, cannot stand in for them
    expect((await failure(async () => { await checkRoundCert(await roundCert(many[0], [...checking.slice(0, 3), others[0]], pool, term, [0.9, 0.9, 0.9, 0.9]), term, open, members) })).message).to.match(/signed but was not eligible/)
    // a leader that names checkers of its choosing instead of the draw
    const chosen = await roundCert(many[0], others.slice(0, 4), pool, term, [1, 1, 1, 1], others.slice(0, 7).map(i => i.id))
    expect((await failure(async () => { await checkRoundCert(chosen, term, open, members) })).message).to.match(/not the ones drawn from its pool/)
  })

  it('in a large network, a pool that leaves out more than a quarter of the members this peer sees does not prove its round', async () => {
    const everyone = many.map(i => i.id)
    const term = await termCert(9, many[0], many.slice(0, 7), everyone)
    const members = standing(everyone)
    expect(poolSlack(12)).to.equal(3)
    expect(poolSlack(MAX_ROUND_CHECKERS)).to.equal(Infinity)
    const signedBy = async (pool: string[]): Promise<ReturnType<typeof decodeRoundCert>> => {
      const drawn = new Set(roundCheckers(pool, HASH))
      return await roundCert(many[0], many.filter(i => drawn.has(i.id)), pool, term, pool.map(() => 0.9).slice(0, drawn.size))
    }
    // three left out (members that did not follow yet, say): it holds
    await checkRoundCert(await signedBy(everyone.slice(0, 9)), term, open, members)
    // four left out: the leader picked whom to draw from
    expect((await failure(async () => { await checkRoundCert(await signedBy(everyone.slice(0, 8)), term, open, members) })).message).to.match(/leaves out 4 of the 12 members this peer sees/)
  })

  it('only the signers that count make the round\'s evaluation: a made-up checker\'s 100% moves no median', async () => {
    const term = await termCert(10, ids[0], ids.slice(0, 3), names(4))
    const pool = [...names(4), madeUp.id]
    const cert = await roundCert(ids[0], [ids[0], ids[1], ids[2], madeUp], pool, term, [0.8, 0.82, 0.84, 1])
    const checked = await checkRoundCert(cert, term, open, standing(names(4)))
    expect(checked.signers).to.not.include(madeUp.id)
    expect(checked.evaluation.accuracy).to.equal(0.82)
  })

  it('a certificate blob that is not one is rejected with a reason', () => {
    expect(() => decodeTermCert(new Uint8Array([1, 2, 3]))).to.throw(/bad certificate/)
    expect(() => decodeRoundCert(encodeTermCert({ kind: 'term-cert', v: PROTOCOL_VERSION, term: 1, leader: ids[0].id, electorate: [ids[0].id], votes: [] }))).to.throw(/expected a round-cert/)
  })
})
