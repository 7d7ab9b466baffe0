// Fake time for unit tests of the engine: timers fire only when a test advances the clock.
import type { Clock } from '@dml/node'

interface Timer { id: number, at: number, fn: () => void }

/** Lets every pending promise callback and I/O callback run (the engine awaits between steps). */
export async function settle (): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise(resolve => setImmediate(resolve))
}

export class FakeClock implements Clock {
  private time = 1_000_000
  private nextId = 1
  private timers: Timer[] = []

  now = (): number => this.time

  setTimeout = (fn: () => void, ms: number): unknown => {
    const timer = { id: this.nextId++, at: this.time + Math.max(0, ms), fn }
    this.timers.push(timer)
    return timer.id
  }

  clearTimeout = (handle: unknown): void => {
    this.timers = this.timers.filter(t => t.id !== handle)
  }

  /** Moves time on by `ms`, firing each timer at its time, in order, and letting the engine react. */
  async advance (ms: number): Promise<void> {
    const target = this.time + ms
    await settle()
    for (;;) {
      const next = this.timers.filter(t => t.at <= target).sort((a, b) => a.at - b.at || a.id - b.id)[0]
      if (next === undefined) break
      this.timers = this.timers.filter(t => t !== next)
      this.time = next.at
      next.fn()
      await settle()
    }
    this.time = target
    await settle()
  }

  /** Advances in steps of `stepMs` until `done()` holds; fails loudly after `maxMs` of fake time. */
  async until (what: string, done: () => boolean, maxMs: number, stepMs = 100): Promise<number> {
    const started = this.time
    await settle()
    while (!done()) {
      if (this.time - started >= maxMs) throw new Error(`not within ${maxMs} ms of fake time: ${what}`)
      await this.advance(stepMs)
    }
    return this.time - started
  }
}
