// Verifier: a checker's check of its leader's round result, before it signs. A round's checkers
// are a few of its members, drawn by hash when the round starts (drawCheckers); the others wait
// for the certificate.
// It signs only what it computed itself: the result must start from the round's model, use this
// peer's own aggregation settings, name the round's participants, count this peer's update if it
// sent one, and its updates, fetched and judged here, aggregated here, must give exactly the
// leader's model. Then it evaluates the model and signs the result with what it measured. A
// leader that proposes anything else is named, and its round gets no signature from this peer.
//
// The signatures of a round are gossiped to all, and the proposal carries the leader's own. A
// checker that signed a result and has seen a quorum sign it holds everything its round
// certificate needs: when the leader falls silent before its announcement of the round reaches
// this peer, the checker builds the certificate itself and commits the round. A quorum that
// signed is a round finished, whether or not its leader lived to say so: otherwise the next
// leader, elected by peers that had not heard, would do the round again with a different model.
import { contentHash, decodeResult, MAX_CERT_BYTES, encodeTensors, roundVoteSigningBytes, strategyDifference, type NamedTensor, type RoundCertVote, type RoundProposal, type RoundResult, type RoundStart, type RoundVote, type Task, type Unstamped, type UpdateReady } from '@dml/protocol'
import { aggregateRound, type ClientUpdate } from '@dml/trainer/aggregation'
import { certVoteOf, drawCheckers, quorumFollowers, roundCertificate, roundQuorum, sameSet, type QuorumPolicy, type Signer, type Standing } from '../proof/certificates.ts'
import { AbortError, type Supervisor } from '../clock.ts'
import type { Logger } from '../log.ts'
import type { Network } from '../net/network.ts'
import type { Replica } from '../state/replica.ts'
import type { Trainer } from './trainer.ts'
import type { Offence } from '../state/misbehaviour.ts'
import { checkUpdate } from './update-check.ts'
import type { Counts } from '../state/counts.ts'

export class ProposalError extends Error {
  override name = 'ProposalError'
}

export interface VerifierDeps {
  self: string
  counts: Counts
  signer: Signer
  net: Network
  trainer: Trainer
  replica: Replica
  log: Logger
  supervisor: Supervisor
  transferTimeoutMs: number
  /** the size of a model or update blob of this task */
  modelBytes: number
  /** this peer's own task: a proposal must aggregate as it would */
  task: () => Task
  /** peers to fetch from after the ones a proposal names */
  sources: () => string[]
  /** who may sign: a round certificate needs roundQuorum signatures of its checkers that are members */
  policy: QuorumPolicy
  /** who counts for this peer now */
  standing: () => Standing
  /** how long ago `peer` was last heard (Infinity: not at all) */
  silentFor: (peer: string) => number
  /** a leader silent this long has not announced its round and may never do so */
  announceGraceMs: number
  /** a leader proposed something no honest leader would, or a peer signed with a forged signature */
  offence: (peer: string, reason: Extract<Offence, 'bad-proposal' | 'bad-vote'>, detail: string) => void
}

/** The result this peer checks or signed, and the signatures of it seen so far. */
interface Pending {
  proposal: RoundProposal
  start: Unstamped<RoundStart>
  /** who checks and signs the round, as its start says */
  checkers: string[]
  /** set once this peer has signed it (and holds the model it computed) */
  resultBytes: Uint8Array | null
  /** the pool its checkers were drawn from, as its result says (set with resultBytes) */
  pool: readonly string[]
  votes: Map<string, RoundCertVote>
  certifying: boolean
}

const KEPT_ROUNDS = 8

export class Verifier {
  private readonly deps: VerifierDeps
  /** recent round starts of our proven leaders, by term:round */
  private readonly starts = new Map<string, { start: Unstamped<RoundStart>, at: number }>()
  /** the update hash this peer sent, by term:round */
  private readonly sent = new Map<string, string>()
  private current: AbortController | null = null
  private pending: Pending | null = null
  /** the participants whose update was fetched before the proposal, by term:round (prefetch) */
  private readonly prefetched = new Map<string, Set<string>>()
  private readonly prefetching = new AbortController()

