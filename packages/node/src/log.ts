// Human-readable lines by default; with --json-logs one JSON object per line, which tests and
// tools read as events ({ts, event, ...fields}).
export interface Logger {
  info: (event: string, fields: Record<string, unknown>, text: string) => void
  warn: (event: string, fields: Record<string, unknown>, text: string) => void
}

/** A peer id as log lines name it: its last six characters. */
/** `n` and its noun, singular for one: "1 peer", "3 peers". */
export function count (n: number, noun: string): string {
  return `${n} ${n === 1 ? noun : `${noun}s`}`
}

export function short (peer: string): string {
  return peer.slice(-6)
}

export const LOG_LEVELS = ['debug', 'info', 'warn'] as const
export type LogLevel = typeof LOG_LEVELS[number]

/**
 * A logger writing to `out`; at level `warn` it says warnings only (debug differs from info in
 * TensorFlow's native lines, not here). As text, for a person, warnings go to `warnOut` (stderr);
 * as JSON lines, for a program, everything goes to `out`, in order.
 */
export function createLogger (json: boolean, tag: string, out: NodeJS.WritableStream = process.stdout, level: LogLevel = 'info', warnOut: NodeJS.WritableStream = json ? out : process.stderr): Logger {
  const write = (level_: string, event: string, fields: Record<string, unknown>, text: string): void => {
    if (level === 'warn' && level_ !== 'warn') return
    writeLine(level_, event, fields, text)
  }
  const writeLine = (level: string, event: string, fields: Record<string, unknown>, text: string): void => {
    if (json) {
      out.write(JSON.stringify({ ts: Date.now(), level, event, ...fields, msg: text }) + '\n')
    } else {
      const time = new Date().toISOString().slice(11, 19)
      ;(level === 'warn' ? warnOut : out).write(`${time} ${tag}${level === 'warn' ? ' WARN' : ''} ${text}\n`)
    }
  }
  return {
    info: (event, fields, text) => { write('info', event, fields, text) },
    warn: (event, fields, text) => { write('warn', event, fields, text) }
  }
}

export interface RecentEvent {
  ts: number
  level: 'info' | 'warn'
  event: string
  msg: string
}

/** Events a person watching a run wants to see: elections, peers coming and going, rounds; and every warning. */
const NOTABLE = new Set(['election-started', 'leader-elected', 'leader-followed', 're-election', 'peer-joined', 'peer-left', 'peer-benched', 'round-start', 'round-done', 'model-adopted', 'training-finished', 'waiting-for-peers'])

/** The latest notable events, for the status API and the dashboard. */
export class RecentEvents {
  private readonly events: RecentEvent[] = []
  private readonly size: number

  constructor (size = 50) { this.size = size }

  add (event: RecentEvent): void {
    if (event.level !== 'warn' && !NOTABLE.has(event.event)) return
    this.events.push(event)
    if (this.events.length > this.size) this.events.shift()
  }

  list (): RecentEvent[] {
    return [...this.events]
  }
}

/** `log`, also keeping its notable events in `recent`. */
export function recordingTo (log: Logger, recent: RecentEvents): Logger {
  return {
    info: (event, fields, text) => { recent.add({ ts: Date.now(), level: 'info', event, msg: text }); log.info(event, fields, text) },
    warn: (event, fields, text) => { recent.add({ ts: Date.now(), level: 'warn', event, msg: text }); log.warn(event, fields, text) }
  }
}
