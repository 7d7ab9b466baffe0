// Secure aggregation's arithmetic (after Bonawitz et al. 2017, "Practical Secure Aggregation for
// Privacy-Preserving Machine Learning"): the pieces a round's participants, its leader and its
// checkers compute with, each a pure function, so that every checker recomputes the same sum byte
// for byte. Nothing here talks to the network.
//
// - An update is put in the ring Z/2^32 (encodeInRing): its weight, then each value clipped to
//   ±range, times the weight, in fixed point. Sums of up to `totalWeight` of weight are exact.
// - A participant masks it (mask) with a stream of its own seed and one per other participant,
//   from X25519 key agreement (pairSeed): added toward higher peer ids, subtracted toward lower, so
//   that the pairwise streams cancel in the sum of all.
// - Its own seed and its masking key are split in Shamir shares over GF(2^8) (splitSecret), one
//   for each participant, sealed to it (sealShare: ChaCha20-Poly1305 under a key of a second
//   X25519 pair, never shared). Of a participant that sent its masked update, the survivors reveal
//   their shares of its own seed; of one that dropped out, their shares of its masking key, with
//   which its pairwise streams are taken out again (unmaskSum). Secrets are checked against what
//   their owner committed to (the public key, a hash of the seed), and a share that does not fit
//   the others is named (recoverSecret).
import { x25519 } from '@noble/curves/ed25519.js'
import { chacha20, chacha20poly1305 } from '@noble/ciphers/chacha.js'
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'

export class SecureAggregationError extends Error {
  override name = 'SecureAggregationError'
}

const TWO_31 = 2 ** 31
const TEXT = new TextEncoder()

// ---- the ring ---------------------------------------------------------------------------------

/** The fixed-point scale at which the values of `totalWeight` of weight, each within ±range, sum without wrapping in 32 bits. */
export function ringScale (range: number, totalWeight: number): number {
  if (!(range > 0) || !(totalWeight >= 1) || !Number.isFinite(range * totalWeight)) throw new SecureAggregationError(`no ring scale for a range of ${range} and a total weight of ${totalWeight}`)
  const scale = Math.floor((TWO_31 - 1) / (range * totalWeight))
  if (scale < 1) throw new SecureAggregationError(`a range of ${range} over a total weight of ${totalWeight} does not fit in 32 bits`)
  return scale
}

/** `values` (not finite: 0) clipped to ±range, times `weight`, at `scale`: word 0 is the weight, then one word a value. */
export function encodeInRing (values: Float32Array, weight: number, range: number, scale: number): Uint32Array {
  if (!Number.isInteger(weight) || weight < 0 || weight * range * scale >= TWO_31) throw new SecureAggregationError(`a weight of ${weight} does not fit the ring`)
  const out = new Uint32Array(values.length + 1)
  out[0] = weight
  const factor = weight * scale
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    const clipped = Number.isFinite(v) ? Math.max(-range, Math.min(range, v)) : 0
    out[i + 1] = Math.round(clipped * factor) >>> 0
  }
  return out
}

/** A sum of encoded updates as the weighted mean of their values, and their total weight. */
export function decodeSum (sum: Uint32Array, scale: number): { weight: number, mean: Float32Array } {
  const weight = sum[0]
  if (weight === 0) throw new SecureAggregationError('the sum has no weight: no update in it')
  const mean = new Float32Array(sum.length - 1)
  const divisor = weight * scale
  for (let i = 1; i < sum.length; i++) mean[i - 1] = (sum[i] | 0) / divisor
  return { weight, mean }
}

/** acc += sign · v, mod 2^32. */
export function addInto (acc: Uint32Array, v: Uint32Array, sign: 1 | -1 = 1): void {
  if (acc.length !== v.length) throw new SecureAggregationError(`vectors of ${acc.length} and ${v.length} words`)
  if (sign === 1) for (let i = 0; i < acc.length; i++) acc[i] = (acc[i] + v[i]) >>> 0
  else for (let i = 0; i < acc.length; i++) acc[i] = (acc[i] - v[i]) >>> 0
}

/** `words` pseudo-random words from a 32-byte seed: ChaCha20's keystream. */
export function maskStream (seed: Uint8Array, words: number): Uint32Array {
  if (seed.length !== 32) throw new SecureAggregationError(`a seed of ${seed.length} bytes, not 32`)
  const bytes = chacha20(seed, new Uint8Array(12), new Uint8Array(4 * words))
  return new Uint32Array(bytes.buffer, bytes.byteOffset, words)
}

// ---- keys -------------------------------------------------------------------------------------

/** A fresh X25519 key pair (a round's masking key, or its sealing key). */
export function newKeyPair (): { secret: Uint8Array, public: Uint8Array } {
  const secret = x25519.utils.randomSecretKey()
  return { secret, public: x25519.getPublicKey(secret) }
}

export function publicKeyOf (secret: Uint8Array): Uint8Array {
  return x25519.getPublicKey(secret)
}

