// What dml-monitor shows: lines (or JSON lines) as things happen, or, on a terminal, one screen
// redrawn in place: the leader, the round's progress with ETAs, a sparkline of accuracy, the peers
// and recent events. Both views are fed the same checked facts by monitor.ts.
import type { Heartbeat, RoundDone, RoundEvaluation, RoundStart } from '@dml/protocol'
import { roundProgress } from '../round/progress.ts'
import { count } from '../log.ts'

/** A finished round the monitor checked: from a round-done it saw, or (`before`) the newest one when it joined. */
export interface ShownRound {
  round: number
  term: number
  leader: string
  modelHash: string
  finished: boolean
  signers: number
  evaluation: RoundEvaluation
  /** the leader's account (absent for a round finished before the monitor joined) */
  metrics?: RoundDone['metrics']
  before: boolean
  /** the peers train on examples of their own (--data), each checker evaluating on its own held-out ones: the federated accuracy says something the central one does not */
  ownData: boolean
}

export interface MonitorView {
  started: (peerId: string) => void
  heartbeat: (hb: Heartbeat, isNew: boolean) => void
  roundStart: (start: RoundStart) => void
  round: (r: ShownRound) => void
  warn: (text: string) => void
  stop: () => void
}

const pct = (x: number): string => `${(100 * x).toFixed(2)}%`

/** One line per event (the default off a terminal), or one JSON object per line (warnings too, as `warning` events). */
export function linesView (json: boolean, write: (line: string) => void = console.log, warn: (line: string) => void = console.error): MonitorView {
  return {
    started: (peerId) => { write(json ? JSON.stringify({ event: 'monitor-started', peerId }) : `monitor ${peerId} listening; waiting for rounds (Ctrl-C to stop)`) },
    heartbeat: (hb, isNew) => {
      if (isNew && !json) write(`peer ${hb.peer.slice(-6)} seen (${hb.device}, ${hb.backend}, round ${hb.round}${hb.leader === hb.peer ? ', leader' : ''})`)
    },
    roundStart: (start) => {
      write(json ? JSON.stringify({ event: 'round-start', round: start.round, term: start.term, peers: start.assignments.length }) : `round ${String(start.round).padStart(3)}  started with ${count(start.assignments.length, 'peer')}`)
    },
    round: (r) => {
      const m = { ...r.metrics, ...r.evaluation }
      if (json) {
        write(JSON.stringify({ event: 'round', round: r.round, term: r.term, leader: r.leader, modelHash: r.modelHash, finished: r.finished, certified: true, signers: r.signers, before: r.before, ...m }))
        return
      }
      const head = `round ${String(r.round).padStart(3)}  accuracy ${(100 * m.accuracy).toFixed(2).padStart(6)}%  loss ${m.loss.toFixed(4)}  ${r.ownData ? `federated ${pct(m.federatedAccuracy)} on ${m.evaluatedSamples}  ` : ''}`
      const tail = `leader ${r.leader.slice(-6)} term ${r.term}  signed by ${r.signers}`
      const d = r.metrics
      write(d === undefined
        ? `${head}(finished before this monitor joined)  ${tail}`
        : `${head}peers ${d.participants.length}/${d.activeNodes} (gpu ${d.gpuNodes}, cpu ${d.cpuNodes})  ${(d.durationMs / 1000).toFixed(1)} s  ` +
          `[train ${(d.trainMs / 1000).toFixed(1)} s, transfer ${(d.transferMs / 1000).toFixed(1)} s, eval ${(d.evalMs / 1000).toFixed(1)} s]  ${tail}`)
      if (r.finished) write(`training finished at round ${r.round} with accuracy ${pct(m.accuracy)}`)
    },
    warn: (text) => { if (json) write(JSON.stringify({ event: 'warning', msg: text })); else warn(text) },
    stop: () => {}
  }
}

const SPARKS = '▁▂▃▄▅▆▇█'

/** Accuracies as a sparkline, scaled between their lowest and highest. */
export function sparkline (values: number[]): string {
  if (values.length === 0) return ''
  const lo = Math.min(...values)
  const hi = Math.max(...values)
  return values.map(v => SPARKS[hi === lo ? SPARKS.length - 1 : Math.round((v - lo) / (hi - lo) * (SPARKS.length - 1))]).join('')
}

function bar (fraction: number, width: number): string {
  const full = Math.round(Math.min(1, Math.max(0, fraction)) * width)
  return '█'.repeat(full) + '░'.repeat(width - full)
}

