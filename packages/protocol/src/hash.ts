import { sha256Hex } from '#sha256'

/** Content address of a blob: lowercase hex SHA-256. */
export function contentHash (bytes: Uint8Array): string {
  return sha256Hex(bytes)
}

export function isContentHash (value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-f]{64}$/.test(value)
}
