/** Small numeric helpers: latency samples, medians, a seeded PRNG. */

/** Latency samples in ms, stored compactly (a run can collect millions). */
export class Samples {
  private data = new Float64Array(1 << 16)
  length = 0

  push(ms: number): void {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2)
      bigger.set(this.data)
      this.data = bigger
    }
    this.data[this.length++] = ms
  }

  /** Quantile q in [0, 1] (nearest rank); null without samples. */
  quantiles(qs: number[]): Array<number | null> {
    if (this.length === 0) return qs.map(() => null)
    const sorted = this.data.slice(0, this.length).sort()
    return qs.map((q) => sorted[Math.min(this.length - 1, Math.max(0, Math.ceil(q * this.length) - 1))]!)
  }
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** A tiny seeded PRNG (the tests' own), so S4's document is the same in every run. */
export { prng } from '../../test/helpers/prng.js'

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function pool<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      results[i] = await fn(items[i]!, i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}

/** Polls `check` until it is true, or until it made no progress for `idleMs`, or `maxMs` passed. */
export async function settle(progress: () => number, done: () => boolean, idleMs: number, maxMs: number): Promise<void> {
  const started = Date.now()
  let last = progress()
  let lastChange = Date.now()
  while (!done() && Date.now() - started < maxMs) {
    await sleep(50)
    const p = progress()
    if (p !== last) {
      last = p
      lastChange = Date.now()
    } else if (Date.now() - lastChange > idleMs) {
      return
    }
  }
}
