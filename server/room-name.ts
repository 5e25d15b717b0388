/**
 * Room names: the URL path of the WebSocket request without the leading slash and the
 * query string, `%XX` decoded where it is valid UTF-8 percent-encoding and taken
 * literally elsewhere (`/team%2Fnotes?x=1` is room `team/notes`, `/100%` is room `100%`,
 * as the reference server, which does not decode at all, would have it). One check
 * (`checkRoomName`) serves the WebSocket path and the admin API.
 */
import { CoeditError } from './errors.js'

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

const PERCENT_RUN = /(?:%[0-9a-fA-F]{2})+/g
// ignoreBOM keeps a leading U+FEFF in the name (for the check to see), instead of dropping it.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * Decodes each `%XX` sequence that spells a valid UTF-8 character; a `%` that does not
 * start one (`100%`, `50%off`, a lone `%FF`) is kept as it is. Never throws.
 */
export function decodeRoomPath(text: string): string {
  return text.replace(PERCENT_RUN, (run) => {
    const bytes = Uint8Array.from({ length: run.length / 3 }, (_, i) => parseInt(run.slice(i * 3 + 1, i * 3 + 3), 16))
    let out = ''
    let i = 0
    while (i < bytes.length) {
      const n = sequenceLength(bytes[i]!)
      const char = n > 0 && i + n <= bytes.length ? decodeUtf8(bytes.subarray(i, i + n)) : undefined
      if (char === undefined) {
        out += run.slice(i * 3, i * 3 + 3)
        i++
      } else {
        out += char
        i += n
      }
    }
    return out
  })
}

/** The length of the UTF-8 sequence a lead byte starts; 0 for a byte that cannot lead one. */
function sequenceLength(lead: number): number {
  if (lead < 0x80) return 1
  if (lead >= 0xc2 && lead <= 0xdf) return 2
  if (lead >= 0xe0 && lead <= 0xef) return 3
  if (lead >= 0xf0 && lead <= 0xf4) return 4
  return 0
}

function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    // fatal: overlong forms, surrogates and bad continuation bytes throw.
    return utf8.decode(bytes)
  } catch {
    return undefined
  }
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
