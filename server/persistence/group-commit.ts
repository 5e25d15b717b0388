/**
 * Group commit: appends from every room that arrive in one event-loop turn are written
 * in one batch, so a burst costs one write (one fsync) instead of one per update, and
 * sequence numbers follow call order (batches are numbered one at a time, in order).
 *
 * When a batch is written, the next one (what queued up meanwhile) is handed over at once,
 * before the callers of the written one are told: the disk writes it while the main thread
 * applies and relays the last batch, instead of waiting for that work to end.
 *
 * `concurrency` > 1 hands more batches over at once (LevelDB then writes the ones waiting in
 * its writer queue together). Not the default: it spends more fsyncs on the same updates, so
 * a busy disk falls behind (see the README's performance section).
 *
 * An exclusive write (a room's delete) takes a turn of its own in the same order: appends
 * called before it are written before it, appends called after it are written after it.
 */
import { CoeditError } from '../errors.js'
import type { AppendMeta } from './store.js'
import { PathTrace } from '../base/path-trace.js'

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

/**
 * Stores a batch atomically and returns, per append, the seq of its last update, or the error
 * that refused that append alone (the others of the batch are stored). Calls `numbered` once
 * the batch's sequence numbers are taken and its write handed over: the next batch may be
 * numbered from then on (if `write` never calls it, from when it settles).
 */
export type WriteBatch = (batch: readonly Append[], numbered: () => void) => Promise<Array<number | Error>>

export class GroupCommit {
  private queue: Item[] = []
  /** Batches handed to `write`, not yet settled. */
  private inFlight = 0
  /** A batch is being numbered: the next one waits for it. */
  private numbering = false
  private exclusiveRunning = false
  private scheduled = false

  constructor(private readonly write: WriteBatch, private readonly concurrency = 1) {}

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
    while (this.inFlight > 0 || this.exclusiveRunning || this.scheduled || this.queue.length > 0) {
      await new Promise((resolve) => setImmediate(resolve))
    }
  }

  /** Whether the first queued item may start now. */
  private get ready(): boolean {
    const first = this.queue[0]
    if (!first || this.numbering || this.exclusiveRunning) return false
    return isExclusive(first) ? this.inFlight === 0 : this.inFlight < this.concurrency
  }

  private schedule(): void {
    if (this.scheduled || !this.ready) return
    this.scheduled = true
    // setImmediate runs after the poll phase: every message read in this turn joins the batch.
    setImmediate(() => {
      this.scheduled = false
      this.flush()
    })
  }

  private flush(): void {
    if (!this.ready) return
    const first = this.queue[0]!
    if (isExclusive(first)) {
      this.queue.shift()
      this.exclusiveRunning = true
      void first.run().then(first.resolve, first.reject).finally(() => {
        this.exclusiveRunning = false
        this.schedule()
      })
      return
    }
    const end = this.queue.findIndex(isExclusive)
    const batch = (end < 0 ? this.queue.splice(0) : this.queue.splice(0, end)) as Pending[]
    this.inFlight++
    this.numbering = true
    const numbered = (): void => {
      if (!this.numbering) return
      this.numbering = false
      this.schedule()
    }
    for (const p of batch) PathTrace.mark(p.meta?.marks, 'batch')
    void this.settle(batch, numbered)
  }

  private async settle(batch: Pending[], numbered: () => void): Promise<void> {
    let settled = false
    const free = (): void => {
      if (settled) return
      settled = true
      numbered()
      this.inFlight--
      // What queued up while this batch was written goes to the disk now, before the callers
      // (rooms applying and relaying it) take the main thread: the next fsync overlaps that work.
      if (this.ready) this.flush()
    }
    try {
      const results = await this.write(batch, numbered)
      for (const p of batch) PathTrace.mark(p.meta?.marks, 'fsync')
      free()
      batch.forEach((p, i) => {
        const result = results[i]!
        if (typeof result === 'number') p.resolve(result)
        else p.reject(result)
      })
    } catch (err) {
      const error = err instanceof CoeditError ? err
        : new CoeditError('STORE_WRITE_FAILED', `write failed: ${(err as Error).message}`, { cause: err })
      free()
      for (const p of batch) p.reject(error)
    }
  }
}
