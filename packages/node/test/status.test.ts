// The status server's event stream: what a dashboard gets, and what a client that never reads costs.
import { expect } from 'chai'
import { connect } from 'node:net'
import type { NodeStatus } from '@dml/node'
import { DEFAULT_STATUS_LIMITS, startStatusServer } from '@dml/node/cli'

/** A status that changes at every call and is about `size` bytes long. */
function changing (size: number): () => NodeStatus & Record<string, unknown> {
  let n = 0
  return () => ({ round: n++, padding: 'x'.repeat(size) }) as unknown as NodeStatus & Record<string, unknown>
}

describe('status server', () => {
  it('the event stream sends the status as it changes', async () => {
    const server = await startStatusServer(changing(10), '127.0.0.1', 0, { ...DEFAULT_STATUS_LIMITS, cacheMs: 0, pushMs: 20 })
    try {
      const { port } = server.address() as { port: number }
      const res = await fetch(`http://127.0.0.1:${port}/api/events`)
      expect(res.headers.get('content-type')).to.equal('text/event-stream')
      const reader = res.body!.getReader()
      let text = ''
      while ((text.match(/event: status/g) ?? []).length < 3) text += new TextDecoder().decode((await reader.read()).value)
      const rounds = [...text.matchAll(/data: (.*)\n/g)].map(m => (JSON.parse(m[1]) as { round: number }).round)
      expect(rounds.length).to.be.at.least(3)
      expect(rounds).to.deep.equal([...rounds].sort((a, b) => a - b)) // each one newer
      await reader.cancel()
    } finally {
      server.close()
    }
  })

  it('a status that cannot be made is a 500 with the reason, and is told to the server\'s owner, also from the event stream', async () => {
    const told: string[] = []
    let toldThrice = (): void => {}
    const thrice = new Promise<void>((resolve, reject) => {
      toldThrice = resolve
      setTimeout(() => { reject(new Error(`failures told ${told.length} times in 10 s, not 3`)) }, 10_000).unref()
    })
    const failing = (): never => { throw new Error('the snapshot broke') }
    const onError = (err: Error): void => { if (told.push(err.message) === 3) toldThrice() }
    const server = await startStatusServer(failing, '127.0.0.1', 0, { ...DEFAULT_STATUS_LIMITS, cacheMs: 0, pushMs: 20 }, { onError })
    try {
      const { port } = server.address() as { port: number }
      const res = await fetch(`http://127.0.0.1:${port}/api/status`)
      expect(res.status).to.equal(500)
      expect(await res.json()).to.deep.equal({ error: 'the snapshot broke' })
      expect(told).to.deep.equal(['the snapshot broke'])
      // a dashboard's stream: its pushes fail too, each one told
      const events = await fetch(`http://127.0.0.1:${port}/api/events`)
      const reader = events.body!.getReader()
      await reader.read() // the stream's first line: the server has taken it in
      await thrice
      await reader.cancel()
    } finally {
      server.close()
    }
  })

  it('a client that never reads its event stream is cut off once 1 MiB waits for it', async function () {
    this.timeout(30_000)
    const server = await startStatusServer(changing(256 * 1024), '127.0.0.1', 0, { ...DEFAULT_STATUS_LIMITS, cacheMs: 0, pushMs: 5 })
    try {
      const { port } = server.address() as { port: number }
      // the server's end of the connection closing is the event (the client, not reading, would never see it)
      const closed = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error('the server kept the stream of a client that never reads')) }, 25_000)
        server.once('connection', (conn) => { conn.once('close', () => { clearTimeout(timer); resolve() }) })
      })
      const socket = connect(port, '127.0.0.1')
      socket.pause() // never reads
      socket.on('error', () => {})
      socket.write('GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n')
      // the kernel's buffers fill first, then the server's; then the server hangs up
      await closed
      socket.destroy()
    } finally {
      server.close()
    }
  })
})
