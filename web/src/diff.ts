/**
 * Turning "the text area went from `before` to `after`" into one minimal splice, and
 * moving indices through Yjs deltas. Pure functions, so the binding stays small.
 */

export interface Splice {
  index: number
  remove: number
  insert: string
}

const CHUNK = 1024

const isHigh = (c: number): boolean => c >= 0xd800 && c <= 0xdbff
const isLow = (c: number): boolean => c >= 0xdc00 && c <= 0xdfff

function commonPrefix(a: string, b: string, max: number): number {
  let i = 0
  // Chunked comparison first: a 1 MB document must not be walked char by char per keystroke.
  while (i + CHUNK <= max && a.slice(i, i + CHUNK) === b.slice(i, i + CHUNK)) i += CHUNK
  while (i < max && a.charCodeAt(i) === b.charCodeAt(i)) i++
  return i
}

function commonSuffix(a: string, b: string, max: number): number {
  let i = 0
  const al = a.length
  const bl = b.length
  while (i + CHUNK <= max && a.slice(al - i - CHUNK, al - i) === b.slice(bl - i - CHUNK, bl - i)) i += CHUNK
  while (i < max && a.charCodeAt(al - 1 - i) === b.charCodeAt(bl - 1 - i)) i++
  return i
}

/**
 * The smallest single splice turning `before` into `after`. `cursor` (the caret after
 * the change) breaks ties: typing "a" into "aa" at 1 is an insert at 1, not at 2, which
 * matters for where concurrent edits and remote carets end up. Never splits a surrogate pair.
 */
export function computeSplice(before: string, after: string, cursor: number): Splice | null {
  if (before === after) return null
  const minLen = Math.min(before.length, after.length)
  const fullPrefix = commonPrefix(before, after, minLen)
  let suffix = commonSuffix(before, after, minLen)
  let prefix = fullPrefix
  if (prefix + suffix >= minLen) {
    // Repeated text: any split keeping minLen characters is minimal; the caret picks one.
    const hinted = cursor >= 0 && cursor <= after.length ? after.length - cursor : suffix
    suffix = Math.max(minLen - fullPrefix, Math.min(suffix, hinted))
    prefix = minLen - suffix
  }
  if (prefix > 0 && isHigh(before.charCodeAt(prefix - 1))) prefix--
  if (suffix > 0 && isLow(before.charCodeAt(before.length - suffix))) suffix--
  return {
    index: prefix,
    remove: before.length - suffix - prefix,
    insert: after.slice(prefix, after.length - suffix),
  }
}

/** One op of a Y.Text delta (attributes are irrelevant to a plain text area). */
export type DeltaOp = { insert?: string | object; delete?: number; retain?: number }

/**
 * Where `index` lands after `delta`. An insertion exactly at `index` goes after it
 * (the local caret stays put when someone types at the same place), unless `after`.
 */
export function transformIndex(index: number, delta: readonly DeltaOp[], after = false): number {
  let oldPos = 0
  let newPos = 0
  for (const op of delta) {
    if (op.retain !== undefined) {
      if (index < oldPos + op.retain) break
      oldPos += op.retain
      newPos += op.retain
    } else if (op.insert !== undefined) {
      if (index === oldPos && !after) return newPos
      newPos += typeof op.insert === 'string' ? op.insert.length : 1
    } else if (op.delete !== undefined) {
      if (index < oldPos + op.delete) return newPos
      oldPos += op.delete
    }
  }
  return newPos + (index - oldPos)
}

/** Applies a delta to a string (used to keep the binding's shadow of the text area exact). */
export function applyDelta(text: string, delta: readonly DeltaOp[]): string {
  const parts: string[] = []
  let pos = 0
  for (const op of delta) {
    if (op.retain !== undefined) {
      parts.push(text.slice(pos, pos + op.retain))
      pos += op.retain
    } else if (op.insert !== undefined) {
      parts.push(typeof op.insert === 'string' ? op.insert : '')
    } else if (op.delete !== undefined) {
      pos += op.delete
    }
  }
  parts.push(text.slice(pos))
  return parts.join('')
}
