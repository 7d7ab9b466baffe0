// dml-monitor: a passive libp2p peer. It subscribes to the control topic (sending no heartbeats,
// so it is never counted as a node or assigned work) and prints each round as it finishes. It
// believes a round only with its certificate, as a peer would: a forged "accuracy 100%" is not
// shown, and a round this monitor cannot prove (a lone peer's, or a liar's signed by itself) is
// only a warning line: it neither counts as a round nor ends the monitor.
import { generateKeyPair } from '@libp2p/crypto/keys'
import { OWN_DATA, type ControlMessage, type Heartbeat, type RoundDone } from '@dml/protocol'
import { Admission } from '../net/admission.ts'
import { CertificateError, coversView, isForgery, type Standing } from '../proof/certificates.ts'
import { Supervisor } from '../clock.ts'
import { helpText, MONITOR_OPTIONS, parseOptions, readAllowList, readSwarmKey, unknownVariables } from './config.ts'
import { version } from './version.ts'
import { startHost } from '../net/host.ts'
import { Proofs, type ProvenRound } from '../proof/proofs.ts'
import { ProvenPeers } from '../proof/proven.ts'
import { linesView, terminalView } from './monitor-view.ts'
import { followersIn, followersOf, silenceMs } from '../state/membership.ts'

const SUMMARY = 'Follows dml training live: joins the network as a passive peer and prints every finished round.'

