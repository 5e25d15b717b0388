/**
 * Storage format migrations of the LevelDB store, run by `LevelStore.open` before anything
 * else reads the directory. Each step is idempotent (puts of the same keys), and the format
 * key is written last, so a migration stopped half way runs again at the next open.
 *
 * 1 → 2 (issue 18): rooms get a history log. What format 1 stored carries no times, so
 * each room's log starts at the migration: its base is the room's compacted state (or an
 * empty one), its entries the updates not yet compacted (their u: keys, unchanged), under
 * one mark with the migration's time. From then on "the room at T" is exact; before it,
 * versions answer as before. Nothing is copied: the migration writes two keys a room.
 *
 * Format 2, at every open (`repairLogs`): an older coedit (format 1) may have written the
 * directory since (a downgrade, then an upgrade): it appends updates without marks and its
 * compaction deletes updates the log kept. Nobody knows when those updates were stored, so
 * such a room's log restarts at this open, as at the migration: exact from now on, versions
 * before. Checked with a few reads a room (its base, state, first and last update, last mark).
 *
 * 2 → 3 (issue 17): a version may be stored as an alias of the room's compacted state
 * (`a:<room>`, see LevelStore.putVersion). Nothing to rewrite; the number changes so that a
 * coedit that knows only format 2 refuses the directory (STORE_FORMAT_NEWER) instead of
 * compacting over such a version's only copy.
 */
import type { Level } from 'level'
import { decodeState, prefixEnd, seqOfUpdateKey, unescapeRoom, updateKey, updatePrefix, stateKey } from './keys.js'
import { FORMAT_KEY, STORAGE_FORMAT, decodeLogBase, encodeLogBase, encodeMark, logBaseKey, markKey, markPrefix } from './log-keys.js'
import { EMPTY_STATE } from './store.js'
import { CoeditError } from '../errors.js'

const text = new TextEncoder()

/** The format of `db` (1 when unmarked); a newer one than this code knows is an error. */
async function formatOf(db: Level<string, Uint8Array>): Promise<number> {
  const value = await db.get(FORMAT_KEY)
  if (value === undefined) return 1
  const n = Number(new TextDecoder().decode(value))
  return Number.isInteger(n) && n >= 1 ? n : 1
}

/** A room whose history log `repairLogs` restarted. */
export interface RepairedLog {
  room: string
  /** The first update the old log did not cover (stored by an older coedit, time unknown). */
  from: number
  /** The instant the log is exact from again (the open). */
  at: number
}

export async function migrate(db: Level<string, Uint8Array>, now: number): Promise<{ from: number; rooms: number; repaired: RepairedLog[] }> {
  const from = await formatOf(db)
  if (from > STORAGE_FORMAT) {
    throw new CoeditError('STORE_FORMAT_NEWER', `this data directory has storage format ${from}; this coedit reads up to ${STORAGE_FORMAT} (upgrade coedit)`)
  }
  let rooms = 0
  if (from < STORAGE_FORMAT) {
    rooms = from < 2 ? await migrateToLog(db, now) : 0
    await db.put(FORMAT_KEY, text.encode(String(STORAGE_FORMAT)), { sync: true })
  }
  // A log made by the 1 → 2 step just now is sound by construction; any other may have been
  // written by an older coedit since (see the header).
  const repaired = from < 2 ? [] : await repairLogs(db, now)
  return { from, rooms, repaired }
}

