// Attacks by one lying member, on real processes: 4 honest peers and test/attacker.ts, a peer that
// speaks dml's protocol from its own packages and lies, in a permissioned network (swarm key and
// allow-list, the attacker on both) and in an open one. Each attack runs for two rounds while
// training goes on; after all of them, the accuracy is that of a clean run within two points,
// and the attacker is named in every honest peer's status and logs.
import { expect } from 'chai'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { EventProcess, type LogEvent, type PeerProcess } from '@dml/node/launcher'
import { LocalNetwork, getJson } from '../helpers.ts'

const MINUTE = 60_000
const ATTACKER = fileURLToPath(new URL('../attacker.ts', import.meta.url))
const HONEST = 4
/** the round whose accuracy the clean and the attacked runs compare */
const COMPARED = 16
const OPTIONS = ['--min-peers', '3', '--rounds', '1000', '--local-epochs', '0.1', '--optimizer', 'sgd', '--lr', '0.1', '--eval-samples', '1000', '--heartbeat-ms', '500', '--lease-ms', '3000']

/** Each attack, and what an honest peer must have named the attacker for (an offence or a suspicion). */
const ATTACKS: Array<{ attack: string, what: string, named: string[], needsWork?: boolean }> = [
  { attack: 'fake-leader', what: 'heartbeats as leader with a higher term, 100 more rounds and an all-zero model, its certificates signed by itself', named: ['unproven-claim', 'unproven-leader'] },
  { attack: 'huge-term', what: 'heartbeats and vote requests with a term near 2^53', named: ['term-out-of-reach'] },
  // it lies only in rounds it is given work in; between attacks it trained nothing, so it may sit on the bench for up to 32 rounds
  { attack: 'bad-updates', what: 'updates holding NaN, Infinity, 1e30, or the model x100 claiming 10^12 samples', named: ['non-finite', 'too-many-samples', 'norm-bound'], needsWork: true },
  { attack: 'forged-round-done', what: 'a forged round-done: accuracy 100%, training finished', named: ['not-leader'] },
  { attack: 'stall-leader', what: 'a signed round-start of its own, then blob streams that never answer', named: ['not-leader'] },
  // by now the attacker may be banned: then its storm never gets through, and the ban names it
  { attack: 'storm', what: 'a gossip storm of malformed messages', named: ['malformed', 'banned'] }
]

function roundDone (round: number) {
  return (e: LogEvent): boolean => (e.event === 'round-done' || e.event === 'model-adopted') && e.round === round
}

/** The highest round every honest peer holds. */
function heldByAll (peers: PeerProcess[]): number {
  return Math.min(...peers.map(p => Math.max(0, ...p.events.filter(e => e.event === 'round-done' || e.event === 'model-adopted').map(e => e.round as number))))
}

/**
 * The best accuracy a run reached by `round` (certified, as any peer recorded it): what training
 * reaches, not one round's value, which can dip a few points with small local work.
 */
async function reachedBy (peers: PeerProcess[], round: number): Promise<number> {
  await Promise.any(peers.map(async p => await p.waitFor(roundDone(round), 5 * MINUTE)))
  const accuracies = peers.flatMap(p => p.events.filter(e => (e.event === 'round-done' || e.event === 'model-adopted') && e.round <= round).map(e => e.accuracy as number))
  return Math.max(...accuracies)
}

