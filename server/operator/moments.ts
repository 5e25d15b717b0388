/**
 * The moments of a room's history, newest first, a page at a time (the editor's history
 * panel, issue 18): its stored versions and its editing bursts from the history log. A
 * burst is a run of stored updates with no pause of `gap` ms or more between two of them
 * and spanning at most `maxSpan` ms; its instant is its newest update's, so "the room as of
 * a burst" is exactly the room once that burst was stored.
 *
 * Bounded work: the log is read backwards from the page's edge in chunks of seq numbers, so
 * a page reads the updates it lists (at most `maxEntries` of them), not the whole window;
 * a page that hits the budget ends early (its oldest burst may then be cut in two, each
 * part still an exact instant) and says where the next one starts.
 *
 * Order (total, so a cursor is exact): newest `at` first; at the same instant a burst
 * before a version; then the higher seq or id first.
 */
import { CoeditError } from '../errors.js'
import type { HistoryLog, LogEntry, VersionInfo } from '../persistence/store.js'

export interface EditsMoment {
  kind: 'edits'
  /** Its newest update's instant: the room as of this moment is the room at `at`. */
  at: number
  /** Its oldest update's instant. */
  from: number
  firstSeq: number
  lastSeq: number
  updates: number
  bytes: number
  /** User ids seen, sorted; updates without a known user are counted but not named. */
  users: string[]
}

export interface VersionMoment extends VersionInfo {
  kind: 'version'
}

export type Moment = EditsMoment | VersionMoment

/** Reads the log: entries with seq > afterSeq stored at or before untilAt (HistoryLogStore.readLog). */
export type LogReader = (range: { afterSeq: number; untilAt?: number }) => Promise<HistoryLog>

export interface MomentOptions {
  limit: number
  gap: number
  maxSpan: number
  /** Log entries one page may read at most. */
  maxEntries: number
  /** Seq numbers read per log read, at most (the first read is smaller). */
  chunk: number
}

export const DEFAULT_MOMENT_OPTIONS: MomentOptions = { limit: 50, gap: 1000, maxSpan: 60_000, maxEntries: 5000, chunk: 2500 }
export const MAX_MOMENT_LIMIT = 200
/** Seq numbers of a page's first log read; each further read doubles, up to `chunk`. */
const FIRST_CHUNK = 256

/** Where a page ends: its last moment, and the seq below which the bursts not yet listed lie. */
export interface Cursor {
  at: number
  kind: 'e' | 'v'
  /** lastSeq of a burst, id of a version. */
  key: number
  edge: number
}

const CURSOR = /^(\d{1,16})\.([ev])\.(\d{1,16})\.(\d{1,16})$/

export function encodeCursor(c: Cursor): string {
  return `${c.at}.${c.kind}.${c.key}.${c.edge}`
}

/** Throws BAD_REQUEST on anything but what encodeCursor writes. */
export function parseCursor(text: string): Cursor {
  const m = CURSOR.exec(text)
  if (!m) throw new CoeditError('BAD_REQUEST', 'cursor must be the `next` of a previous page')
  return { at: Number(m[1]), kind: m[2] as 'e' | 'v', key: Number(m[3]), edge: Number(m[4]) }
}

/** True if `a` comes before `b` in the listing (newer first). */
function before(a: { at: number; kind: 'e' | 'v'; key: number }, b: { at: number; kind: 'e' | 'v'; key: number }): boolean {
  if (a.at !== b.at) return a.at > b.at
  if (a.kind !== b.kind) return a.kind === 'e'
  return a.key > b.key
}

const keyOf = (m: Moment): { at: number; kind: 'e' | 'v'; key: number } =>
  m.kind === 'edits' ? { at: m.at, kind: 'e', key: m.lastSeq } : { at: m.at, kind: 'v', key: m.id }

/**
 * Bursts of the log, newest first, from the entries with seq < `edge` (stored at or before
 * `untilAt`, if known: it bounds the first read, which reads up to the log's end otherwise).
 * Stops at the log's start (its base, or a hole) or once `budget.left` entries were read.
 */