/** 1 → 2: every room gets a history log (see above); returns how many rooms. */
async function migrateToLog(db: Level<string, Uint8Array>, now: number): Promise<number> {
  const rooms = new Set<string>()
  for (const range of [{ gt: 'm:', lt: 'm;' }, { gt: 's:', lt: 's;' }]) {
    for await (const key of db.keys(range)) rooms.add(unescapeRoom(key.slice(2)))
  }
  for await (const key of db.keys({ gt: 'u:', lt: 'u;' })) rooms.add(unescapeRoom(key.slice(2, key.lastIndexOf(':'))))
  for (const room of rooms) {
    const stored = await db.get(stateKey(room))
    const compacted = stored === undefined ? { upTo: 0, state: EMPTY_STATE } : decodeState(stored)
    const ops: Array<{ type: 'put'; key: string; value: Uint8Array }> = [
      { type: 'put', key: logBaseKey(room), value: encodeLogBase({ upTo: compacted.upTo, at: now, state: compacted.state }) },
    ]
    const prefix = updatePrefix(room)
    let lastSeq = compacted.upTo
    for await (const key of db.keys({ gt: prefix, lt: prefixEnd(prefix), reverse: true, limit: 1 })) lastSeq = Math.max(lastSeq, seqOfUpdateKey(key))
    if (lastSeq > compacted.upTo) {
      ops.push({ type: 'put', key: markKey(room, lastSeq), value: encodeMark(now, [{ count: lastSeq - compacted.upTo, user: undefined }]) })
    }
    await db.batch(ops, { sync: true })
  }
  return rooms.size
}

async function lastKey(db: Level<string, Uint8Array>, prefix: string): Promise<number> {
  for await (const key of db.keys({ gt: prefix, lt: prefixEnd(prefix), reverse: true, limit: 1 })) return seqOfUpdateKey(key)
  return 0
}

/**
 * Restarts the history log of every room an older coedit wrote to (see the header). A room
 * is sound when, past its log's base, its updates run unbroken from the base to its last
 * seq and the last mark covers that seq (appends mark every batch). An unmarked stretch in
 * the middle (left by a coedit of format 2 from before this check) is not caught here;
 * readLog reports it (`unmarked`) and stateAt then answers from versions only.
 */
export async function repairLogs(db: Level<string, Uint8Array>, now: number): Promise<RepairedLog[]> {
  const rooms = new Set<string>()
  for (const range of [{ gt: 'm:', lt: 'm;' }, { gt: 's:', lt: 's;' }, { gt: 'b:', lt: 'b;' }]) {
    for await (const key of db.keys(range)) rooms.add(key.slice(2))
  }
  const repaired: RepairedLog[] = []
  for (const escaped of rooms) {
    const room = unescapeRoom(escaped)
    const [b, s] = await db.getMany([logBaseKey(room), stateKey(room)])
    const baseUpTo = b === undefined ? 0 : decodeLogBase(b).upTo
    const compacted = s === undefined ? { upTo: 0, state: EMPTY_STATE } : decodeState(s)
    const lastUpdate = await lastKey(db, updatePrefix(room))
    const lastSeq = Math.max(compacted.upTo, lastUpdate)
    if (lastSeq <= baseUpTo) continue
    let first = 0
    for await (const key of db.keys({ gt: updateKey(room, baseUpTo), lt: prefixEnd(updatePrefix(room)), limit: 1 })) first = seqOfUpdateKey(key)
    const lastMark = await lastKey(db, markPrefix(room))
    if (first === baseUpTo + 1 && lastUpdate === lastSeq && lastMark === lastSeq) continue
    // The first seq the log does not cover: a gap right after the base, or past the last mark.
    const from = first !== baseUpTo + 1 ? baseUpTo + 1 : lastMark + 1
    const ops: Array<{ type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string }> = []
    for await (const key of db.keys({ gt: markPrefix(room), lt: prefixEnd(markPrefix(room)) })) ops.push({ type: 'del', key })
    // The compacted state holds these; the new log starts after them.
    for await (const key of db.keys({ gt: updatePrefix(room), lte: updateKey(room, compacted.upTo) })) ops.push({ type: 'del', key })
    ops.push({ type: 'put', key: logBaseKey(room), value: encodeLogBase({ upTo: compacted.upTo, at: now, state: compacted.state }) })
    if (lastUpdate > compacted.upTo) {
      ops.push({ type: 'put', key: markKey(room, lastUpdate), value: encodeMark(now, [{ count: lastUpdate - compacted.upTo, user: undefined }]) })
    }
    await db.batch(ops, { sync: true })
    repaired.push({ room, from, at: now })
  }
  return repaired
}
