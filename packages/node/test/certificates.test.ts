// Certificates with real Ed25519 keys: what proves a leader and a finished round, and what does not.
import { expect } from 'chai'
import { contentHash, decodeRoundCert, MAX_ROUND_CHECKERS, roundCheckers, decodeTermCert, encodeResult, encodeRoundCert, encodeTermCert, PROTOCOL_VERSION, resultSigningBytes, roundVoteSigningBytes, voteSigningBytes, type RoundResult, type TermCert } from '@dml/protocol'
import { checkersOf, checkRoundCert, checkTermCert, coversView, isQuorum, quorumOf, type QuorumPolicy } from '@dml/node'
import { identities, type Identity } from './support/cluster.ts'

const HASH = 'b'.repeat(64)

async function termCert (term: number, leader: Identity, voters: Identity[], electorate: string[]): Promise<TermCert> {
  const votes = await Promise.all(voters.map(async v => ({ voter: v.id, signature: await v.signer.sign(voteSigningBytes(term, leader.id)) })))
  return decodeTermCert(encodeTermCert({ kind: 'term-cert', v: PROTOCOL_VERSION, term, leader: leader.id, electorate, votes }))
}

async function roundCert (leader: Identity, signers: Identity[], participants: string[], term: TermCert, accuracies: number[]): Promise<ReturnType<typeof decodeRoundCert>> {
  const result: RoundResult = {
    kind: 'round-result', v: PROTOCOL_VERSION, term: term.term, round: 7, leader: leader.id, prevHash: HASH, modelHash: HASH,
    aggregation: 'fedavg', trim: 0.2, byzantine: 1, clip: 1, normBound: 5, serverOptimizer: 'none', serverLr: 1, participants, contributions: [], termCert: contentHash(encodeTermCert(term))
  }
  const bytes = encodeResult(result)
  const resultHash = contentHash(bytes)
  const votes = await Promise.all(signers.map(async (s, i) => ({ peer: s.id, accuracy: accuracies[i], loss: 0.1, samples: 100, signature: await s.signer.sign(roundVoteSigningBytes(resultHash, accuracies[i], 0.1, 100)) })))
  return decodeRoundCert(encodeRoundCert({ kind: 'round-cert', v: PROTOCOL_VERSION, result: bytes, leaderSignature: await leader.signer.sign(resultSigningBytes(resultHash)), votes }))
}