export async function runMonitor (argv: string[]): Promise<number> {
  for (const warning of unknownVariables(process.env)) console.error(`warning: ${warning}`)
  if (argv[0] === '--version' || argv[0] === '-v') {
    console.log(version())
    return 0
  }
  const o = parseOptions(argv, MONITOR_OPTIONS, process.env)
  if (o.help === true) {
    console.log(await helpText('dml-monitor', SUMMARY, MONITOR_OPTIONS, { version: true }))
    return 0
  }
  const json = o.json === true
  const view = !json && o.lines !== true && process.stdout.isTTY ? terminalView() : linesView(json)
  const maxRounds = o.rounds as number
  const peers = new Map<string, { hb: Heartbeat, seen: number }>()
  /** rounds shown, and certificates already looked at (a forged one must not hide the real round) */
  const shownRounds = new Set<number>()
  const checked = new Set<string>()
  let resolveDone: (() => void) | undefined
  const done = new Promise<void>(resolve => { resolveDone = resolve })
  let count = 0
  const lifetime = new AbortController()
  const supervisor = new Supervisor((task, err) => { view.warn(`${task} failed: ${(err as Error)?.message ?? String(err)}`) })
  const allowed = o['allow-peers'] === '' ? undefined : readAllowList(o['allow-peers'] as string)
  let proofs: Proofs | undefined
  /** who counts in a leader's quorum, as for a peer (proven.ts): learnt from the certified rounds */
  const provenPeers = new ProvenPeers()
  /** peers heard lately (a follower of a large network beats less often), as a peer counts them */
  const live = (): Heartbeat[] => [...peers.values()].filter(p => Date.now() - p.seen < silenceMs(10_000, p.hb)).map(p => p.hb)
  /** who counts in a certificate for this monitor: as for a peer (Standing), from what it has heard */
  const standing = (): Standing => {
    const heard = live()
    const set = new Set(heard.map(h => h.peer))
    const isMember = allowed !== undefined ? (p: string) => allowed.has(p) : provenPeers.any ? (p: string) => provenPeers.has(p) : (p: string) => set.has(p)
    return { isMember, followersOf: (leader, term) => followersIn(heard, leader, term).filter(isMember), byWork: allowed !== undefined || provenPeers.any }
  }
  /** what is new (admission.ts): the monitor relays what it takes, and must not relay a replay */
  const admission = new Admission()
  /** whether the peers train on their own examples, as the last round start said */
  let ownData = false

  const show = (rd: RoundDone, proven: ProvenRound): void => {
    shownRounds.add(rd.round)
    count++
    view.round({ round: rd.round, term: rd.term, leader: rd.leader, modelHash: rd.modelHash, finished: rd.finished, signers: proven.signers.length, evaluation: proven.evaluation, metrics: rd.metrics, before: false, ownData })
    if (rd.finished || (maxRounds > 0 && count >= maxRounds)) resolveDone?.()
  }

  /** The newest round when this monitor joined, from the leader's certificate of it: shown, not counted. */
  const showJoined = (proven: ProvenRound): void => {
    const { result } = proven
    if (shownRounds.size > 0) return // a round-done came first: it says more
    shownRounds.add(result.round)
    view.round({ round: result.round, term: result.term, leader: result.leader, modelHash: result.modelHash, finished: false, signers: proven.signers.length, evaluation: proven.evaluation, before: true, ownData })
  }

  const onRoundDone = (rd: RoundDone): void => {
    if (shownRounds.has(rd.round) || checked.has(rd.certHash) || proofs === undefined) return
    checked.add(rd.certHash)
    const check = proofs
    supervisor.run(`check round ${rd.round}`, async () => {
      try {
        const proven = await check.round(rd.certHash, [rd.leader, ...peers.keys()])
        if (proven.result.round !== rd.round || proven.result.modelHash !== rd.modelHash || proven.result.leader !== rd.leader) throw new CertificateError('forged', 'the certificate is of another round')
        provenPeers.sawRound(proven)
        if (!shownRounds.has(rd.round)) show(rd, proven)
      } catch (err) {
        // forged, or genuine but proving nothing to this monitor (one peer alone), or out of reach
        checked.delete(rd.certHash) // a certificate that could not be fetched may be fetched later
        if (isForgery(err)) checked.add(rd.certHash)
        view.warn(`ignored the round-done of ${rd.leader.slice(-6)} for round ${rd.round}: ${(err as Error).message}`)
      }
    })
  }

  /**
   * Leaders whose term certificate this monitor checked, by term. Their leader messages are the only
   * ones it takes (and so relays): relaying a liar's would make the honest peers score it down.
   */
  const provenLeaders = new Map<string, number>()
  const checkingLeaders = new Set<string>()
  const saidUnproven = new Set<string>()
  const considerLeader = (hb: Heartbeat, termCert: string): void => {
    if (provenLeaders.get(hb.peer) === hb.term || checkingLeaders.has(termCert) || proofs === undefined) return
    checkingLeaders.add(termCert)
    const check = proofs
    supervisor.run(`check the leader ${hb.peer.slice(-6)}`, async () => {
      try {
        const { cert } = await check.term(termCert, [hb.peer, ...peers.keys()])
        check.elects(cert)
        let joined: ProvenRound | undefined
        if (!provenPeers.any && hb.roundCert !== null) {
          joined = await check.round(hb.roundCert, [hb.peer, ...peers.keys()])
          provenPeers.sawRound(joined)
        }
        const heard = live()
        if (cert.leader !== hb.peer || cert.term !== hb.term || !coversView(cert, { self: host.peerId, allowed }, provenPeers.counted(heard.map(h => h.peer)), followersOf(heard, hb.peer, hb.term))) throw new CertificateError('unproven', 'too few of the peers in view voted for it or follow it')
        provenLeaders.set(hb.peer, hb.term)
        if (joined !== undefined && joined.result.round === hb.round) showJoined(joined)
      } catch (err) {
        if (!saidUnproven.has(hb.peer)) view.warn(`not following ${hb.peer.slice(-6)} as leader of term ${hb.term}: ${(err as Error).message}`)
        saidUnproven.add(hb.peer)
      } finally {
        checkingLeaders.delete(termCert)
      }
    })
  }

  const judge = (message: ControlMessage, from: string, relay: string): 'accept' | 'ignore' => {
    if (!admission.admit(message, from, relay, Date.now()).admit) return 'ignore'
    if (message.type !== 'round-start' && message.type !== 'round-proposal' && message.type !== 'round-done') return 'accept'
    return provenLeaders.get(from) === message.term ? 'accept' : 'ignore'
  }

  const deliver = (message: ControlMessage): void => {
    if (message.type === 'heartbeat') {
      if (message.leader === message.peer && message.termCert !== null) considerLeader(message, message.termCert)
      const isNew = !peers.has(message.peer)
      peers.set(message.peer, { hb: message, seen: Date.now() })
      host.dialAddrs(message.peer, message.addrs)
      view.heartbeat(message, isNew)
    } else if (message.type === 'round-start') {
      ownData = message.task.dataset === OWN_DATA
      view.roundStart(message)
    } else if (message.type === 'round-done') {
      onRoundDone(message)
    }
  }

  const host = await startHost({
    privateKey: await generateKeyPair('Ed25519'),
    host: o.host as string,
    port: o.port as number,
    bootstrap: o.bootstrap as string[],
    mdns: o.mdns as boolean,
    swarmKey: o['swarm-key'] === '' ? undefined : readSwarmKey(o['swarm-key'] as string)
  }, { judge, deliver, rejected: () => {}, subscribed: () => {} })
  proofs = new Proofs({ net: host, policy: { self: host.peerId, allowed }, transferTimeoutMs: 30_000, signal: lifetime.signal, standing })
  view.started(host.peerId)
  const stop = async (): Promise<void> => {
    view.stop()
    lifetime.abort()
    await supervisor.drain()
    await host.stop()
  }
  process.once('SIGINT', () => { stop().then(() => process.exit(0)).catch(() => process.exit(1)) })
  process.once('SIGTERM', () => { stop().then(() => process.exit(0)).catch(() => process.exit(1)) })
  await done
  await stop()
  return 0
}