export async function* burstsBackward(read: LogReader, edge: number, untilAt: number | undefined, options: MomentOptions, budget: { left: number; cut: boolean }): AsyncGenerator<EditsMoment> {
  let hi = edge - 1
  // Small first: a page of short bursts needs a few hundred updates, not a whole chunk.
  let size = Math.min(options.chunk, FIRST_CHUNK)
  let current: (EditsMoment & { names: Set<string> }) | undefined
  const done = (b: EditsMoment & { names: Set<string> }): EditsMoment => {
    const { names, ...moment } = b
    return { ...moment, users: [...names].sort() }
  }
  while (hi >= 1 && budget.left > 0) {
    const lo = Math.max(0, hi - Math.min(size, budget.left))
    size = Math.min(options.chunk, size * 2)
    const log = await read({ afterSeq: lo, ...(untilAt === undefined ? {} : { untilAt }) })
    const entries = log.entries.filter((e) => e.seq <= hi)
    if (entries.length === 0) break
    for (let i = entries.length - 1; i >= 0; i--) {
      const e: LogEntry = entries[i]!
      if (current && (current.from - e.at >= options.gap || current.at - e.at > options.maxSpan)) {
        yield done(current)
        current = undefined
      }
      if (!current) {
        current = { kind: 'edits', at: e.at, from: e.at, firstSeq: e.seq, lastSeq: e.seq, updates: 0, bytes: 0, users: [], names: new Set() }
      }
      current.from = e.at
      current.firstSeq = e.seq
      current.updates++
      current.bytes += e.update.length
      if (e.user !== undefined) current.names.add(e.user)
    }
    budget.left -= entries.length
    // The log starts above this chunk (its base, or a hole): nothing older to read.
    if (entries[0]!.seq !== lo + 1) {
      hi = 0
      break
    }
    untilAt = entries[0]!.at
    hi = lo
  }
  if (hi >= 1 && budget.left <= 0) budget.cut = true
  if (current) yield done(current)
}

export interface MomentPage {
  moments: Moment[]
  /** Pass as `cursor` for the next (older) page; absent on the last page. */
  next?: string
  /** From when the log answers exactly (undefined: since the room's start, or no log). */
  exactSince: number | undefined
}

/**
 * One page of moments. `lastSeq` is the room's newest stored seq (the first page's edge);
 * `versions` every version of the room; `read` undefined for a store without a log.
 */
export async function momentsPage(read: LogReader | undefined, lastSeq: number, versions: readonly VersionInfo[], cursor: Cursor | undefined, options: MomentOptions): Promise<MomentPage> {
  const edge = cursor ? cursor.edge : lastSeq + 1
  let exactSince: number | undefined
  const reading: LogReader | undefined = read && (async (range) => {
    const log = await read(range)
    exactSince = log.base?.at
    return log
  })
  const budget = { left: options.maxEntries, cut: false }
  // Every update below the edge was stored at or before the cursor's moment (see before()).
  const bursts = reading ? burstsBackward(reading, edge, cursor?.at, options, budget) : undefined
  const older = versions
    .map((v): VersionMoment => ({ kind: 'version', ...v }))
    .filter((v) => !cursor || before(cursor, keyOf(v)))
    .sort((a, b) => (before(keyOf(a), keyOf(b)) ? -1 : 1))
  const moments: Moment[] = []
  let lowest = edge
  let burst = bursts ? (await bursts.next()).value ?? undefined : undefined
  let v = 0
  while (moments.length < options.limit) {
    const version = older[v]
    // Cut by the budget: updates not yet read may be newer than the next version.
    if (!burst && (!version || budget.cut)) break
    if (burst && (!version || before(keyOf(burst), keyOf(version)))) {
      moments.push(burst)
      lowest = burst.firstSeq
      burst = (await bursts!.next()).value ?? undefined
    } else {
      moments.push(version!)
      v++
    }
  }
  await bursts?.return(undefined)
  // No burst was read (an empty log): the base alone says it (untilAt before any entry).
  if (read && exactSince === undefined) exactSince = (await read({ afterSeq: 0, untilAt: -1 })).base?.at
  const more = burst !== undefined || v < older.length || budget.cut
  const last = moments[moments.length - 1]
  const page: MomentPage = { moments, exactSince }
  if (more && last) page.next = encodeCursor({ ...keyOf(last), edge: lowest })
  return page
}