describe('certificates', () => {
  let ids: Identity[]
  let open: QuorumPolicy
  let many: Identity[]
  before(async () => {
    ids = await identities(6)
    open = { self: ids[5].id }
    many = await identities(12)
  })
  const names = (n: number): string[] => ids.slice(0, n).map(i => i.id)

  it('a term certificate with votes of a majority of its electorate holds; one vote short does not', async () => {
    await checkTermCert(await termCert(1, ids[0], ids.slice(0, 3), names(5)), open)
    let error: Error | undefined
    try { await checkTermCert(await termCert(1, ids[0], ids.slice(0, 2), names(5)), open) } catch (err) { error = err as Error }
    expect(error?.message).to.match(/2 votes, 3 needed/)
  })

  it('a forged vote (signed for another candidate) breaks the certificate', async () => {
    const cert = await termCert(2, ids[0], ids.slice(0, 3), names(4))
    cert.votes[1].signature = await ids[1].signer.sign(voteSigningBytes(2, ids[3].id))
    let error: Error | undefined
    try { await checkTermCert(cert, open) } catch (err) { error = err as Error }
    expect(error?.name).to.equal('CertificateError')
    expect(error?.message).to.match(/does not check out/)
  })

  it('one identity proves nothing to others: a solo certificate holds only for its own signer', async () => {
    const solo = await termCert(9, ids[0], [ids[0]], [ids[0].id])
    await checkTermCert(solo, { self: ids[0].id })
    let error: Error | undefined
    try { await checkTermCert(solo, open) } catch (err) { error = err as Error }
    expect(error?.message).to.match(/it takes two/)
  })

  it('a permissioned quorum is a majority of the allow-list, whatever the electorate says', async () => {
    const allowed = new Set(names(5))
    const policy = { self: ids[4].id, allowed }
    await checkTermCert(await termCert(3, ids[0], ids.slice(0, 3), names(3)), policy)
    let error: Error | undefined
    try { await checkTermCert(await termCert(3, ids[0], ids.slice(0, 2), names(2)), policy) } catch (err) { error = err as Error }
    expect(error?.message).to.match(/2 votes, 3 needed/)
    error = undefined
    const outsider = await termCert(3, ids[5], [ids[5], ids[0], ids[1]], [ids[5].id, ...names(2)])
    try { await checkTermCert(outsider, policy) } catch (err) { error = err as Error }
    expect(error?.message).to.match(/not an allowed peer/)
    expect(quorumOf(policy, 2)).to.equal(3)
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

  it('a round certificate: a quorum of its participants signed; its accuracy is their median, whatever one liar says', async () => {
    const term = await termCert(5, ids[0], ids.slice(0, 3), names(4))
    const cert = await roundCert(ids[0], ids.slice(0, 3), names(4), term, [0.91, 1, 0.9])
    const checked = await checkRoundCert(cert, term, open)
    expect(checked.evaluation.accuracy).to.equal(0.91)
    expect(checked.signers).to.have.length(3)
    let error: Error | undefined
    try { await checkRoundCert(await roundCert(ids[0], ids.slice(0, 2), names(4), term, [0.9, 0.9]), term, open) } catch (err) { error = err as Error }
    expect(error?.message).to.match(/2 of its 4 checkers signed, 3 needed/)
  })

  it('a round certificate signed by a peer that did not take part, or under another term, does not hold', async () => {
    const term = await termCert(6, ids[0], ids.slice(0, 3), names(3))
    let error: Error | undefined
    try { await checkRoundCert(await roundCert(ids[0], [ids[0], ids[1], ids[5]], names(3), term, [1, 1, 1]), term, open) } catch (err) { error = err as Error }
    expect(error?.message).to.match(/signed but was not eligible/)
    error = undefined
    const other = await termCert(7, ids[1], ids.slice(0, 3), names(3))
    try { await checkRoundCert(await roundCert(ids[0], ids.slice(0, 3), names(3), term, [1, 1, 1]), other, open) } catch (err) { error = err as Error }
    expect(error?.message).to.match(/term certificate is of term 7/)
  })

  it('a round of many participants is checked and signed by a few, drawn by hash from the round\'s starting model', async () => {
    const participants = many.map(i => i.id)
    const checkers = roundCheckers(participants, HASH)
    expect(checkers).to.have.length(MAX_ROUND_CHECKERS)
    expect(new Set(checkers).size).to.equal(MAX_ROUND_CHECKERS)
    expect(checkers.every(c => participants.includes(c))).to.equal(true)
    // nobody picks them: the same for any order of the participants, other for another model
    expect(roundCheckers([...participants].reverse(), HASH)).to.deep.equal(checkers)
    expect(roundCheckers(participants, 'c'.repeat(64))).to.not.deep.equal(checkers)
    // a small round: everyone checks; a permissioned network: everyone checks, whatever the number
    expect(roundCheckers(participants.slice(0, 4), HASH)).to.deep.equal(participants.slice(0, 4))
    expect(checkersOf({ self: participants[0], allowed: new Set(participants) }, participants, HASH)).to.deep.equal(participants)

    const term = await termCert(8, many[0], many.slice(0, 7), participants)
    const byId = new Map(many.map(i => [i.id, i]))
    const checking = checkers.map(c => byId.get(c)!)
    const others = many.filter(i => !checkers.includes(i.id))
    const checked = await checkRoundCert(await roundCert(many[0], checking.slice(0, 4), participants, term, [0.9, 0.9, 0.9, 0.9]), term, open)
    expect(checked.signers).to.have.length(4)
    expect(checked.checkers).to.deep.equal(checkers)
    let error: Error | undefined
    try { await checkRoundCert(await roundCert(many[0], checking.slice(0, 3), participants, term, [0.9, 0.9, 0.9]), term, open) } catch (err) { error = err as Error }
    expect(error?.message).to.match(/3 of its 7 checkers signed, 4 needed/)
    // participants that are not checkers, however many, cannot stand in for them
    error = undefined
    try { await checkRoundCert(await roundCert(many[0], [...checking.slice(0, 3), others[0]], participants, term, [0.9, 0.9, 0.9, 0.9]), term, open) } catch (err) { error = err as Error }
    expect(error?.message).to.match(/signed but was not eligible/)
  })

  it('a certificate blob that is not one is rejected with a reason', () => {
    expect(() => decodeTermCert(new Uint8Array([1, 2, 3]))).to.throw(/bad certificate/)
    expect(() => decodeRoundCert(encodeTermCert({ kind: 'term-cert', v: PROTOCOL_VERSION, term: 1, leader: ids[0].id, electorate: [ids[0].id], votes: [] }))).to.throw(/expected a round-cert/)
  })
})
