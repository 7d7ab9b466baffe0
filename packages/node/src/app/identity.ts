// The peer's private key lives in <data-dir>/identity.key (mode 0600) so a restarted node keeps
// its peer id, and with it its place in the network.
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { mkdir, readFile, writeFile, rename, chmod } from 'node:fs/promises'
import { join } from 'node:path'

export class IdentityError extends Error {
  override name = 'IdentityError'
  /** the user's to fix: a command says it in one line (see errors.ts in @dml/node) */
  readonly expected = true
}

export async function loadOrCreateIdentity (dataDir: string): Promise<{ key: PrivateKey, created: boolean }> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const path = join(dataDir, 'identity.key')
  let bytes: Buffer | undefined
  try {
    bytes = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new IdentityError(`cannot read the identity key ${path} in --data-dir: ${(err as Error).message}`)
  }
  if (bytes !== undefined) {
    try {
      return { key: privateKeyFromProtobuf(bytes), created: false }
    } catch (err) {
      // never silently replace a damaged identity: the peer id is how the network knows us
      throw new IdentityError(`${path} is not a valid libp2p private key (${(err as Error).message}); move it away to start with a new peer id`)
    }
  }
  const key = await generateKeyPair('Ed25519')
  const tmp = `${path}.tmp`
  try {
    await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600 })
    await chmod(tmp, 0o600)
    await rename(tmp, path)
  } catch (err) {
    throw new IdentityError(`cannot write the identity key ${path} in --data-dir: ${(err as Error).message}`)
  }
  return { key, created: true }
}