describe('attacks by one lying member', function () {
  this.timeout(20 * MINUTE)
  let clean = 0

  it(`a clean run of ${HONEST} peers, for comparison`, async () => {
    const net = new LocalNetwork()
    try {
      const peers = await net.start(HONEST, OPTIONS)
      clean = await reachedBy(peers, COMPARED)
      console.log(`      clean run: ${(100 * clean).toFixed(2)}% reached by round ${COMPARED}`)
      expect(clean).to.be.greaterThan(0.9)
    } finally {
      await net.stop()
    }
  })

  for (const permissioned of [true, false]) {
    describe(permissioned ? 'in a permissioned network (the attacker holds the swarm key and is allow-listed)' : 'in an open network', () => {
      const net = new LocalNetwork()
      let peers: PeerProcess[]
      let attacker: EventProcess
      let attackerId: string
      let monitor: EventProcess
      /** a second lying member, for the double vote: the first may be banned by then */
      let voterKeyFile: string
      let voterId: string
      let swarmArgs: string[] = []
      after(async () => {
        attacker?.kill('SIGKILL')
        await attacker?.exited
        await net.stop()
      })

      before(async () => {
        const key = await generateKeyPair('Ed25519')
        attackerId = peerIdFromPrivateKey(key).toString()
        const keyFile = join(net.dir, 'attacker.key')
        writeFileSync(keyFile, privateKeyToProtobuf(key))
        const voterKey = await generateKeyPair('Ed25519')
        voterId = peerIdFromPrivateKey(voterKey).toString()
        voterKeyFile = join(net.dir, 'voter.key')
        writeFileSync(voterKeyFile, privateKeyToProtobuf(voterKey))
        const extra: string[] = []
        let swarmKey: string | undefined
        if (permissioned) {
          swarmKey = join(net.dir, 'swarm.key')
          writeFileSync(swarmKey, `/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString('hex')}\n`)
          // the honest peers' ids: each prints its own from its data directory
          const ids: string[] = [attackerId, voterId]
          for (let i = 0; i < HONEST; i++) {
            const p = net.command(`id${i + 1}`, ['keygen', '--data-dir', join(net.dir, `peer${i + 1}`)])
            await p.exited
            ids.push(String(p.events.find(e => e.event === 'text')?.msg))
          }
          const allow = join(net.dir, 'allow.txt')
          writeFileSync(allow, `# the members\n${ids.join('\n')}\n`)
          extra.push('--swarm-key', swarmKey, '--allow-peers', allow)
        }
        swarmArgs = swarmKey === undefined ? [] : [swarmKey]
        peers = await net.start(HONEST, [...OPTIONS, ...extra])
        monitor = await net.monitor(['--json', ...extra])
        await Promise.any(peers.map(async p => await p.waitFor(roundDone(1), 3 * MINUTE)))
        attacker = new EventProcess('attacker', process.execPath, [ATTACKER, keyFile, await peers[0].multiaddr('127.0.0.1'), ...swarmArgs], { stdin: true })
        await attacker.waitFor('attacker-started', MINUTE)
      })

      for (const { attack, what, named, needsWork } of ATTACKS) {
        it(`${attack}: ${what}: training goes on, nobody follows it, it is named`, async () => {
          const from = heldByAll(peers)
          attacker.send(JSON.stringify({ attack }))
          await attacker.waitFor(e => e.event === 'attack' && e.attack === attack, MINUTE)
          // two rounds, held by every honest peer, while it lies; a lie in an update, once the round it lied in is over
          const lied = needsWork === true ? (await attacker.waitFor(e => e.event === 'lied' && (e.round as number) > from, 3 * MINUTE)).round as number : 0
          // named in some honest peer's logs: two rounds can pass before its first lie (it beats once a second)
          const logged = (e: LogEvent): boolean => e.peer === attackerId && (((e.event === 'misbehaviour' || e.event === 'suspicion') && named.includes(e.reason)) || (e.event === 'peer-banned' && named.includes('banned')))
          await Promise.any(peers.map(async p => await p.waitFor(logged, MINUTE))).catch(() => { throw new Error(`no honest peer named ${attackerId.slice(-6)} for ${named.join(' or ')} within a minute`) })
          // a person watching was told its leadership claim was refused
          if (attack === 'fake-leader') await monitor.waitFor(e => e.event === 'warning' && String(e.msg).includes(`not following ${attackerId.slice(-6)} as leader`), MINUTE)
          await Promise.all(peers.map(async p => await p.waitFor(roundDone(Math.max(from + 2, lied + 1)), 3 * MINUTE)))
          const statuses = await Promise.all(peers.map(async p => await getJson(await p.statusUrl())))
          for (const s of statuses) {
            expect(s.leader, 'an honest peer follows the attacker').to.not.equal(attackerId)
            expect(s.state).to.not.equal('finished')
            expect(s.term).to.be.below(1000)
          }
          // one model per round, and every round proven by a certificate
          const latest = Math.min(...statuses.map(s => s.round))
          const hashes = new Set(statuses.map(s => s.history.find((h: any) => h.round === latest)?.modelHash))
          expect(hashes.size, `round ${latest} has one model`).to.equal(1)
          for (const s of statuses) expect(s.history.every((h: any) => typeof h.certHash === 'string')).to.equal(true)
          // named: in some honest peer's status, for one of the reasons this attack earns
          const reasons = new Set(statuses.flatMap(s => (s.misbehaviour.peers as any[]).filter(p => p.peer === attackerId).flatMap(p => [...Object.keys(p.offences), ...Object.keys(p.suspicions), ...(p.banned === true ? ['banned'] : [])])))
          expect(named.some(r => reasons.has(r)), `named for ${named.join(' or ')}; got ${[...reasons].join(', ')}`).to.equal(true)
          attacker.send(JSON.stringify({ attack: 'none' }))
        })
      }

      it('double-vote: signed votes for two candidates in one term: every honest peer bans it at once for equivocation, and training goes on', async () => {
        const from = heldByAll(peers)
        const voter = new EventProcess('voter', process.execPath, [ATTACKER, voterKeyFile, await peers[0].multiaddr('127.0.0.1'), ...swarmArgs], { stdin: true })
        try {
          await voter.waitFor('attacker-started', MINUTE)
          voter.send(JSON.stringify({ attack: 'double-vote' }))
          await voter.waitFor(e => e.event === 'lied', MINUTE)
          await Promise.all(peers.map(async p => await p.waitFor(e => e.event === 'peer-banned' && e.peer === voterId, MINUTE)))
          for (const p of peers) expect(p.events.some(e => e.event === 'misbehaviour' && e.peer === voterId && e.reason === 'equivocation'), `${p.name} names it for equivocation`).to.equal(true)
          await Promise.all(peers.map(async p => await p.waitFor(roundDone(from + 1), 3 * MINUTE)))
        } finally {
          voter.kill('SIGKILL')
          await voter.exited
        }
      })

      it(`after every attack: the accuracy reached by round ${COMPARED} is within two points of the clean run's; the repeat offender is banned`, async () => {
        expect(clean, 'the clean run must pass first').to.be.greaterThan(0)
        const attacked = await reachedBy(peers, COMPARED)
        console.log(`      ${permissioned ? 'permissioned' : 'open'}: ${(100 * attacked).toFixed(2)}% reached by round ${COMPARED} (clean ${(100 * clean).toFixed(2)}%)`)
        expect(attacked).to.be.at.least(clean - 0.02)
        const statuses = await Promise.all(peers.map(async p => await getJson(await p.statusUrl())))
        expect(statuses.some(s => s.misbehaviour.peers.some((p: any) => p.peer === attackerId && p.banned)), 'banned by some honest peer').to.equal(true)
        // a person watching saw no forged round: the monitor checks certificates too
        const shown = monitor.events.filter(e => e.event === 'round')
        expect(shown.length).to.be.at.least(COMPARED - 2)
        expect(shown.every(e => e.leader !== attackerId && e.certified === true)).to.equal(true)
      })
    })
  }
})
