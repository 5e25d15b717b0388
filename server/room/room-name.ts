/**
 * Room names: the URL path of the WebSocket request without the leading slash and the
 * query string, `%XX` decoded where it is valid UTF-8 percent-encoding and taken
 * literally elsewhere (`/team%2Fnotes?x=1` is room `team/notes`, `/100%` is room `100%`,
 * as the reference server, which does not decode at all, would have it). One check
 * (`checkRoomName`) serves the WebSocket path and the admin API.
 */
import { CoeditError } from '../errors.js'
import { decodeRoomPath } from './room-path.js'

export { decodeRoomPath }

export const MAX_ROOM_NAME_LENGTH = 512

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * Characters refused in names because a terminal, a log viewer or a listing would act on
 * them or hide them: C0 and C1 controls and DEL; bidirectional overrides, embeddings,
 * isolates and marks (U+202E makes `txt.exe` print as `exe.txt`); line and paragraph
 * separators; invisible characters that make two names look the same (soft hyphen, zero
 * width space, word joiner and the invisible operators, BOM, interlinear annotations).
 * Zero-width (non-)joiners and variation selectors stay allowed: emoji and several
 * scripts need them.
 */
const UNSAFE_CHARACTER = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u200b\u200e\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff\ufff9-\ufffb]/

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
  return checkRoomName(decodeRoomPath(pathname.replace(/^\//, '')), maxLength, pattern)
}

/**
 * `pattern` (from --room-name-pattern) narrows the names further; it must match the whole
 * name. Names are still percent-encoded wherever they become a storage key.
 */
export function checkRoomName(room: string, maxLength = MAX_ROOM_NAME_LENGTH, pattern?: RegExp): ParsedRoom {
  if (room.length === 0) return { ok: false, error: 'room name is empty: connect to ws://host/<room>' }
  if (room.length > maxLength) return { ok: false, error: `room name is longer than ${maxLength} characters` }
  const unsafe = UNSAFE_CHARACTER.exec(room)
  if (unsafe) {
    const kind = /[\u0000-\u001f\u007f-\u009f]/.test(unsafe[0]) ? 'control characters' : 'invisible or bidirectional formatting characters'
    return { ok: false, error: `room name contains ${kind} (${escapeRoomName(unsafe[0])})` }
  }
  // A lone surrogate cannot be stored as UTF-8 and read back as the same name.
  if (LONE_SURROGATE.test(room)) return { ok: false, error: 'room name is not well-formed Unicode' }
  if (pattern && !pattern.test(room)) return { ok: false, error: `room name does not match ${pattern.source}` }
  return { ok: true, room }
}

const PRINT_ESCAPED = new RegExp(`${UNSAFE_CHARACTER.source}|${LONE_SURROGATE.source}`, 'g')

/**
 * A room name as it may be printed to a terminal: every character `checkRoomName` refuses,
 * and lone surrogates, written as `\xNN` (up to U+00FF) or `\u{XXXX}`. Names stored before
 * these characters were refused can still hold them. Other characters, backslashes
 * included, print as they are, so a listed name can be pasted back into a command.
 */
export function escapeRoomName(name: string): string {
  return name.replace(PRINT_ESCAPED, (c) => {
    const code = c.charCodeAt(0)
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16).toUpperCase()}}`
  })
}
