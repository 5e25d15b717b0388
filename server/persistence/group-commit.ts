/**
 * Group commit: appends from every room that arrive in one event-loop turn are written
 * in one batch, and each batch waits for the one before it, so a burst costs one write
 * (one fsync) instead of one per update, and sequence numbers follow call order.
 */
import { CoeditError } from '../errors.js'
import type { AppendMeta } from './store.js'

export interface Append {
  room: string
  updates: readonly Uint8Array[]
  meta?: AppendMeta
}

interface Pending extends Append {
  resolve: (seq: number) => void
  reject: (err: unknown) => void
}

export class GroupCommit {
  private queue: Pending[] = []
  private writing = false
  private scheduled = false

  /** `write` stores a batch atomically and returns, per append, the seq of its last update. */
  constructor(private readonly write: (batch: readonly Append[]) => Promise<number[]>) {}

  add(room: string, updates: readonly Uint8Array[], meta?: AppendMeta): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ room, updates, meta, resolve, reject })
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
    const batch = this.queue
    this.queue = []
    this.writing = true
    try {
      const seqs = await this.write(batch)
      batch.forEach((p, i) => p.resolve(seqs[i]!))
    } catch (err) {
      const error = err instanceof CoeditError ? err
        : new CoeditError('STORE_WRITE_FAILED', `write failed: ${(err as Error).message}`, { cause: err })
      for (const p of batch) p.reject(error)
    } finally {
      this.writing = false
      this.schedule()
    }
  }
}
