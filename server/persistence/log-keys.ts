/**
 * Keys of the history log (issue 18) in the LevelDB layout of keys.ts. The log's updates
 * are the u: keys themselves: compaction deletes them only once the log has folded them
 * (so one put per update, not two); their times and users are marks, one per room per
 * write batch:
 *
 *   t:<room>:<seq>    the updates up to seq (count = the runs' sum) were stored at `at`:
 *                     varuint at, varuint run count, each: varuint count, varstring user ('' = unknown)
 *   b:<room>          the log's folded prefix: varuint upTo, varuint at (exact from), the state
 *   !format           the storage format version, as decimal text (absent: version 1)
 *
 * seq is 16 hex digits, as in u: keys. Format 1 (no history log) is migrated at open.
 */
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { escapeRoom } from './keys.js'
import type { LogBase } from './store.js'

/** The format this code writes: 2 added the history log (t:, b:, u: kept until folded) and `pinned` versions, 3 versions stored as the compacted state (a:). */
export const STORAGE_FORMAT = 3
export const FORMAT_KEY = '!format'

export const markPrefix = (room: string): string => `t:${escapeRoom(room)}:`
export const markKey = (room: string, seq: number): string => markPrefix(room) + seq.toString(16).padStart(16, '0')
export const logBaseKey = (room: string): string => `b:${escapeRoom(room)}`

/** Consecutive updates of one user (undefined: unknown) within a mark. */
export interface Run {
  count: number
  user: string | undefined
}

export interface Mark {
  /** The last seq it covers; it covers `total` seqs up to it. */
  seq: number
  at: number
  runs: Run[]
  total: number
}

export function encodeMark(at: number, runs: readonly Run[]): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, at)
  encoding.writeVarUint(e, runs.length)
  for (const r of runs) {
    encoding.writeVarUint(e, r.count)
    encoding.writeVarString(e, r.user ?? '')
  }
  return encoding.toUint8Array(e)
}

export function decodeMark(seq: number, value: Uint8Array): Mark {
  const d = decoding.createDecoder(value)
  const at = decoding.readVarUint(d)
  const n = decoding.readVarUint(d)
  const runs: Run[] = []
  let total = 0
  for (let i = 0; i < n; i++) {
    const count = decoding.readVarUint(d)
    const user = decoding.readVarString(d)
    runs.push({ count, user: user === '' ? undefined : user })
    total += count
  }
  return { seq, at, runs, total }
}

/** The user of update `seq` under `mark` (which covers it). */
export function userAt(mark: Mark, seq: number): string | undefined {
  let offset = seq - (mark.seq - mark.total) - 1
  for (const r of mark.runs) {
    if (offset < r.count) return r.user
    offset -= r.count
  }
  return undefined
}

/** Adds `count` updates of `user` to `runs`, merging with the last run of the same user. */
export function addRun(runs: Run[], count: number, user: string | undefined): void {
  const last = runs[runs.length - 1]
  if (last && last.user === user) last.count += count
  else runs.push({ count, user })
}

export function encodeLogBase(base: LogBase): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, base.upTo)
  encoding.writeVarUint(e, base.at)
  encoding.writeUint8Array(e, base.state)
  return encoding.toUint8Array(e)
}

export function decodeLogBase(value: Uint8Array): LogBase {
  const d = decoding.createDecoder(value)
  const upTo = decoding.readVarUint(d)
  const at = decoding.readVarUint(d)
  return { upTo, at, state: value.subarray(d.pos) }
}
