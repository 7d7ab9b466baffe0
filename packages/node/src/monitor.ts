// dml-monitor: a passive libp2p peer. It subscribes to the control topic (sending no heartbeats,
// so it is never counted as a node or assigned work) and prints each round as it finishes. It
// believes a round only with its certificate, as a peer would: a forged "accuracy 100%" is not
// shown, and a round this monitor cannot prove (a lone peer's, or a liar's signed by itself) is
// only a warning line: it neither counts as a round nor ends the monitor.
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { ControlMessage, Heartbeat, RoundDone } from '@dml/protocol'
import { CertificateError, coversView, isForgery } from './certificates.ts'
import { Supervisor } from './clock.ts'
import { helpText, MONITOR_OPTIONS, parseOptions, readAllowList, readSwarmKey } from './config.ts'
import { startHost } from './host.ts'
import { Proofs, type ProvenRound } from './proofs.ts'
import { ProvenPeers } from './proven.ts'

const SUMMARY = 'Follows dml training live: joins the network as a passive peer and prints every finished round.'

export async function runMonitor (argv: string[]): Promise<number> {
  const o = parseOptions(argv, MONITOR_OPTIONS)
  if (o.help === true) {
    console.log(await helpText('dml-monitor', SUMMARY, MONITOR_OPTIONS))
    return 0
  }
  const json = o.json === true
  const maxRounds = o.rounds as number
  const peers = new Map<string, { hb: Heartbeat, seen: number }>()
  /** rounds shown, and certificates already looked at (a forged one must not hide the real round) */
  const shownRounds = new Set<number>()
  const checked = new Set<string>()
  let resolveDone: (() => void) | undefined
  const done = new Promise<void>(resolve => { resolveDone = resolve })
  let count = 0
  const lifetime = new AbortController()
  const supervisor = new Supervisor((task, err) => { console.error(`${task} failed: ${(err as Error)?.message ?? String(err)}`) })
  const allowed = o['allow-peers'] === '' ? undefined : readAllowList(o['allow-peers'] as string)
  let proofs: Proofs | undefined
  /** who counts in a leader's quorum, as for a peer (proven.ts): learnt from the certified rounds */
  const provenPeers = new ProvenPeers()

  const show = (rd: RoundDone, proven: ProvenRound): void => {
    shownRounds.add(rd.round)
    count++
    const m = { ...rd.metrics, ...proven.evaluation }
    if (json) {
      console.log(JSON.stringify({ event: 'round', round: rd.round, term: rd.term, leader: rd.leader, modelHash: rd.modelHash, finished: rd.finished, certified: true, signers: proven.signers.length, ...m }))
    } else {
      console.log(`round ${String(rd.round).padStart(3)}  accuracy ${(100 * m.accuracy).toFixed(2).padStart(6)}%  loss ${m.loss.toFixed(4)}  federated ${(100 * m.federatedAccuracy).toFixed(2)}% on ${m.evaluatedSamples}  ` +
        `peers ${m.participants.length}/${m.activeNodes} (gpu ${m.gpuNodes}, cpu ${m.cpuNodes})  ${(m.durationMs / 1000).toFixed(1)} s  ` +
        `[train ${(m.trainMs / 1000).toFixed(1)} s, transfer ${(m.transferMs / 1000).toFixed(1)} s, eval ${(m.evalMs / 1000).toFixed(1)} s]  leader ${rd.leader.slice(-6)} term ${rd.term}  signed by ${proven.signers.length}`)
      if (rd.finished) console.log(`training finished at round ${rd.round} with accuracy ${(100 * m.accuracy).toFixed(2)}%`)
    }
    if (rd.finished || (maxRounds > 0 && count >= maxRounds)) resolveDone?.()
  }

  const onRoundDone = (rd: RoundDone): void => {
    if (shownRounds.has(rd.round) || checked.has(rd.certHash) || proofs === undefined) return
    checked.add(rd.certHash)
    const check = proofs
    supervisor.run(`check round ${rd.round}`, async () => {
      try {
        const proven = await check.round(rd.certHash, [rd.leader, ...peers.keys()])
        if (proven.result.round !== rd.round || proven.result.modelHash !== rd.modelHash || proven.result.leader !== rd.leader) throw new CertificateError('forged', 'the certificate is of another round')
        provenPeers.sawRound(proven.result)
        if (!shownRounds.has(rd.round)) show(rd, proven)
      } catch (err) {
        // forged, or genuine but proving nothing to this monitor (one peer alone), or out of reach
        checked.delete(rd.certHash) // a certificate that could not be fetched may be fetched later
        if (isForgery(err)) checked.add(rd.certHash)
        console.error(`ignored the round-done of ${rd.leader.slice(-6)} for round ${rd.round}: ${(err as Error).message}`)
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
        if (!provenPeers.any && hb.roundCert !== null) {
          const round = await check.round(hb.roundCert, [hb.peer, ...peers.keys()])
          provenPeers.sawRound(round.result)
        }
        const view = provenPeers.counted([...peers.values()].filter(p => Date.now() - p.seen < 10_000).map(p => p.hb.peer))
        if (cert.leader !== hb.peer || cert.term !== hb.term || !coversView(cert, { self: host.peerId, allowed }, view)) throw new CertificateError('unproven', 'too few of the peers in view voted for it')
        provenLeaders.set(hb.peer, hb.term)
      } catch (err) {
        if (!saidUnproven.has(hb.peer)) console.error(`not following ${hb.peer.slice(-6)} as leader of term ${hb.term}: ${(err as Error).message}`)
        saidUnproven.add(hb.peer)
      } finally {
        checkingLeaders.delete(termCert)
      }
    })
  }

  const judge = (message: ControlMessage, from: string): 'accept' | 'ignore' => {
    if (message.type !== 'round-start' && message.type !== 'round-proposal' && message.type !== 'round-done') return 'accept'
    return provenLeaders.get(from) === message.term ? 'accept' : 'ignore'
  }

  const deliver = (message: ControlMessage): void => {
    if (message.type === 'heartbeat') {
      if (message.leader === message.peer && message.termCert !== null) considerLeader(message, message.termCert)
      const isNew = !peers.has(message.peer)
      peers.set(message.peer, { hb: message, seen: Date.now() })
      host.dialAddrs(message.peer, message.addrs)
      if (isNew && !json) console.log(`peer ${message.peer.slice(-6)} seen (${message.device}, ${message.backend}, round ${message.round}${message.leader === message.peer ? ', leader' : ''})`)
    } else if (message.type === 'round-start') {
      if (json) console.log(JSON.stringify({ event: 'round-start', round: message.round, term: message.term, peers: message.assignments.length }))
      else console.log(`round ${String(message.round).padStart(3)}  started with ${message.assignments.length} peers`)
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
  proofs = new Proofs({ net: host, policy: { self: host.peerId, allowed }, transferTimeoutMs: 30_000, signal: lifetime.signal })
  if (json) console.log(JSON.stringify({ event: 'monitor-started', peerId: host.peerId }))
  else console.log(`monitor ${host.peerId} listening; waiting for rounds (Ctrl-C to stop)`)
  const stop = async (): Promise<void> => {
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
