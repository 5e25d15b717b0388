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
 * 2 → 3 (issue 17): a version may be stored as an alias of the room's compacted state
 * (`a:<room>`, see LevelStore.putVersion). Nothing to rewrite; the number changes so that a
 * coedit that knows only format 2 refuses the directory (STORE_FORMAT_NEWER) instead of
 * compacting over such a version's only copy.
 */
import type { Level } from 'level'
import { decodeState, prefixEnd, seqOfUpdateKey, unescapeRoom, updatePrefix, stateKey } from './keys.js'
import { FORMAT_KEY, STORAGE_FORMAT, encodeLogBase, encodeMark, logBaseKey, markKey } from './log-keys.js'
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

export async function migrate(db: Level<string, Uint8Array>, now: number): Promise<{ from: number; rooms: number }> {
  const from = await formatOf(db)
  if (from > STORAGE_FORMAT) {
    throw new CoeditError('STORE_FORMAT_NEWER', `this data directory has storage format ${from}; this coedit reads up to ${STORAGE_FORMAT} (upgrade coedit)`)
  }
  if (from === STORAGE_FORMAT) return { from, rooms: 0 }
  const rooms = from < 2 ? await migrateToLog(db, now) : 0
  await db.put(FORMAT_KEY, text.encode(String(STORAGE_FORMAT)), { sync: true })
  return { from, rooms }
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