  constructor (deps: VerifierDeps) { this.deps = deps }

  /** A round our proven leader started (this peer took its start at `at`): its assignments are what a proposal must match. */
  started (start: Unstamped<RoundStart>, at: number): void {
    remember(this.starts, `${start.term}:${start.round}`, { start, at })
  }

  /** When this peer took the start of round `round` of `term`, if it did lately. */
  startTakenAt (term: number, round: number): number | undefined {
    return this.starts.get(`${term}:${round}`)?.at
  }

  /** The start of round `round` of `term` as our proven leader signed it, if we saw it lately. */
  startOf (term: number, round: number): Unstamped<RoundStart> | undefined {
    return this.starts.get(`${term}:${round}`)?.start
  }

  /** Our worker sent `hash` for (term, round): a result of that round must count it. */
  sentUpdate (term: number, round: number, hash: string): void {
    remember(this.sent, `${term}:${round}`, hash)
  }

  /**
   * An update a participant announced in a round this peer checks: fetched now, while others still
   * train, so that the check finds it here and only judges it (on the README's path a check spent
   * 100-190 ms fetching). One fetch a participant a round; one that fails is the check's to retry.
   */
  prefetch (update: Unstamped<UpdateReady>): void {
    const start = this.starts.get(`${update.term}:${update.round}`)?.start
    // a leader's own collector fetches every update of its round
    if (start === undefined || start.leader === this.deps.self || update.peer === this.deps.self || !start.checkers.includes(this.deps.self)) return
    if (!start.assignments.some(a => a.peer === update.peer)) return
    const key = `${update.term}:${update.round}`
    let fetched = this.prefetched.get(key)
    if (fetched === undefined) remember(this.prefetched, key, fetched = new Set())
    if (fetched.has(update.peer)) return
    fetched.add(update.peer)
    const { net, supervisor, transferTimeoutMs, modelBytes } = this.deps
    supervisor.run(`fetch the update of ${update.peer.slice(-6)} for round ${update.round} ahead of its check`, async () => {
      try {
        await net.fetchBlob(update.hash, [update.peer], { signal: this.prefetching.signal, timeoutMs: transferTimeoutMs, maxBytes: modelBytes })
      } catch {
        // the check fetches it again, from every source, and says so if it cannot
      }
    })
  }

  /** A proposal of our proven leader: verify it in the background (a newer one replaces it), then sign. */
  onProposal (proposal: RoundProposal): void {
    this.current?.abort(new AbortError('a newer proposal came'))
    const controller = new AbortController()
    this.current = controller
    const start = this.starts.get(`${proposal.term}:${proposal.round}`)?.start
    const checkers = start === undefined ? [] : start.checkers
    const pending: Pending | null = start === undefined ? null : { proposal, start, checkers, resultBytes: null, pool: [], votes: new Map(), certifying: false }
    this.pending = pending
    this.deps.supervisor.run(`check the proposal of round ${proposal.round}`, async () => {
      try {
        await this.check(proposal, pending, controller.signal)
      } catch (err) {
        if (controller.signal.aborted) return
        const e = err as Error
        this.deps.log.warn('proposal-rejected', { leader: proposal.leader, round: proposal.round, reason: e.message },
          `round ${proposal.round}: not signing the result of ${proposal.leader.slice(-6)}: ${e.message}`)
        if (e.name === 'ProposalError') this.deps.offence(proposal.leader, 'bad-proposal', e.message)
      }
    })
  }

