// Raw gossipsub RPCs, for tests and attacks that write gossip on a stream of their own (a liar
// that copies a signature, a replayer that sends recorded messages again).

/** The gossipsub protocol the hosts speak. */
export const GOSSIPSUB = '/meshsub/1.2.0'

/** Length-prefixed (unsigned varint), as gossipsub frames its RPCs. */
export function framed (bytes: Uint8Array): Uint8Array {
  const prefix: number[] = []
  for (let n = bytes.length; ; n >>>= 7) {
    if (n < 0x80) { prefix.push(n); break }
    prefix.push((n & 0x7f) | 0x80)
  }
  const out = new Uint8Array(prefix.length + bytes.length)
  out.set(prefix)
  out.set(bytes, prefix.length)
  return out
}
