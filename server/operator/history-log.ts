/**
 * Exact point-in-time history (issue 18): "the room at T" is the document made of every
 * update stored at or before T and none after. Each store stamps its updates and keeps
 * them in a history log (persistence/store.ts, HistoryLogStore) that compaction leaves
 * alone; this module reads it and decides how much of it to keep.
 *
 * The room at T = a starting state + the log's entries up to T. The starting state is the
 * newest version (whole states the history keeper records every minute) known to hold
 * exactly the room through its seq, else the log's base (its folded prefix). So an answer
 * replays at most a minute or so of updates, not the whole window.
 *
 * The log keeps `window` ms: older entries are folded into the base (`foldLog`), which
 * makes the room exact for any T from the base's instant on. Beyond the window only the
 * versions remain, thinned by the retention policy as before.
 */
import * as Y from 'yjs'
import { applyUpdates, mergeUpdates } from '../room/yjs-log.js'
import {
  EMPTY_STATE, isHistoryLogStore, isVersionedStore, type HistoryLogStore, type LogEntry, type Store,
} from '../persistence/store.js'

export const DEFAULT_EXACT_WINDOW = 24 * 3_600_000
/** `history`'s activity intervals unless asked otherwise. */
export const DEFAULT_ACTIVITY_BUCKET = 60_000

/** The room at an instant, from the history log. */
export interface ExactState {
  state: Uint8Array
  /** The last update seq it holds (0: the room had nothing yet). */
  seq: number
  /** The instant asked for. */
  at: number
}

/** How many of the newest candidate versions to try as a starting state before replaying from the base. */
const VERSION_TRIES = 3

/**
 * The room at `at` from the log, or undefined if the log does not reach back that far
 * (or the store keeps no log): then only versions can answer.
 */
export async function stateAt(store: Store, room: string, at: number): Promise<ExactState | undefined> {
  if (!isHistoryLogStore(store)) return undefined
  if (isVersionedStore(store)) {
    const versions = (await store.listVersions(room)).filter((v) => v.at <= at && v.seq > 0).sort((a, b) => b.seq - a.seq)
    for (const v of versions.slice(0, VERSION_TRIES)) {
      const log = await store.readLog(room, { afterSeq: v.seq - 1, untilAt: at })
      // Updates an older coedit stored at an unknown time may belong before `at`: not exact.
      if (log.unmarked !== undefined) return undefined
      if (log.base && log.base.at > at) return undefined
      if (log.base && v.seq <= log.base.upTo) break // the base is as good a start
      // A version holds exactly updates 1..seq only if it was recorded after update seq was
      // stored (a version restored from another room's backup has someone else's seqs).
      const first = log.entries[0]
      if (!first || first.seq !== v.seq || first.at > v.at) continue
      if (!contiguous(log.entries)) return undefined
      const version = await store.getVersion(room, v.id)
      if (!version) continue
      return build([version.state, ...log.entries.slice(1).map((e) => e.update)], log.entries, at)
    }
  }
  const log = await store.readLog(room, { untilAt: at })
  if (log.unmarked !== undefined) return undefined
  if (log.base) {
    if (log.base.at > at) return undefined
  }
  // A log with a hole (updates deleted by something else, e.g. an older coedit compacting
  // this directory) cannot say what the room was: only the versions can.
  if (log.entries.length > 0 && log.entries[0]!.seq !== (log.base?.upTo ?? 0) + 1) return undefined
  if (!contiguous(log.entries)) return undefined
  const parts = [...(log.base ? [log.base.state] : []), ...log.entries.map((e) => e.update)]
  const seq = log.entries.length > 0 ? log.entries[log.entries.length - 1]!.seq : log.base?.upTo ?? 0
  if (parts.length === 0) return { state: EMPTY_STATE, seq: 0, at }
  return { state: mergeUpdates(parts), seq, at }
}

function contiguous(entries: readonly LogEntry[]): boolean {
  for (let i = 1; i < entries.length; i++) if (entries[i]!.seq !== entries[i - 1]!.seq + 1) return false
  return true
}