  /** A checker's signature (the leader's too) of the result this peer checks: checked, then kept. */
  onRoundVote (vote: RoundVote): void {
    const pending = this.pending
    if (pending === null || vote.term !== pending.proposal.term || vote.round !== pending.proposal.round || vote.resultHash !== pending.proposal.resultHash) return
    if (pending.votes.has(vote.peer) || !pending.checkers.includes(vote.peer)) return
    this.deps.supervisor.run(`signature of ${vote.peer.slice(-6)} for round ${vote.round}`, async () => {
      const checked = await certVoteOf(vote)
      if (checked === undefined) {
        this.deps.offence(vote.peer, 'bad-vote', `its signature of round ${vote.round} does not check out`)
        return
      }
      pending.votes.set(vote.peer, checked)
    })
  }

  /**
   * Called every heartbeat: a result this peer signed, signed by a quorum, whose leader has been
   * silent for the grace without announcing it, is certified here and committed.
   */
  tick (): void {
    const pending = this.pending
    const { replica, log } = this.deps
    if (pending === null || pending.certifying || pending.resultBytes === null) return
    const { proposal } = pending
    if (replica.round >= proposal.round) {
      this.pending = null
      return
    }
    const standing = this.deps.standing()
    const counted = [...pending.votes.keys()].filter(p => standing.isMember(p)).length
    if (counted < roundQuorum(this.deps.policy, pending.checkers.length, quorumFollowers(standing, { ...proposal, pool: pending.pool }))) return
    if (this.deps.silentFor(proposal.leader) < this.deps.announceGraceMs) return
    pending.certifying = true
    const votes = [...pending.votes.values()]
    const certBytes = roundCertificate(pending.resultBytes, proposal.signature, votes)
    const certHash = this.deps.net.blobs.put(certBytes)
    log.warn('round-self-certified', { round: proposal.round, term: proposal.term, leader: proposal.leader, certHash, signers: votes.length },
      `round ${proposal.round}: ${votes.length} of its ${pending.checkers.length} checkers signed it, and its leader ${proposal.leader.slice(-6)} fell silent without announcing it: certifying it here`)
    replica.catchUp(certHash, [proposal.leader, ...this.deps.sources()])
  }

  stop (): void {
    this.current?.abort(new AbortError('the peer is stopping'))
    this.prefetching.abort(new AbortError('the peer is stopping'))
  }

  /** Checks proposal `p`, whose round start and checkers `pending` holds (null: its start was not seen here). */
  private async check (p: RoundProposal, pending: Pending | null, signal: AbortSignal): Promise<void> {
    const { net, replica, trainer, signer, self, log } = this.deps
    if (pending === null) {
      log.info('proposal-skipped', { round: p.round, term: p.term }, `round ${p.round}: not checking the result, this peer did not see the round start`)
      return
    }
    const { start, checkers } = pending
    if (!checkers.includes(self)) return // only the round's checkers sign
    const from = [p.leader, ...this.deps.sources()]
    const fetch = async (hash: string, maxBytes: number, first: string[] = []): Promise<Uint8Array> =>
      await net.fetchBlob(hash, [...first, ...from], { signal, timeoutMs: this.deps.transferTimeoutMs, maxBytes })
    const previous = await replica.weights(start.modelHash, from, signal)
    const resultBytes = await fetch(p.resultHash, MAX_CERT_BYTES)
    const result = decodeResult(resultBytes)
    if (result.deadline !== start.deadline && result.term === start.term && result.round === start.round) {
      // its leader started the round again (a retry) while this peer was elsewhere: not a lie, a start it missed
      log.info('proposal-skipped', { round: p.round, term: p.term }, `round ${p.round}: not checking the result, this peer did not see the start it closes (the round was started again)`)
      return
    }
    this.match(result, p, start)
    const assigned = new Map(start.assignments.map(a => [a.peer, a.samples]))
    const updates = await Promise.all(result.contributions.map(async (c): Promise<ClientUpdate> => {
      const verdict = checkUpdate(await fetch(c.hash, this.deps.modelBytes, [c.peer]), c.numSamples, assigned.get(c.peer)!, previous, start.modelHash)
      if (!verdict.ok) throw new ProposalError(`it counts the update of ${c.peer.slice(-6)}, which is ${verdict.reason}: ${verdict.detail}`)
      return { peer: c.peer, weights: verdict.weights, numSamples: c.numSamples }
    }))
    const weights = aggregate(updates, previous, result)
    const bytes = encodeTensors(weights)
    const modelHash = contentHash(bytes)
    if (modelHash !== result.modelHash) throw new ProposalError(`its updates aggregate to ${modelHash.slice(0, 12)}, not to the proposed ${result.modelHash.slice(0, 12)}`)
    const evaluation = await trainer.evaluate(this.deps.task(), weights, signal)
    signal.throwIfAborted()
    replica.hold(bytes)
    const signature = await signer.sign(roundVoteSigningBytes(p.resultHash, evaluation.accuracy, evaluation.loss, evaluation.samples))
    const vote: Unstamped<RoundVote> = { type: 'round-vote', v: p.v, term: p.term, round: p.round, peer: self, resultHash: p.resultHash, accuracy: evaluation.accuracy, loss: evaluation.loss, samples: evaluation.samples, signature }
    await net.publish(vote)
    if (this.pending === pending) {
      pending.resultBytes = resultBytes
      pending.pool = result.pool
      pending.votes.set(self, { peer: self, accuracy: vote.accuracy, loss: vote.loss, samples: vote.samples, signature })
    }
    this.deps.counts.add('roundsSigned')
    log.info('round-signed', { round: p.round, term: p.term, accuracy: evaluation.accuracy, loss: evaluation.loss },
      `round ${p.round}: checked and signed the result (accuracy ${(100 * evaluation.accuracy).toFixed(2)}% here)`)
  }

