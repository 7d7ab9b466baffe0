// The status server's event stream: what a dashboard gets, and what a client that never reads costs.
import { expect } from 'chai'
import { connect } from 'node:net'
import { DEFAULT_STATUS_LIMITS, startStatusServer, type NodeStatus } from '@dml/node'

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