function build(parts: Uint8Array[], entries: readonly LogEntry[], at: number): ExactState {
  return { state: parts.length === 1 ? parts[0]! : mergeUpdates(parts), seq: entries[entries.length - 1]!.seq, at }
}

/** The first instant the log answers exactly (undefined: the log reaches back to the room's start, or there is none). */
export async function exactSince(store: Store, room: string): Promise<number | undefined> {
  if (!isHistoryLogStore(store)) return undefined
  const log = await store.readLog(room, { untilAt: -1 })
  return log.base?.at
}

/**
 * Folds the log entries stored before `before` into the base. Returns how many it folded.
 * The base then holds the room through the last folded entry, exact from that entry's
 * instant on, so every T >= `before` stays exact.
 */
export async function foldLogBefore(store: HistoryLogStore, room: string, before: number): Promise<number> {
  const log = await store.readLog(room, { untilAt: before - 1 })
  if (log.entries.length === 0) return 0
  const last = log.entries[log.entries.length - 1]!
  const doc = new Y.Doc()
  try {
    applyUpdates(doc, [...(log.base ? [log.base.state] : []), ...log.entries.map((e) => e.update)])
    // For the generation read: a delete since then leaves nothing to fold into.
    await store.foldLog(room, { upTo: last.seq, at: last.at, state: Y.encodeStateAsUpdate(doc) }, { generation: log.generation ?? 0 })
  } finally {
    doc.destroy()
  }
  return log.entries.length
}

/** Who changed a room how much in one interval. */
export interface ActivityBucket {
  /** Start of the interval, ms since the epoch. */
  from: number
  to: number
  updates: number
  bytes: number
  /** User ids seen, sorted; updates without a known user are counted but not named. */
  users: string[]
}

/** How many log entries one activity page reads unless asked otherwise, and at most. */
export const DEFAULT_ACTIVITY_LIMIT = 10_000
export const MAX_ACTIVITY_LIMIT = 100_000

/** One page of a room's activity: the intervals of up to `limit` updates after `after`. */
export interface ActivityPage {
  activity: ActivityBucket[]
  /**
   * More updates follow: pass this as `after` for the next page. That page may go on with
   * this one's last interval (same `from`): add the two up.
   */
  next?: number
}

/**
 * Activity of `room` in the log, per `bucket` ms, oldest first (empty intervals left out):
 * the updates with seq > `after` (default: the log's start), at most `limit` of them, so a
 * request reads a bounded part of the log however long the window is.
 */
export async function activity(store: Store, room: string, bucket: number, page: { after?: number; limit?: number } = {}): Promise<ActivityPage> {
  if (!isHistoryLogStore(store)) return { activity: [] }
  const limit = page.limit ?? DEFAULT_ACTIVITY_LIMIT
  const { entries } = await store.readLog(room, { afterSeq: page.after ?? 0, limit })
  const last = entries[entries.length - 1]
  return { activity: activityOf(entries, bucket), ...(entries.length >= limit && last ? { next: last.seq } : {}) }
}

/** Adds `page`'s intervals to `into`, merging an interval a page boundary split. */
export function mergeActivity(into: ActivityBucket[], page: readonly ActivityBucket[]): void {
  for (const b of page) {
    const last = into[into.length - 1]
    if (last && last.from === b.from) {
      last.updates += b.updates
      last.bytes += b.bytes
      last.users = [...new Set([...last.users, ...b.users])].sort()
    } else {
      into.push({ ...b, users: [...b.users] })
    }
  }
}

export function activityOf(entries: readonly LogEntry[], bucket: number): ActivityBucket[] {
  const out: Array<ActivityBucket & { names: Set<string> }> = []
  for (const e of entries) {
    const from = Math.floor(e.at / bucket) * bucket
    let b = out[out.length - 1]
    if (!b || b.from !== from) {
      b = { from, to: from + bucket, updates: 0, bytes: 0, users: [], names: new Set() }
      out.push(b)
    }
    b.updates++
    b.bytes += e.update.length
    if (e.user !== undefined) b.names.add(e.user)
  }
  return out.map(({ names, ...b }) => ({ ...b, users: [...names].sort() }))
}