  /** The result must be the one proposed, of the round we saw start, aggregated as we would. */
  private match (result: RoundResult, p: RoundProposal, start: Unstamped<RoundStart>): void {
    const fail = (why: string): never => { throw new ProposalError(why) }
    if (result.term !== p.term || result.round !== p.round || result.leader !== p.leader || result.modelHash !== p.modelHash) fail('its result blob is not the one it proposed')
    if (result.prevHash !== start.modelHash) fail('its result does not start from the round\'s model')
    if (!sameSet(result.checkers, start.checkers)) fail('its checkers are not the ones its round start named')
    if (!sameSet(drawCheckers(this.deps.policy, result.pool, start.modelHash), result.checkers)) fail('its checkers are not the ones drawn from its pool')
    const ours = this.deps.task()
    const difference = strategyDifference(ours.strategy, result.strategy)
    if (difference !== undefined) fail(`it aggregates with ${difference.field} ${String(difference.theirs)}, this peer with ${String(difference.ours)}`)
    const assigned = start.assignments.map(a => a.peer).sort()
    if (result.participants.length !== assigned.length || [...result.participants].sort().some((peer, i) => peer !== assigned[i])) fail('its participants are not the round\'s')
    for (const c of result.contributions) {
      const a = start.assignments.find(x => x.peer === c.peer)!
      if (c.numSamples > a.samples) fail(`it counts ${c.numSamples} samples for ${c.peer.slice(-6)}, who was assigned ${a.samples}`)
    }
    const mine = this.sent.get(`${p.term}:${p.round}`)
    // not a lie (the leader may have failed to fetch it), but this peer signs no round that leaves it out
    if (mine !== undefined && !result.contributions.some(c => c.peer === this.deps.self && c.hash === mine)) throw new Error('it leaves out this peer\'s update')
  }
}

function aggregate (updates: ClientUpdate[], previous: NamedTensor[], result: RoundResult): NamedTensor[] {
  return aggregateRound(updates, previous, result.strategy).weights
}

function remember<T> (map: Map<string, T>, key: string, value: T): void {
  map.set(key, value)
  if (map.size > KEPT_ROUNDS) map.delete(map.keys().next().value!)
}
