/**
 * Nesting depth of JSON text, measured without parsing it.
 *
 * JSON.parse accepts any depth, but JSON.stringify and y-protocols' deep equality recurse:
 * a state nested a few thousand deep overflows the stack on every later encode. So depth
 * is checked on the bytes before they are parsed, with one linear scan and no recursion.
 * Scanning UTF-8 bytes is exact: the ASCII bytes that matter (`[ { ] } " \`) never occur
 * inside a multi-byte sequence.
 */

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_ARRAY = 0x5b
const OPEN_OBJECT = 0x7b
const CLOSE_ARRAY = 0x5d
const CLOSE_OBJECT = 0x7d

/**
 * The deepest nesting of arrays and objects in `json` (0 for a scalar), or the first depth
 * above `stopAbove` once one is reached (the rest is not scanned). Brackets inside strings
 * do not count. On text that is not JSON the result is meaningless but still bounded by
 * the input's length; parse it afterwards to know whether it is JSON.
 */
export function jsonNestingDepth(json: Uint8Array, stopAbove = Infinity): number {
  let depth = 0
  let deepest = 0
  let inString = false
  for (let i = 0; i < json.length; i++) {
    const c = json[i]!
    if (inString) {
      // An escape's second byte (`\"`, `\\`) never ends the string.
      if (c === BACKSLASH) i++
      else if (c === QUOTE) inString = false
    } else if (c === QUOTE) {
      inString = true
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > deepest) {
        deepest = depth
        if (deepest > stopAbove) return deepest
      }
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--
    }
  }
  return deepest
}
