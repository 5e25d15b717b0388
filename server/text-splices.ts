/**
 * The few splices that turn one text into another, for replacing a Y.Text's content without
 * rewriting it (`POST /api/rooms/ROOM/text`): what both texts share keeps its Yjs items, so
 * a client's concurrent edit in an unchanged part stays where it was made, and carets and
 * formatting there survive. Pure functions of strings; indices are UTF-16 code units, as
 * Y.Text counts them, and a splice never cuts a surrogate pair.
 */
import { diffChars } from 'diff'

export interface Splice {
  /** Where in the old text (before any splice). */
  readonly index: number
  /** Code units of the old text removed there. */
  readonly remove: number
  readonly insert: string
}

/**
 * Myers' diff costs O((N + M) · D) for D edits: past this many steps of work the middle
 * part is replaced as one splice instead (deterministic, unlike a time limit).
 */
const DIFF_BUDGET = 20_000_000
/** Edits the diff looks for at most, however short the texts. */
const MAX_EDITS = 1000

/**
 * Characters kept between two changes are folded into one splice below this length: a
 * word replaced by another ("Ada" → "Grace") is one splice, not one per shared letter.
 */
const MERGE_GAP = 4

const isHigh = (code: number): boolean => code >= 0xd800 && code <= 0xdbff
const isLow = (code: number): boolean => code >= 0xdc00 && code <= 0xdfff

/** Splices, in increasing index order, that turn `before` into `after` (none if equal). */
export function textSplices(before: string, after: string): Splice[] {
  if (before === after) return []
  let start = 0
  const shortest = Math.min(before.length, after.length)
  while (start < shortest && before.charCodeAt(start) === after.charCodeAt(start)) start++
  // Never between the halves of a surrogate pair.
  if (start > 0 && isHigh(before.charCodeAt(start - 1))) start--
  let end = 0
  while (end < shortest - start && before.charCodeAt(before.length - 1 - end) === after.charCodeAt(after.length - 1 - end)) end++
  if (end > 0 && isLow(before.charCodeAt(before.length - end))) end--
  const oldMiddle = before.slice(start, before.length - end)
  const newMiddle = after.slice(start, after.length - end)
  const whole: Splice[] = [{ index: start, remove: oldMiddle.length, insert: newMiddle }]
  if (oldMiddle.length === 0 || newMiddle.length === 0) return whole
  const size = oldMiddle.length + newMiddle.length
  const maxEditLength = Math.min(MAX_EDITS, Math.floor(DIFF_BUDGET / size))
  if (maxEditLength < 2) return whole
  const changes = diffChars(oldMiddle, newMiddle, { maxEditLength })
  if (!changes) return whole
  const splices: Splice[] = []
  let at = start
  let current: { index: number; remove: number; insert: string } | undefined
  for (const [i, change] of changes.entries()) {
    if (!change.added && !change.removed && current && i < changes.length - 1 && change.value.length < MERGE_GAP) {
      // A few characters kept between two changes: one splice reads better than three.
      current.remove += change.value.length
      current.insert += change.value
      at += change.value.length
      continue
    }
    if (!change.added && !change.removed) {
      if (current) splices.push(current)
      current = undefined
      at += change.value.length
      continue
    }
    current ??= { index: at, remove: 0, insert: '' }
    if (change.removed) {
      current.remove += change.value.length
      at += change.value.length
    } else {
      current.insert += change.value
    }
  }
  if (current) splices.push(current)
  return splices
}

/** `text` with `splices` (from textSplices) applied: what a Y.Text holds after them. */
export function applySplices(text: string, splices: readonly Splice[]): string {
  let out = ''
  let at = 0
  for (const s of splices) {
    out += text.slice(at, s.index) + s.insert
    at = s.index + s.remove
  }
  return out + text.slice(at)
}

/** Applies `splices` to a Y.Text-like target, last first, so that each index is still the old text's. */
export function spliceInto(target: { delete(index: number, length: number): void; insert(index: number, text: string): void }, splices: readonly Splice[]): void {
  for (let i = splices.length - 1; i >= 0; i--) {
    const s = splices[i]!
    if (s.remove > 0) target.delete(s.index, s.remove)
    if (s.insert.length > 0) target.insert(s.index, s.insert)
  }
}
