// A member that is honest until told otherwise, for the attack tests: the project's own dml-node,
// started as `dml-node` starts (same options, same JSON events), that on a line on stdin turns.
// Usage: node test/turncoat.ts <dml-node options>; then {"attack": name} lines on stdin.
//   forge-round: once it leads, it stops sending its honest round messages and certifies the next
//                round itself, an all-zero model at "100%", signed by itself and a key it makes up
//                (see packages/node/test/support/forge.ts), commits it and announces it.
// Its own events are JSON lines with event "turncoat-*", beside the node's.
import { createInterface } from 'node:readline'
import type { Outgoing } from '@dml/protocol'
import { DmlNode, type Network } from '@dml/node'
import { main, runNode } from '@dml/node/cli'
import { forgeRound, madeUpSigner } from '../packages/node/test/support/forge.ts'

const say = (event: string, fields: Record<string, unknown> = {}): void => { console.log(JSON.stringify({ ts: Date.now(), event: `turncoat-${event}`, ...fields })) }

let node: DmlNode | undefined
const start = DmlNode.prototype.start
DmlNode.prototype.start = function (this: DmlNode, ...args: Parameters<DmlNode['start']>) {
  node = this
  start.apply(this, args)
}

async function turn (attack: string): Promise<void> {
  if (node === undefined) throw new Error('the node has not started')
  if (attack !== 'forge-round') throw new Error(`unknown attack ${attack}`)
  const leading = node
  while (!leading.isLeading) await new Promise(resolve => setTimeout(resolve, 100)) // waits for the election it may win
  const net = (leading as unknown as { net: Network }).net
  const publish = net.publish.bind(net)
  // from now on its honest rounds go nowhere: only its heartbeats and votes go out
  net.publish = async (m: Outgoing) => { if (m.type === 'heartbeat' || m.type === 'vote' || m.type === 'vote-request') await publish(m) }
  const forged = await forgeRound(leading, [await madeUpSigner()], publish)
  say('forged', { ...forged, term: leading.status().term })
}

createInterface({ input: process.stdin }).on('line', (line) => {
  let attack: string
  try {
    attack = (JSON.parse(line) as { attack: string }).attack
  } catch {
    say('bad-command', { line })
    return
  }
  say('attack', { attack })
  turn(attack).catch((err: unknown) => { say('failed', { error: (err as Error).message }) })
})

main(runNode)