/** What binds a round's keys and shares to that round: its term, number and start. */
export function roundContext (term: number, round: number, deadline: number): Uint8Array {
  return TEXT.encode(`dml secure aggregation ${term}/${round}/${deadline}`)
}

function agreed (secret: Uint8Array, theirPublic: Uint8Array, context: Uint8Array, purpose: string): Uint8Array {
  let shared: Uint8Array
  try {
    shared = x25519.getSharedSecret(secret, theirPublic)
  } catch (err) {
    throw new SecureAggregationError(`not a key to agree with: ${(err as Error).message}`)
  }
  return hkdf(sha256, shared, context, TEXT.encode(purpose), 32)
}

/** The seed of the mask two participants share: from one's masking key and the other's public one. */
export function pairSeed (secret: Uint8Array, theirPublic: Uint8Array, context: Uint8Array): Uint8Array {
  return agreed(secret, theirPublic, context, 'mask')
}

/** What a participant commits to for its own seed, so that a seed rebuilt from shares can be checked. */
export function seedCommitment (seed: Uint8Array): Uint8Array {
  return sha256(seed)
}

/** `encoded` masked: plus its own seed's stream, plus the pair stream toward each higher peer id, minus toward each lower. */
export function mask (encoded: Uint32Array, self: string, ownSeed: Uint8Array, pairSeeds: ReadonlyMap<string, Uint8Array>): Uint32Array {
  const out = Uint32Array.from(encoded)
  addInto(out, maskStream(ownSeed, out.length))
  for (const [peer, seed] of pairSeeds) {
    if (peer === self) continue
    addInto(out, maskStream(seed, out.length), self < peer ? 1 : -1)
  }
  return out
}

// ---- Shamir shares over GF(2^8) ---------------------------------------------------------------

const EXP = new Uint8Array(510)
const LOG = new Uint8Array(256)
{
  let x = 1
  for (let i = 0; i < 255; i++) {
    EXP[i] = EXP[i + 255] = x
    LOG[x] = i
    x ^= (x << 1) ^ ((x & 0x80) !== 0 ? 0x11b : 0) // times 3 in AES's field
    x &= 0xff
  }
}
const gfMul = (a: number, b: number): number => a === 0 || b === 0 ? 0 : EXP[LOG[a] + LOG[b]]
const gfDiv = (a: number, b: number): number => a === 0 ? 0 : EXP[LOG[a] + 255 - LOG[b]]

/** A share: its x (1-255), then one byte a byte of the secret. */
export type Share = Uint8Array

/** `secret` split in `n` shares (x = 1..n), any `threshold` of which rebuild it and fewer tell nothing. */
export function splitSecret (secret: Uint8Array, n: number, threshold: number, random: (bytes: number) => Uint8Array = (k) => crypto.getRandomValues(new Uint8Array(k))): Share[] {
  if (!Number.isInteger(n) || n < 1 || n > 255) throw new SecureAggregationError(`${n} shares: from 1 to 255`)
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > n) throw new SecureAggregationError(`a threshold of ${threshold} for ${n} shares`)
  const coefficients = random(secret.length * (threshold - 1))
  const shares = Array.from({ length: n }, (_, k) => { const s = new Uint8Array(secret.length + 1); s[0] = k + 1; return s })
  for (let b = 0; b < secret.length; b++) {
    for (const share of shares) {
      const x = share[0]
      // Horner's rule: the highest coefficient first, the secret's byte last
      let y = 0
      for (let c = threshold - 2; c >= 0; c--) y = gfMul(y, x) ^ coefficients[b * (threshold - 1) + c]
      share[b + 1] = gfMul(y, x) ^ secret[b]
    }
  }
  return shares
}

/** The value at `x` of the polynomial through `shares` (each byte position its own): at 0, the secret. */
function interpolate (shares: readonly Share[], x: number): Uint8Array {
  const length = shares[0].length - 1
  const out = new Uint8Array(length)
  for (let k = 0; k < shares.length; k++) {
    let basis = 1
    for (let m = 0; m < shares.length; m++) {
      if (m !== k) basis = gfMul(basis, gfDiv(x ^ shares[m][0], shares[k][0] ^ shares[m][0]))
    }
    for (let b = 0; b < length; b++) out[b] ^= gfMul(shares[k][b + 1], basis)
  }
  return out
}

function checkShares (shares: readonly Share[]): void {
  const xs = new Set<number>()
  for (const s of shares) {
    if (s.length !== shares[0].length || s.length < 2 || s[0] === 0) throw new SecureAggregationError('shares of different lengths, or with no x')
    if (xs.has(s[0])) throw new SecureAggregationError(`two shares at x = ${s[0]}`)
    xs.add(s[0])
  }
}

/** The secret `threshold` shares (any of them) rebuild. */
export function combineShares (shares: readonly Share[]): Uint8Array {
  if (shares.length === 0) throw new SecureAggregationError('no shares')
  checkShares(shares)
  return interpolate(shares, 0)
}

/**
 * The secret that `fits` (the commitment its owner published), rebuilt from shares of which some
 * may be wrong: the first `threshold` that rebuild a fitting secret, tried in order; then every
 * share is checked against the polynomial they define, and those off it are named by `from`.
 * Undefined if no `threshold` of them rebuild it.
 */
