/**
 * Group commit: appends from every room that arrive in one event-loop turn are written
 * in one batch, and each batch waits for the one before it, so a burst costs one write
 * (one fsync) instead of one per update, and sequence numbers follow call order.
 *
 * An exclusive write (a room's delete) takes a turn of its own in the same order: appends
 * called before it are written before it, appends called after it are written after it.
 */
import { CoeditError } from '../errors.js'
import type { AppendMeta } from './store.js'
import { PathTrace } from '../path-trace.js'

export interface Append {
  room: string
  updates: readonly Uint8Array[]
  meta?: AppendMeta
}

interface Pending extends Append {
  resolve: (seq: number) => void
  reject: (err: unknown) => void
}

interface Exclusive {
  run: () => Promise<unknown>
  resolve: (value: unknown) => void
  reject: (err: unknown) => void
}

type Item = Pending | Exclusive

const isExclusive = (item: Item): item is Exclusive => 'run' in item

export class GroupCommit {
  private queue: Item[] = []
  private writing = false
  private scheduled = false

  /**
   * `write` stores a batch atomically and returns, per append, the seq of its last update,
   * or the error that refused that append alone (the others of the batch are stored).
   */
  constructor(private readonly write: (batch: readonly Append[]) => Promise<Array<number | Error>>) {}

  add(room: string, updates: readonly Uint8Array[], meta?: AppendMeta): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ room, updates, meta, resolve, reject })
      this.schedule()
    })
  }

  /** Runs `run` alone, after every append added before this call and before every one added after it. */
  exclusive<T>(run: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, resolve: resolve as (value: unknown) => void, reject })
      this.schedule()
    })
  }

  /** Resolves once nothing is queued or being written. */
  async drained(): Promise<void> {
    while (this.writing || this.scheduled || this.queue.length > 0) {
      await new Promise((resolve) => setImmediate(resolve))
    }
  }

  private schedule(): void {
    if (this.writing || this.scheduled || this.queue.length === 0) return
    this.scheduled = true
    // setImmediate runs after the poll phase: every message read in this turn joins the batch.
    setImmediate(() => {
      this.scheduled = false
      void this.flush()
    })
  }

  private async flush(): Promise<void> {
    const first = this.queue[0]
    this.writing = true
    try {
      if (first && isExclusive(first)) {
        this.queue.shift()
        await first.run().then(first.resolve, first.reject)
        return
      }
      const end = this.queue.findIndex(isExclusive)
      const batch = (end < 0 ? this.queue.splice(0) : this.queue.splice(0, end)) as Pending[]
      for (const p of batch) PathTrace.mark(p.meta?.marks, 'batch')
      try {
        const results = await this.write(batch)
        for (const p of batch) PathTrace.mark(p.meta?.marks, 'fsync')
        batch.forEach((p, i) => {
          const result = results[i]!
          if (typeof result === 'number') p.resolve(result)
          else p.reject(result)
        })
      } catch (err) {
        const error = err instanceof CoeditError ? err
          : new CoeditError('STORE_WRITE_FAILED', `write failed: ${(err as Error).message}`, { cause: err })
        for (const p of batch) p.reject(error)
      }
    } finally {
      this.writing = false
      this.schedule()
    }
  }
}
