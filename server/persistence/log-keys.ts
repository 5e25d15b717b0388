/**
 * Keys of the history log (issue 18) in the LevelDB layout of keys.ts:
 *
 *   l:<room>:<seq>    one stored update: varuint at (ms), varstring user ('' = unknown), the update
 *   b:<room>          the log's folded prefix: varuint upTo, varuint at (exact from), the state
 *   !format           the storage format version, as decimal text (absent: version 1)
 *
 * seq is 16 hex digits, as in u: keys. Format 1 (no history log) is migrated at open.
 */
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { escapeRoom } from './keys.js'
import type { LogBase, LogEntry } from './store.js'

/** The format this code writes: 2 added the history log (l:, b:) and `pinned` versions. */
export const STORAGE_FORMAT = 2
export const FORMAT_KEY = '!format'

export const logPrefix = (room: string): string => `l:${escapeRoom(room)}:`
export const logKey = (room: string, seq: number): string => logPrefix(room) + seq.toString(16).padStart(16, '0')
export const logBaseKey = (room: string): string => `b:${escapeRoom(room)}`

export function encodeLogEntry(at: number, user: string | undefined, update: Uint8Array): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, at)
  encoding.writeVarString(e, user ?? '')
  encoding.writeUint8Array(e, update)
  return encoding.toUint8Array(e)
}

export function decodeLogEntry(seq: number, value: Uint8Array): LogEntry {
  const d = decoding.createDecoder(value)
  const at = decoding.readVarUint(d)
  const user = decoding.readVarString(d)
  return { seq, at, user: user === '' ? undefined : user, update: value.subarray(d.pos) }
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
