// startPeer, the composition root, called as a program that runs a peer of its own would: dml-node's
// options, a real trainer on MNIST, a real libp2p host, the status API and a data directory on
// disk; then stopped, and started again from what it left there.
import { expect } from 'chai'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { RecentEvents, type Logger } from '@dml/node'
import { ConfigError, NODE_OPTIONS, parseOptions, peerOptions, startPeer } from '@dml/node/cli'

describe('startPeer', function () {
  this.timeout(120_000)
  const dir = mkdtempSync(join(tmpdir(), 'dml-start-peer-'))
  after(() => { rmSync(dir, { recursive: true, force: true }) })
  const warnings: string[] = []
  const log: Logger = { info: () => {}, warn: (event) => { warnings.push(event) } }
  const options = (...extra: string[]): ReturnType<typeof peerOptions> =>
    peerOptions(parseOptions(['--data-dir', join(dir, 'peer'), '--port', '0', '--http-port', '0', '--host', '127.0.0.1', '--min-peers', '1', '--rounds', '1', '--local-epochs', '0.05', '--eval-samples', '500', '--threads', '1', ...extra], NODE_OPTIONS))

  it('starts a peer that trains its round, serves its status, and stops; started again, it resumes from its checkpoint', async () => {
    const peer = await startPeer(options(), log, new RecentEvents())
    try {
      await peer.node.whenFinished()
      expect(peer.node.status()).to.include({ round: 1, state: 'finished', isLeader: true })
      const status = await (await fetch(`http://127.0.0.1:${peer.httpPort}/api/status`)).json() as { round: number, listenAddrs: string[] }
      expect(status.round).to.equal(1)
      expect(status.listenAddrs.length).to.be.above(0)
    } finally {
      await peer.stop()
    }
    await peer.stop() // once is enough, however often it is called

    // its data directory is free again, and holds the round
    const again = await startPeer(options(), log, new RecentEvents())
    try {
      expect(again.node.status()).to.include({ round: 1, state: 'finished' })
    } finally {
      await again.stop()
    }
    expect(warnings).to.not.include('task-failed')
  })

  it('a mistake in its options is one ConfigError naming the option, and what was started is stopped', async () => {
    let caught: unknown
    try {
      await startPeer(options('--model', 'no-such-model'), log, new RecentEvents())
    } catch (err) {
      caught = err
    }
    expect(caught).to.be.instanceOf(ConfigError)
    expect((caught as Error).message).to.match(/--model no-such-model/)
    // nothing of it is left running: the data directory is free for the next start
    const peer = await startPeer(options(), log, new RecentEvents())
    await peer.stop()
  })

  it('a port in use is a ConfigError naming its option: --port, or --ws-port for WebSockets', async () => {
    const server = createServer()
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    const taken = String((server.address() as AddressInfo).port)
    try {
      for (const [flag, name] of [['--port', /pick another --port/], ['--ws-port', /WebSockets on 127\.0\.0\.1:\d+: the port is in use; pick another --ws-port/]] as const) {
        let caught: unknown
        try {
          await startPeer(options(flag, taken), log, new RecentEvents())
        } catch (err) {
          caught = err
        }
        expect(caught, flag).to.be.instanceOf(ConfigError)
        expect((caught as Error).message).to.match(name)
      }
    } finally {
      server.close()
    }
  })
})
