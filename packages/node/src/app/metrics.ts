// GET /metrics: the peer in Prometheus's text format. One registry per peer. libp2p's own metrics
// (bytes per protocol and direction, connections, process) come from @libp2p/prometheus-metrics;
// dml's are read from the status snapshot when scraped, so the engine keeps no second set of books.
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import type { Metrics } from '@libp2p/interface'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { BLOB_PROTOCOL } from '@dml/protocol'
import type { NodeStatus } from '../engine/node-status.ts'

/** libp2p's byte counter: labelled "<protocol> sent" / "<protocol> received", and "global ..." for whole connections. */
const TRANSFER_METRIC = 'libp2p_data_transfer_bytes_total'

export interface Traffic {
  /** gossipsub: control messages, with the mesh's forwarding and gossip */
  control: { sent: number, received: number }
  /** models, updates and certificates over /dml/blob */
  blobs: { sent: number, received: number }
  /** everything on the connections, with encryption and multiplexing */
  total: { sent: number, received: number }
  /** on the circuit relay's streams: on a relay, what it relayed; on a peer behind NAT, what it sent and received through relays */
  relayed: { sent: number, received: number }
}

/** The circuit relay v2 protocols: a relayed connection runs inside a hop stream (to the relay) and a stop stream (from it). */
const RELAY_PROTOCOLS = ['/libp2p/circuit/relay/0.2.0/hop', '/libp2p/circuit/relay/0.2.0/stop']

const PHASES = ['train', 'transfer', 'aggregate', 'eval', 'idle'] as const

export class NodeMetrics {
  readonly registry = new Registry()
  private status: () => NodeStatus = () => { throw new Error('metrics read before the node started') }
  private observedRound = 0

  constructor () {
    const { registry } = this
    const read = (): NodeStatus => this.status()
    const gauge = (name: string, help: string, value: (s: NodeStatus) => number | null): void => {
      new Gauge({ name, help, registers: [registry], collect () { const v = value(read()); if (v !== null) this.set(v) } })
    }
    gauge('dml_round', 'finished rounds this peer holds the model of', s => s.round)
    gauge('dml_term', 'the election term this peer is in', s => s.term)
    gauge('dml_is_leader', '1 while this peer coordinates the rounds', s => s.isLeader ? 1 : 0)
    gauge('dml_accuracy', 'test accuracy of the last finished round (median of its signers)', s => s.accuracy)
    gauge('dml_loss', 'test loss of the last finished round', s => s.loss)
    gauge('dml_samples_per_second', 'this peer\'s local training speed in its last round', s => s.nodes.find(n => n.peerId === s.peerId)?.samplesPerSec ?? 0)
    new Gauge({ name: 'dml_peers', help: 'live peers, by device', labelNames: ['device'], registers: [registry], collect () { const s = read(); this.set({ device: 'cpu' }, s.cpuNodes); this.set({ device: 'gpu' }, s.gpuNodes) } })
    const counter = (name: string, help: string, values: (s: NodeStatus) => Record<string, number>, label: string): void => {
      new Counter({ name, help, labelNames: [label], registers: [registry], collect () { this.reset(); for (const [key, v] of Object.entries(values(read()))) this.inc({ [label]: key }, v) } })
    }
    counter('dml_rejected_messages_total', 'control messages refused, by reason', s => s.rejectedMessages, 'reason')
    counter('dml_rejected_updates_total', 'updates left out of a round (this peer leading), by reason', s => s.rejectedUpdates, 'reason')
    counter('dml_offences_total', 'misbehaviour seen, by kind', s => s.misbehaviour.offences, 'reason')
    counter('dml_recovery_events_total', 'elections won, leader changes, retried and failed rounds, and the like', s => s.recovery, 'event')
    // each finished round is observed once, at the first scrape that sees it: in the collect of the
    // histogram registered first, so that both are written after it
    const metrics = this
    let phases: Histogram
    new Histogram({
      name: 'dml_round_seconds',
      help: 'duration of each finished round',
      buckets: [1, 2.5, 5, 10, 25, 60, 120, 300, 600],
      registers: [registry],
      collect () {
        for (const record of read().history) {
          if ((record.round as number) <= metrics.observedRound) continue
          metrics.observedRound = record.round as number
          this.observe((record.durationMs as number) / 1000)
          for (const phase of PHASES) phases.observe({ phase }, (record[`${phase}Ms`] as number) / 1000)
        }
      }
    })
    phases = new Histogram({ name: 'dml_round_phase_seconds', help: 'where each finished round\'s time went, on its leader\'s timeline', labelNames: ['phase'], buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300], registers: [registry] })
  }

  /** libp2p's part: give it to createLibp2p as `metrics`. */
  libp2p (): (components: any) => Metrics {
    return prometheusMetrics({ registry: this.registry })
  }

  /** Starts reading dml's values from `status`. */
  follow (status: () => NodeStatus): void {
    this.status = status
  }

  async text (): Promise<string> {
    return await this.registry.metrics()
  }

  get contentType (): string {
    return this.registry.contentType
  }

  /** Bytes on the wire so far, by kind. */
  async traffic (): Promise<Traffic> {
    const counter = this.registry.getSingleMetric(TRANSFER_METRIC)
    const traffic: Traffic = { control: { sent: 0, received: 0 }, blobs: { sent: 0, received: 0 }, total: { sent: 0, received: 0 }, relayed: { sent: 0, received: 0 } }
    if (counter === undefined) return traffic
    for (const { labels, value } of (await counter.get()).values) {
      const [protocol, direction] = String(labels.protocol).split(' ') as [string, 'sent' | 'received']
      const kind = protocol === 'global' ? 'total' : protocol.startsWith('/meshsub/') ? 'control' : protocol === BLOB_PROTOCOL ? 'blobs' : RELAY_PROTOCOLS.includes(protocol) ? 'relayed' : undefined
      if (kind !== undefined && (direction === 'sent' || direction === 'received')) traffic[kind][direction] += value
    }
    return traffic
  }
}
