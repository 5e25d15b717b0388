/**
 * Prints names safely on a terminal. A room name comes from whoever connected first, and
 * a data directory or backup may hold names the server's checks of today would refuse:
 * printed raw, C1 controls (U+009B is a CSI on many terminals), bidirectional overrides
 * (U+202E turns `txt.exe` into what reads as `exe.txt`) or invisible characters could
 * rewrite the screen or pass one name off as another.
 */

// Controls (C0, DEL, C1), bidirectional marks, embeddings, overrides and isolates, line and
// paragraph separators, zero-width space and BOM, and halves of a surrogate pair standing alone.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]|[\ud800-\udfff]/u
const UNSAFE_ALL = new RegExp(UNSAFE.source, 'gu')
// JSON.stringify escapes C0 controls in strings itself; the layout's own newlines must stay.
const UNSAFE_IN_JSON = new RegExp(UNSAFE.source.replace('\\u0000-\\u001f', ''), 'gu')
const hex = (ch: string): string => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`

/** `name` with every unsafe character as a `\uXXXX` escape; a backslash is doubled so an escape cannot be forged. */
export function printable(name: string): string {
  return name.replace(/\\/g, '\\\\').replace(UNSAFE_ALL, hex)
}

/** Text of several lines (an error message) made printable line by line. */
export function printableLines(text: string): string {
  return text.split('\n').map(printable).join('\n')
}

/**
 * JSON for a terminal: JSON.stringify leaves C1 controls and bidi characters raw; as
 * `\uXXXX` escapes they are still the same JSON string to any parser.
 */
export function printableJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(UNSAFE_IN_JSON, hex)
}

