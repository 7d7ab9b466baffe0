// Comparing a kernel's output on wasm with the cpu backend's: for the tests.

/** The largest absolute difference between two arrays of the same length. */
export function maxAbsDiff (a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]))
  return d
}
