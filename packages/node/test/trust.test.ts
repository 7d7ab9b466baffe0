// What a peer accepts, against members that turn: the engine (DmlNode) on the in-memory network
// with fake time. A certificate counts only signers the checking peer knows as members; nothing
// stale moves a peer; a flood of well-formed, signed messages costs its sender, not the network.
import { expect } from 'chai'
import { decodeMessage, PROTOCOL_VERSION, roundVoteSigningBytes, voteSigningBytes, type ControlMessage } from '@dml/protocol'
import { TASK, TestCluster, type LogEntry, type TestPeer } from './support/cluster.ts'
import { forgeRound, madeUpSigner, sideTerm } from './support/forge.ts'

type Inside = { gate: { admission: { size: number } }, membership: { size: number } }
const inside = (p: TestPeer): Inside => p.node as unknown as Inside

/** Whether `by` names `peer` for `reason`, in its status (an offence or a suspicion) and its log. */
function names (by: TestPeer, peer: string, reason: string): boolean {
  const entry = by.node.status().misbehaviour.peers.find(p => p.peer === peer)
  const inStatus = entry !== undefined && (entry.offences[reason] !== undefined || entry.suspicions[reason] !== undefined)
  const inLog = by.logs.some(e => (e.event === 'misbehaviour' || e.event === 'suspicion') && e.peer === peer && e.reason === reason)
  return inStatus && inLog
}

