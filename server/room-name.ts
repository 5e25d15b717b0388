/**
 * Room names: the URL path of the WebSocket request, percent-decoded, without the
 * leading slash and without the query string (`/team%2Fnotes?x=1` is room `team/notes`).
 */
import { CoeditError } from './errors.js'

export const MAX_ROOM_NAME_LENGTH = 512

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Compiles --room-name-pattern so that it must match the whole name. */
export function roomNamePattern(source: string): RegExp | undefined {
  if (!source) return undefined
  try {
    return new RegExp(`^(?:${source})$`, 'u')
  } catch (err) {
    throw new CoeditError('BAD_ROOM_NAME_PATTERN', `--room-name-pattern: ${(err as Error).message}`)
  }
}

export type ParsedRoom = { ok: true; room: string } | { ok: false; error: string }

export function parseRoomPath(pathname: string, maxLength = MAX_ROOM_NAME_LENGTH, pattern?: RegExp): ParsedRoom {
  let room: string
  try {
    room = decodeURIComponent(pathname.replace(/^\//, ''))
  } catch {
    return { ok: false, error: 'room name is not valid percent-encoding' }
  }
  return checkRoomName(room, maxLength, pattern)
}

/**
 * `pattern` (from --room-name-pattern) narrows the names further; it must match the whole
 * name. Names are still percent-encoded wherever they become a storage key.
 */
export function checkRoomName(room: string, maxLength = MAX_ROOM_NAME_LENGTH, pattern?: RegExp): ParsedRoom {
  if (room.length === 0) return { ok: false, error: 'room name is empty: connect to ws://host/<room>' }
  if (room.length > maxLength) return { ok: false, error: `room name is longer than ${maxLength} characters` }
  // Control characters have no business in a name and make logs and listings ambiguous.
  if (/[\u0000-\u001f\u007f]/.test(room)) return { ok: false, error: 'room name contains control characters' }
  // A lone surrogate cannot be stored as UTF-8 and read back as the same name.
  if (LONE_SURROGATE.test(room)) return { ok: false, error: 'room name is not well-formed Unicode' }
  if (pattern && !pattern.test(room)) return { ok: false, error: `room name does not match ${pattern.source}` }
  return { ok: true, room }
}