function duration (seconds: number | null): string {
  if (seconds === null) return '?'
  if (seconds < 90) return `${Math.round(seconds)} s`
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`
  return `${(seconds / 3600).toFixed(1)} h`
}

/** The terminal view: the whole state, redrawn in place every `everyMs`. */
export function terminalView (out: NodeJS.WriteStream = process.stdout, everyMs = 500, now: () => number = Date.now): MonitorView {
  let self = ''
  const peers = new Map<string, { hb: Heartbeat, seen: number }>()
  const rounds: ShownRound[] = []
  const events: string[] = []
  let totalRounds = 0
  const event = (text: string): void => {
    events.push(`${new Date(now()).toTimeString().slice(0, 8)}  ${text}`)
    if (events.length > 8) events.shift()
  }
  const draw = (): void => {
    const t = now()
    const live = [...peers.values()].filter(p => t - p.seen < 10_000)
    const leaderHb = live.find(p => p.hb.leader === p.hb.peer)?.hb
    const done = rounds.at(-1)
    const lines: string[] = []
    lines.push(`dml monitor ${self.slice(-6)}   leader ${leaderHb === undefined ? 'none (electing)' : `${leaderHb.peer.slice(-6)} (term ${leaderHb.term})`}   round ${done?.round ?? 0}${totalRounds > 0 ? ` of ${totalRounds}` : ''}   ${count(live.length, 'peer')}`)
    const current = (done?.round ?? 0) + 1
    const durations = rounds.flatMap(r => r.metrics === undefined ? [] : [r.metrics.durationMs])
    const progress = roundProgress(current, live.map(p => ({ peer: p.hb.peer, speed: p.hb.speed, work: p.hb.work })), Math.max(0, totalRounds - current), durations)
    if (done?.finished === true) lines.push(`training finished at round ${done.round}`)
    else if (progress === null) lines.push(`round ${current}  waiting to start`)
    else lines.push(`round ${current}  ${bar(progress.fraction, 30)} ${String(Math.round(100 * progress.fraction)).padStart(3)}%  ETA ${duration(progress.etaSeconds)}, all rounds ${duration(progress.trainingEtaSeconds)}`)
    lines.push(`accuracy  ${sparkline(rounds.map(r => r.evaluation.accuracy))}  ${done === undefined ? '—' : `${pct(done.evaluation.accuracy)} (round ${done.round}, signed by ${done.signers})`}`)
    lines.push('')
    lines.push('peer      device   backend     samples/s  work              last seen')
    for (const { hb, seen } of live.sort((a, b) => (a.hb.peer < b.hb.peer ? -1 : 1))) {
      const work = hb.work === null ? 'idle' : `round ${hb.work.round}: ${hb.work.total === 0 ? 0 : Math.round(100 * hb.work.done / hb.work.total)}%`
      lines.push(`${hb.peer.slice(-6)}${hb.leader === hb.peer ? ' ★' : '  '}  ${hb.device.padEnd(7)}  ${hb.backend.slice(0, 10).padEnd(10)}  ${String(Math.round(hb.speed)).padStart(9)}  ${work.padEnd(16)}  ${((t - seen) / 1000).toFixed(1)} s`)
    }
    lines.push('')
    lines.push('events')
    lines.push(...events)
    // home, then each line cleared to its end, then the rest of the screen cleared
    out.write('\x1b[H' + lines.map(l => `${l}\x1b[K`).join('\n') + '\n\x1b[J')
  }
  out.write('\x1b[?25l\x1b[2J') // hide the cursor, clear the screen
  const timer = setInterval(draw, everyMs)
  timer.unref()
  return {
    started: (peerId) => { self = peerId; event('listening; waiting for rounds (Ctrl-C to stop)'); draw() },
    heartbeat: (hb, isNew) => {
      peers.set(hb.peer, { hb, seen: now() })
      if (isNew) event(`peer ${hb.peer.slice(-6)} seen (${hb.device}, ${hb.backend})`)
    },
    roundStart: (start) => {
      totalRounds = start.task.totalRounds
      event(`round ${start.round} started with ${count(start.assignments.length, 'peer')}`)
    },
    round: (r) => {
      rounds.push(r)
      rounds.sort((a, b) => a.round - b.round)
      event(`round ${r.round} done: accuracy ${pct(r.evaluation.accuracy)}, signed by ${r.signers}${r.before ? ' (before this monitor joined)' : ''}`)
      if (r.finished) event(`training finished at round ${r.round}`)
      draw()
    },
    warn: (text) => { event(`! ${text}`) },
    stop: () => {
      clearInterval(timer)
      draw()
      out.write('\x1b[?25h') // the cursor back
    }
  }
}