describe('what a peer accepts, against members that turn', function () {
  let net: TestCluster
  beforeEach(async () => { net = await TestCluster.create() })
  afterEach(async () => { await net.stop() })
  const long = { config: { task: { ...TASK, totalRounds: 30 } } }

  for (const accomplice of ['a key it made up', 'a member it got to sign']) {
    it(`an elected leader that turns and certifies a round with itself and ${accomplice}: no honest peer adopts it; they name it, leave it, and train on`, async () => {
      const peers = [net.add(long), net.add(long), net.add(long), net.add(long)]
      await net.until('two rounds', () => net.roundsDone().length >= 2)
      const liar = net.leader()!
      const honest = peers.filter(p => p !== liar)
      // it was elected by the rules: the others voted for it and follow it
      expect(honest.every(p => p.node.status().leader === liar.id)).to.equal(true)
      // it turns: none of its honest round messages go out any more
      const publish = liar.net.publish.bind(liar.net)
      liar.net.publish = async (m) => { if (m.type !== 'heartbeat' && m.type !== 'vote' && m.type !== 'vote-request') return; await publish(m) }
      const friend = accomplice === 'a key it made up' ? await madeUpSigner() : honest[0].signer
      const held = liar.node.replica.round
      // a round whose start nobody saw (the one in progress has checkers the forgery would contradict: see below)
      const { modelHash: forged } = await forgeRound(liar.node, [friend], publish, held + 2)
      await net.until('another leader', () => honest.every(p => p.node.status().leader !== null && p.node.status().leader !== liar.id && p.node.status().leader === honest[0].node.status().leader))
      await net.until('two more rounds, by another leader', () => honest.every(p => p.node.replica.round >= held + 2))
      for (const p of honest) {
        expect(p.node.replica.history.some(r => r.modelHash === forged), `${p.id.slice(-4)} adopted the forged model`).to.equal(false)
        expect(names(p, liar.id, 'unproven-round'), `${p.id.slice(-4)} names the liar`).to.equal(true)
      }
      expect(net.events('leader-distrusted', e => e.leader === liar.id && /prove nothing here/.test(e.reason as string)).length).to.be.at.least(1)
      // one model a round among the honest peers
      for (let round = 1; round <= held + 2; round++) expect(new Set(honest.map(p => p.node.replica.history.find(r => r.round === round)?.modelHash)).size, `round ${round}`).to.equal(1)
    })
  }

  it('a leader that certifies a round in a term of its own, elected by itself and a member it got to vote, while it tells its followers of its real term: the round proves nothing', async () => {
    const peers = [net.add(long), net.add(long), net.add(long), net.add(long)]
    await net.until('two rounds', () => net.roundsDone().length >= 2)
    const liar = net.leader()!
    const honest = peers.filter(p => p !== liar)
    const publish = liar.net.publish.bind(liar.net)
    liar.net.publish = async (m) => { if (m.type === 'heartbeat' || m.type === 'vote' || m.type === 'vote-request') await publish(m) }
    const friend = honest[0].signer
    const term = await sideTerm(liar.node, [friend], liar.node.status().term + 1)
    const held = liar.node.replica.round
    // the round-done of a newer term goes unheard; its heartbeats, of its real term, show the round
    const { modelHash: forged } = await forgeRound(liar.node, [friend], publish, held + 2, term)
    await net.until('another leader', () => honest.every(p => p.node.status().leader !== null && p.node.status().leader !== liar.id))
    await net.until('two more rounds, by another leader', () => honest.every(p => p.node.replica.round >= held + 2))
    for (const p of honest) {
      expect(p.node.replica.history.some(r => r.modelHash === forged), `${p.id.slice(-4)} adopted the forged model`).to.equal(false)
      expect(names(p, liar.id, 'unproven-round'), `${p.id.slice(-4)} names the liar`).to.equal(true)
    }
  })

  it('a leader whose certificate names other checkers than its signed round start: forged, and it is left at once', async () => {
    const peers = [net.add(long), net.add(long), net.add(long)]
    await net.until('a round', () => net.roundsDone().length >= 1)
    const liar = net.leader()!
    const honest = peers.filter(p => p !== liar)
    const publish = liar.net.publish.bind(liar.net)
    let swapped = false
    // it certifies its next round honestly signed by its checkers, then, in its announcement,
    // a certificate of the same round whose checkers (and signers) are other than its start named
    liar.net.publish = async (m) => {
      if (m.type === 'round-done' && !swapped) {
        swapped = true
        await forgeRound(liar.node, [await madeUpSigner(), await madeUpSigner()], publish)
        return
      }
      await publish(m)
    }
    await net.until('the honest peers leave it', () => honest.every(p => p.logs.some(e => e.event === 'leader-distrusted' && e.leader === liar.id)))
    for (const p of honest) expect(names(p, liar.id, 'bad-certificate'), `${p.id.slice(-4)} names it for a forged certificate`).to.equal(true)
    expect(net.events('leader-distrusted', e => e.leader === liar.id)[0].reason).to.match(/forged/)
  })

  it('members that are live but follow no one (restarting, say) are not the leader\'s to draw: its rounds with the others are certified, promptly', async () => {
    const config = { config: { minPeers: 2, task: { ...TASK, totalRounds: 30 } } }
    const peers = [net.add(config), net.add(config), net.add(config), net.add(config)]
    await net.until('two rounds', () => net.roundsDone().length >= 2)
    const leader = net.leader()!
    type Election = { election: { holdOffUntil: number, distrust: (peer: string, until: number) => void } }
    const aside = peers.filter(p => p !== leader).slice(0, 2)
    for (const p of aside) {
      const { election } = p.node as unknown as Election
      election.holdOffUntil = Infinity
      election.distrust(leader.id, Infinity)
    }
    const before = net.roundsDone().length
    await net.until('two more rounds', () => net.roundsDone().length >= before + 2)
    for (const d of net.roundsDone().slice(before + 1)) {
      expect(d.signers, `round ${String(d.round)}`).to.equal(2)
      expect(d.durationMs, `round ${String(d.round)}`).to.be.below(10_000)
    }
    // only the round in progress when they left, whose checkers were drawn while they followed, is done again
    expect(net.events('round-failed').map(e => e.round)).to.deep.equal(net.events('round-failed').map(() => before + 1))
  })

  it('peers that join while round 1 runs were not its leader\'s to draw: the round of the first two is certified by their two signatures, on time, and the newcomers take it up', async () => {
    const config = { config: { minPeers: 2, task: { ...TASK, totalRounds: 30 } }, behaviour: { trainMs: 20_000 } }
    net.add(config)
    net.add(config)
    // (each may lead a term of its own for a moment, alone: round 1 is theirs once one leads both, and half trained)
    const roundOfTwo = (e: LogEntry): boolean => e.round === 1 && e.peers === 2
    await net.until('round 1 runs on the first two', () => net.events('train-progress', e => e.round === 1).length >= 2 && net.events('round-start', roundOfTwo).length > 0)
    const leader = net.events('round-start', roundOfTwo).at(-1)!.node
    const late: TestPeer[] = []
    for (let i = 0; i < 2; i++) {
      const newcomer = net.add(config)
      late.push(newcomer)
      await net.until('the newcomer follows its leader', () => newcomer.node.status().leader === leader)
    }
    expect(net.roundsDone()).to.have.length(0)
    await net.until('round 1 is done', () => net.roundsDone().length >= 1)
    const [done] = net.roundsDone()
    expect(done.signers).to.equal(2)
    expect(done.durationMs).to.be.below(30_000)
    expect(net.events('round-failed')).to.have.length(0)
    await net.until('the newcomers hold round 1', () => late.every(p => p.node.replica.round >= 1))
    expect(net.events('leader-distrusted')).to.have.length(0)
  })

  it('a checker that refuses to sign correct results: rounds are certified without it, in about the time the others took, and it is named', async () => {
    const peers = [net.add(long), net.add(long), net.add(long), net.add(long)]
    await net.until('a round', () => net.roundsDone().length >= 1)
    const leader = net.leader()!
    const refuser = peers.find(p => p !== leader)!
    const publish = refuser.net.publish.bind(refuser.net)
    refuser.net.publish = async (m) => { if (m.type !== 'round-vote') await publish(m) }
    const before = net.roundsDone().length
    await net.until('three more rounds', () => net.roundsDone().length >= before + 3)
    const later = net.roundsDone().slice(before)
    for (const d of later) {
      expect(d.signers, `round ${String(d.round)}`).to.equal(3)
      expect(d.durationMs, `round ${String(d.round)} waited for it`).to.be.below(10_000) // training takes 2 s; the deadline is a minute
    }
    expect(names(leader, refuser.id, 'no-signature')).to.equal(true)
    expect(net.events('round-failed')).to.have.length(0)
  })

  it('a signature of a round by a peer its start did not draw counts nowhere, and the peer is named', async () => {
    const peers = Array.from({ length: 9 }, () => net.add(long))
    await net.until('a round', () => net.roundsDone().length >= 1)
    const leader = net.leader()!
    // a peer not drawn for the next round signs its result anyway, as soon as it is proposed
    const round = net.roundsDone().length + 1
    await net.until(`round ${round} started`, () => leader.net.published.some(m => m.type === 'round-start' && m.round === round))
    const start = leader.net.published.find((m): m is Extract<typeof m, { type: 'round-start' }> => m.type === 'round-start' && m.round === round)!
    const outsider = peers.find(p => p !== leader && !start.checkers.includes(p.id))!
    const handlers = outsider.net.handlers!
    const deliver = handlers.deliver.bind(handlers)
    let signed = false
    handlers.deliver = (m) => {
      deliver(m)
      if (m.type !== 'round-proposal' || m.round !== round || signed) return
      signed = true
      outsider.signer.sign(roundVoteSigningBytes(m.resultHash, 1, 0, 1e6)).then(async signature => {
        await outsider.net.publish({ type: 'round-vote', v: PROTOCOL_VERSION, term: m.term, round, peer: outsider.id, resultHash: m.resultHash, accuracy: 1, loss: 0, samples: 1e6, signature })
      }).catch(() => {})
    }
    // the outsider signs in real time (ed25519) while the fake clock runs: the leader holds the
    // checkers' votes of the round until the outsider's has come, so that it comes while the round
    // still collects signatures, whichever signer is quicker
    const leaderHandlers = leader.net.handlers!
    const leaderDeliver = leaderHandlers.deliver.bind(leaderHandlers)
    const held: ControlMessage[] = []
    let outsiderVoted = false
    leaderHandlers.deliver = (m) => {
      if (m.type !== 'round-vote' || m.round !== round || outsiderVoted) {
        leaderDeliver(m)
      } else if (m.peer !== outsider.id) {
        held.push(m)
      } else {
        outsiderVoted = true
        leaderDeliver(m)
        for (const vote of held.splice(0)) leaderDeliver(vote)
      }
    }
    await net.until(`round ${round} done`, () => net.roundsDone().length >= round)
    expect(signed).to.equal(true)
    expect(names(leader, outsider.id, 'not-checker')).to.equal(true)
    const done = net.roundsDone()[round - 1]
    expect(done.accuracy, 'its 100% moved the median').to.be.below(1)
    for (const p of peers) expect(p.node.replica.history.find(r => r.round === round)?.metrics.evaluatedSamples ?? 0, 'its million examples weigh in').to.be.below(1e6)
  })

  it('a member records the leader\'s signed heartbeats and replays them after the leader dies: the others see it gone, elect another, and name the replayer', async () => {
    const peers = [net.add(long), net.add(long), net.add(long)]
    await net.until('three rounds', () => net.roundsDone().length >= 3)
    const leader = net.leader()!
    const survivors = peers.filter(p => p !== leader)
    const replayer = net.hub.join(net.identity().id)
    replayer.bind({ judge: () => 'accept', rejected: () => {}, subscribed: () => {}, deliver: () => {} })
    // what the leader said, as gossip carried it: signed by the leader, every word true
    const captured = leader.net.sent.filter(bytes => decodeMessage(bytes).type === 'heartbeat')
    expect(captured.length).to.be.at.least(5)
    const died = net.clock.now()
    leader.net.disconnect()
    let sends = 0
    const replay = (): void => {
      if (sends >= 600) return
      const bytes = captured[sends++ % captured.length]
      for (const s of survivors) s.net.receive(bytes, leader.id, replayer.peerId)
      net.clock.setTimeout(replay, 100)
    }
    replay()
    await net.until('a new leader among the survivors', () => survivors.some(p => p.node.isLeading))
    const elected = net.clock.now() - died
    await net.until('a round by the new leader', () => net.roundsDone().some(d => d.node !== leader.id && d.ts > died))
    expect(sends, 'still replaying when the new leader was elected').to.be.below(600)
    expect(elected).to.be.below(20_000) // a lease (5 s), a slot and an election; the replay goes on for 60 s
    await net.until('the replay is over', () => sends >= 600)
    for (const s of survivors) {
      expect(s.logs.some(e => e.event === 'peer-lost' && e.peer === leader.id), `${s.id.slice(-4)} saw its leader gone`).to.equal(true)
      expect(s.node.status().rejectedMessages.replayed, `${s.id.slice(-4)} counts the replays`).to.be.above(0)
      expect(names(s, replayer.peerId, 'replayed'), `${s.id.slice(-4)} names the replayer`).to.equal(true)
      // the author is not blamed for what another did with its words
      expect(s.node.status().misbehaviour.peers.some(p => p.peer === leader.id)).to.equal(false)
    }
  })

  it('a member that floods the control topic with well-formed, signed messages is banned and hung up on by every peer; rounds go on, and what each keeps stays bounded', async () => {
    const peers = [net.add(long), net.add(long), net.add(long)]
    await net.until('a round', () => net.roundsDone().length >= 1)
    const { id, signer } = net.identity()
    const flooder = net.hub.join(id)
    flooder.bind({ judge: () => 'accept', rejected: () => {}, subscribed: () => {}, deliver: () => {} })
    const before = net.roundsDone().length
    // as fast as it can, every one well-formed and signed: heartbeats, votes for a candidate in
    // every term within reach, signatures of results
    const term = peers[0].node.status().term
    for (let i = 0; i < 3000; i++) {
      const kind = i % 3
      if (kind === 0) await flooder.publish({ type: 'heartbeat', v: PROTOCOL_VERSION, term, peer: id, leader: null, round: 0, modelHash: null, device: 'gpu', backend: 'flood', speed: 1e6, examples: 0, addrs: [], termCert: null, roundCert: null, work: null, everyMs: 1000 })
      else if (kind === 1) await flooder.publish({ type: 'vote', v: PROTOCOL_VERSION, term: term + 1 + (i % 60), candidate: peers[0].id, voter: id, signature: await signer.sign(voteSigningBytes(term + 1 + (i % 60), peers[0].id)) })
      else await flooder.publish({ type: 'round-vote', v: PROTOCOL_VERSION, term, round: 1 + i, peer: id, resultHash: 'e'.repeat(64), accuracy: 1, loss: 0, samples: 1, signature: await signer.sign(roundVoteSigningBytes('e'.repeat(64), 1, 0, 1)) })
    }
    await net.until('banned by every peer', () => peers.every(p => p.node.ledger.isBanned(id)))
    for (const p of peers) {
      expect(p.net.hungUp, `${p.id.slice(-4)} hung up on it`).to.include(id)
      expect(names(p, id, 'flood')).to.equal(true)
      expect(p.node.status().rejectedMessages.flood).to.be.at.least(20)
      expect(inside(p).gate.admission.size).to.be.at.most(10)
      expect(inside(p).membership.size).to.be.at.most(10)
    }
    await net.until('two more rounds', () => net.roundsDone().length >= before + 2)
    // none of its votes for the same candidate in 60 terms moved anyone's term
    for (const p of peers) expect(p.node.status().term).to.be.below(term + 2)
  })

  it('a vote replayed after its term does not count again, and a vote request of an old term moves nobody', async () => {
    const peers = [net.add(long), net.add(long), net.add(long)]
    await net.until('a round', () => net.roundsDone().length >= 1)
    const leader = net.leader()!
    const other = peers.find(p => p !== leader)!
    const requests = leader.net.sent.filter(bytes => decodeMessage(bytes).type === 'vote-request')
    const votes = net.peers.flatMap(p => p.net.sent).filter(bytes => decodeMessage(bytes).type === 'vote')
    const term = other.node.status().term
    await net.clock.advance(60_000)
    for (const bytes of [...requests, ...votes]) {
      const m = decodeMessage(bytes)
      other.net.receive(bytes, m.type === 'vote' ? m.voter : leader.id, peers.find(p => p !== leader && p !== other)!.id)
    }
    await net.clock.advance(10_000)
    expect(other.node.status().term).to.equal(term)
    expect(other.node.status().leader).to.equal(leader.id)
    expect(net.events('voted', e => e.node === other.id && e.ts > net.clock.now() - 10_000)).to.have.length(0)
  })
})