export function recoverSecret (shares: ReadonlyArray<{ from: string, share: Share }>, threshold: number, fits: (secret: Uint8Array) => boolean, maxTries = 10_000): { secret: Uint8Array, wrong: string[] } | undefined {
  const usable = shares.filter(s => s.share.length === shares[0]?.share.length && s.share[0] !== 0)
  const unique = [...new Map(usable.map(s => [s.share[0], s])).values()]
  if (unique.length < threshold || threshold < 1) return undefined
  let tries = 0
  const pick: number[] = []
  const search = (from: number): Share[] | undefined => {
    if (pick.length === threshold) {
      tries++
      const chosen = pick.map(i => unique[i].share)
      return fits(interpolate(chosen, 0)) ? chosen : undefined
    }
    for (let i = from; i <= unique.length - (threshold - pick.length) && tries < maxTries; i++) {
      pick.push(i)
      const found = search(i + 1)
      pick.pop()
      if (found !== undefined) return found
    }
    return undefined
  }
  const good = search(0)
  if (good === undefined) return undefined
  const secret = interpolate(good, 0)
  const wrong = shares.filter(s => {
    if (s.share.length !== good[0].length || s.share[0] === 0) return true
    const expected = interpolate(good, s.share[0])
    return expected.some((byte, b) => byte !== s.share[b + 1])
  }).map(s => s.from)
  return { secret, wrong }
}

// ---- sealed shares ----------------------------------------------------------------------------

function sealKey (secret: Uint8Array, theirPublic: Uint8Array, context: Uint8Array): Uint8Array {
  return agreed(secret, theirPublic, context, 'seal')
}

/** The data a sealed share is bound to: the round, its sender and its recipient. */
function sealed (context: Uint8Array, sender: string, recipient: string): Uint8Array {
  const names = TEXT.encode(` ${sender} > ${recipient}`)
  const out = new Uint8Array(context.length + names.length)
  out.set(context)
  out.set(names, context.length)
  return out
}

/** A share for `recipient` that only it can open, and only as from `sender` in this round (the sealing keys are X25519 pairs of their own, never shared). */
export function sealShare (plain: Uint8Array, senderSecret: Uint8Array, recipientPublic: Uint8Array, context: Uint8Array, sender: string, recipient: string): Uint8Array {
  // each pair of peers seals once a round under its own key: a fixed nonce never repeats under it
  return chacha20poly1305(sealKey(senderSecret, recipientPublic, context), new Uint8Array(12), sealed(context, sender, recipient)).encrypt(plain)
}

/** A share sealed for this peer: opened, or an error saying it was not sealed for it by `sender` in this round. */
export function openShare (box: Uint8Array, recipientSecret: Uint8Array, senderPublic: Uint8Array, context: Uint8Array, sender: string, recipient: string): Uint8Array {
  try {
    return chacha20poly1305(sealKey(recipientSecret, senderPublic, context), new Uint8Array(12), sealed(context, sender, recipient)).decrypt(box)
  } catch (err) {
    throw new SecureAggregationError(`a share from ${sender} that does not open for ${recipient} in this round: ${(err as Error).message}`)
  }
}

// ---- the sum ----------------------------------------------------------------------------------

/**
 * The sum of the masked updates of the participants that sent one (`masked`), unmasked: their own
 * seeds' streams taken out (`ownSeeds`, rebuilt from shares), and the pair streams between them and
 * each participant that dropped out (its masking key `droppedKeys`, rebuilt from shares; the
 * survivors' public masking keys `publicKeys`), which no update of the dropped one cancels.
 */
export function unmaskSum (masked: ReadonlyMap<string, Uint32Array>, ownSeeds: ReadonlyMap<string, Uint8Array>, droppedKeys: ReadonlyMap<string, Uint8Array>, publicKeys: ReadonlyMap<string, Uint8Array>, context: Uint8Array): Uint32Array {
  const first = masked.values().next().value
  if (first === undefined) throw new SecureAggregationError('no masked update to sum')
  const sum = new Uint32Array(first.length)
  for (const [peer, y] of masked) {
    const seed = ownSeeds.get(peer)
    if (seed === undefined) throw new SecureAggregationError(`no seed of ${peer}, whose update is in the sum`)
    addInto(sum, y)
    addInto(sum, maskStream(seed, sum.length), -1)
  }
  for (const [dropped, key] of droppedKeys) {
    if (masked.has(dropped)) throw new SecureAggregationError(`${dropped} both sent an update and dropped out`)
    for (const survivor of masked.keys()) {
      const theirs = publicKeys.get(survivor)
      if (theirs === undefined) throw new SecureAggregationError(`no public key of ${survivor}`)
      // the survivor added this stream if it ranks below the dropped one, else subtracted it
      addInto(sum, maskStream(pairSeed(key, theirs, context), sum.length), survivor < dropped ? -1 : 1)
    }
  }
  return sum
}
