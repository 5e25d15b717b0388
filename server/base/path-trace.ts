/**
 * `--trace-path FILE`: timestamps along each client update's path through the server, and
 * the per-stage breakdown of where its latency goes, written to FILE (JSON) when the server
 * stops. Off by default; off, the path carries `undefined` and pays one check per stage.
 *
 *   receive   the frame reached the room (ws parsed it)
 *   validate  decoded and checked (clocks, nesting, size, the part the room lacks)
 *   append    handed to the store (queued for the next group commit)
 *   batch     its group commit started (waited for the turn to end and the batch before)
 *   fsync     the batch is written (and fsynced with --fsync)
 *   apply     applied to the document (waited for the room's earlier updates, then Y.applyUpdate)
 *   frame     the relay message is built (end of the tick, merged with the tick's others)
 *   write     handed to every connection's socket, and the sockets uncorked (the syscalls)
 *
 * Each stage's time is from the mark before it. Durations go into log-scale histograms
 * (2% wide buckets), so memory stays constant however long the server runs.
 */
import { writeFileSync } from 'node:fs'

export const STAGES = ['validate', 'append', 'batch', 'fsync', 'apply', 'frame', 'write'] as const
export type Stage = typeof STAGES[number]

/** Indexes into `PathMarks`: 0 is `receive`, then the stages in order. */
export const MARK: Readonly<Record<'receive' | Stage, number>> = {
  receive: 0, validate: 1, append: 2, batch: 3, fsync: 4, apply: 5, frame: 6, write: 7,
}

/** One update's marks, performance.now() ms (NaN: not reached). */
export type PathMarks = Float64Array

export interface StageSummary {
  /** ms */
  p50: number
  p99: number
  mean: number
}

export interface PathSummary {
  /** Updates that went the whole path (stored, applied and relayed). */
  updates: number
  stages: Record<Stage | 'total', StageSummary>
}

/** Bucket i holds durations in [BASE^i, BASE^(i+1)) µs; bucket 0 everything under 1 µs. */
const BASE = 1.02
const BUCKETS = 1200 // up to 1.02^1200 µs ≈ 20 000 s

class Histogram {
  private readonly counts = new Uint32Array(BUCKETS)
  private count = 0
  private sum = 0

  add(ms: number): void {
    const us = ms * 1000
    const i = us < 1 ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log(us) / Math.log(BASE)))
    this.counts[i]!++
    this.count++
    this.sum += ms
  }

  summary(): StageSummary {
    return { p50: this.quantile(0.5), p99: this.quantile(0.99), mean: this.count ? round(this.sum / this.count) : 0 }
  }

  /** The bucket's geometric middle, ms. */
  private quantile(q: number): number {
    if (this.count === 0) return 0
    const rank = Math.ceil(q * this.count)
    let seen = 0
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!
      if (seen >= rank) return i === 0 ? 0 : round(BASE ** (i + 0.5) / 1000)
    }
    return 0
  }
}

const round = (ms: number): number => Math.round(ms * 1000) / 1000

export class PathTrace {
  private readonly histograms = new Map<Stage | 'total', Histogram>(
    [...STAGES, 'total' as const].map((s) => [s, new Histogram()]),
  )
  private updates = 0

  /** A new update's marks, `receive` stamped now. */
  start(): PathMarks {
    const marks = new Float64Array(STAGES.length + 1).fill(NaN)
    marks[MARK.receive] = performance.now()
    return marks
  }

  static mark(marks: PathMarks | undefined, stage: Stage): void {
    if (marks) marks[MARK[stage]] = performance.now()
  }

  /** The update went the whole path: its stage times join the histograms. */
  done(marks: PathMarks): void {
    if (Number.isNaN(marks[MARK.write]!)) return
    this.updates++
    for (const stage of STAGES) {
      const i = MARK[stage]
      // A stage this store has not (the memory store has no batches) took no time.
      if (Number.isNaN(marks[i]!)) marks[i] = marks[i - 1]!
      this.histograms.get(stage)!.add(marks[i]! - marks[i - 1]!)
    }
    this.histograms.get('total')!.add(marks[MARK.write]! - marks[MARK.receive]!)
  }

  summary(): PathSummary {
    const stages = Object.fromEntries([...this.histograms].map(([s, h]) => [s, h.summary()])) as PathSummary['stages']
    return { updates: this.updates, stages }
  }

  write(file: string): void {
    writeFileSync(file, `${JSON.stringify(this.summary())}\n`)
  }
}
