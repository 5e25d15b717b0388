/**
 * Giving disk space back after a room's big rewrites (issue 17, item 3).
 *
 * A compaction replaces the room's whole state, a fold its log base, and history writes
 * whole states too: LevelDB keeps every replaced or deleted value in its write-ahead log,
 * its memtable and its level-0 tables until its own compaction reaches them, which for a
 * quiet database can be never. So a room's stored bytes were several times its live data
 * (S4: 9.9 MB for 6.4 MB of live keys, 1.8 MB of them the document).
 *
 * This keeps, per room, the bytes of such writes since its key ranges were last compacted
 * (`db.compactRange`: flushes the memtable, merges the range's level-0 and level-1 tables,
 * drops replaced and deleted values). A room is compacted in the background once that
 * garbage passes a few times its state and at most once per MIN_INTERVAL; every room still
 * owing is compacted when the store closes (its rooms' final states are written by then).
 * One limit of LevelDB's: a range is merged down to the deepest level that holds it, not
 * rewritten there, and a memtable flushed into a fresh database lands on level 2 with its
 * garbage; that garbage goes at the next compaction that merges a newer table into it.
 * Compacting a range changes no key's value, so it needs no ordering with writes and a
 * kill -9 in the middle of one loses nothing (LevelDB installs compactions atomically).
 */

/** What it needs of the database: classic-level's compactRange, nothing else. */
export interface RangeCompactor {
  compactRange(start: string, end: string): Promise<void>
}

/** Garbage below this is not worth a background compaction (it waits for close). */
const MIN_BYTES = 4 << 20
/** Background compaction once the garbage is this many times the room's state. */
const STATE_MULTIPLE = 4
/** At most one background compaction per this many ms, over all rooms (bounds the extra IO). */
const MIN_INTERVAL = 30_000

export class Reclaimer {
  /** Per room: bytes rewritten since its ranges were last compacted, and its last state's size. */
  private readonly owed = new Map<string, { bytes: number; state: number }>()
  private running: Promise<void> = Promise.resolve()
  private lastRun = -Infinity

  /** `ranges(room)`: the room's key ranges, [start, end) each. */
  constructor(
    private readonly db: RangeCompactor,
    private readonly ranges: (room: string) => Array<[string, string]>,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** `room` rewrote `bytes` (a state of `state` bytes, when it is the room's state). */
  wrote(room: string, bytes: number, state?: number): void {
    const o = this.owed.get(room) ?? { bytes: 0, state: 0 }
    o.bytes += bytes
    if (state !== undefined) o.state = state
    this.owed.set(room, o)
    if (o.bytes >= Math.max(MIN_BYTES, STATE_MULTIPLE * o.state) && this.now() - this.lastRun >= MIN_INTERVAL) {
      this.lastRun = this.now()
      void this.enqueue([room])
    }
  }

  /** Compacts every room still owing (at close); resolves once done, never rejects. */
  all(): Promise<void> {
    return this.enqueue([...this.owed.keys()].sort())
  }

  /** Runs after the compaction in progress: one at a time, so close can wait for all. */
  private enqueue(rooms: string[]): Promise<void> {
    this.running = this.running.then(async () => {
      for (const room of rooms) {
        if (!this.owed.delete(room)) continue
        for (const [start, end] of this.ranges(room)) {
          // Space, not data: a failure leaves the garbage where LevelDB's own compaction finds it.
          await this.db.compactRange(start, end).catch(() => {})
        }
      }
    })
    return this.running
  }
}
