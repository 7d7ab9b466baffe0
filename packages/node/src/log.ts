// Human-readable lines by default; with --json-logs one JSON object per line, which tests and
// tools read as events ({ts, event, ...fields}).
export interface Logger {
  info: (event: string, fields: Record<string, unknown>, text: string) => void
  warn: (event: string, fields: Record<string, unknown>, text: string) => void
}

export function createLogger (json: boolean, tag: string, out: NodeJS.WritableStream = process.stdout): Logger {
  const write = (level: string, event: string, fields: Record<string, unknown>, text: string): void => {
    if (json) {
      out.write(JSON.stringify({ ts: Date.now(), level, event, ...fields, msg: text }) + '\n')
    } else {
      const time = new Date().toISOString().slice(11, 19)
      out.write(`${time} ${tag}${level === 'warn' ? ' WARN' : ''} ${text}\n`)
    }
  }
  return {
    info: (event, fields, text) => { write('info', event, fields, text) },
    warn: (event, fields, text) => { write('warn', event, fields, text) }
  }
}
