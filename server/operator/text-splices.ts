/**
 * The few splices that turn one text into another, for replacing a Y.Text's content without
 * rewriting it (`POST /api/rooms/ROOM/text`): what both texts share keeps its Yjs items, so
 * a client's concurrent edit in an unchanged part stays where it was made, and carets and
 * formatting there survive. Pure functions of strings; indices are UTF-16 code units, as
 * Y.Text counts them, and a splice never cuts a surrogate pair.
 *
 * How: the common start and end are kept; what lies between is diffed by character (the
 * `diff` package, Myers' algorithm) when it is short, else by line first and each changed
 * run of lines by character. Diffing costs time quadratic in the number of edits, so each
 * diff looks for at most MAX_EDITS edits and all of them together get WORK_BUDGET_MS: past
 * either, a part is replaced as one splice instead (still exact, only coarser).
 */
import { diffChars, diffLines, type ChangeObject } from 'diff'

export interface Splice {
  /** Where in the old text (before any splice). */
  readonly index: number
  /** Code units of the old text removed there. */
  readonly remove: number
  readonly insert: string
}

/** Both parts together, in code units: up to this a part is diffed by character, beyond it by line. */
const CHAR_DIFF_MAX = 20_000
/**
 * Beyond these (both parts together) the part is replaced whole: splitting into lines
 * alone would take longer than the budget (20,000 lines: 30-100 ms here, loaded).
 */
const LINE_DIFF_MAX = 2_000_000
const LINE_DIFF_MAX_LINES = 20_000
/** Edits one diff looks for at most (about 50 ms at worst by character here). */
const MAX_EDITS = 300
/** Time all the diffs of one call may take together: the event loop is not held longer. */
const WORK_BUDGET_MS = 100
/**
 * Characters kept between two changes are folded into one splice below this length: a
 * word replaced by another ("Ada" → "Grace") is one splice, not one per shared letter.
 */
const MERGE_GAP = 4

const isHigh = (code: number): boolean => code >= 0xd800 && code <= 0xdbff
const isLow = (code: number): boolean => code >= 0xdc00 && code <= 0xdfff

/** Splices, in increasing index order, that turn `before` into `after` (none if equal). */
export function textSplices(before: string, after: string): Splice[] {
  return splicesAt(before, after, 0, Date.now() + WORK_BUDGET_MS, true)
}

function splicesAt(before: string, after: string, offset: number, deadline: number, byLine: boolean): Splice[] {
  if (before === after) return []
  let start = 0
  const shortest = Math.min(before.length, after.length)
  while (start < shortest && before.charCodeAt(start) === after.charCodeAt(start)) start++
  // Never between the halves of a surrogate pair.
  if (start > 0 && isHigh(before.charCodeAt(start - 1))) start--
  let end = 0
  while (end < shortest - start && before.charCodeAt(before.length - 1 - end) === after.charCodeAt(after.length - 1 - end)) end++
  if (end > 0 && isLow(before.charCodeAt(before.length - end))) end--
  const oldPart = before.slice(start, before.length - end)
  const newPart = after.slice(start, after.length - end)
  const index = offset + start
  const whole: Splice[] = [{ index, remove: oldPart.length, insert: newPart }]
  const size = oldPart.length + newPart.length
  const timeout = deadline - Date.now()
  if (oldPart.length === 0 || newPart.length === 0 || timeout <= 0) return whole
  if (size <= CHAR_DIFF_MAX) {
    const changes = diffChars(oldPart, newPart, { maxEditLength: MAX_EDITS, timeout })
    return changes ? spliceRuns(changes, index, MERGE_GAP) : whole
  }
  if (!byLine || size > LINE_DIFF_MAX || linesOver(oldPart, newPart, LINE_DIFF_MAX_LINES)) return whole
  const lines = diffLines(oldPart, newPart, { maxEditLength: MAX_EDITS, timeout })
  if (!lines) return whole
  // Each changed run of lines, refined by character (it has no common start or end of lines
  // with its counterpart, but may share characters).
  return spliceRuns(lines, index, 0).flatMap((run) => splicesAt(before.slice(run.index - offset, run.index - offset + run.remove), run.insert, run.index, deadline, false))
}

/** Whether `a` and `b` have more than `max` lines together (counted no further than that). */
function linesOver(a: string, b: string, max: number): boolean {
  let lines = 2
  for (const text of [a, b]) {
    for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', at + 1)) if (++lines > max) return true
  }
  return false
}

/**
 * The runs of removed and added tokens as splices at `index` onwards; kept runs shorter than
 * `mergeGap` between two changes are folded into one splice.
 */
function spliceRuns(changes: ReadonlyArray<ChangeObject<string>>, index: number, mergeGap: number): Splice[] {
  const splices: Splice[] = []
  let at = index
  let current: { index: number; remove: number; insert: string } | undefined
  for (const [i, change] of changes.entries()) {
    const kept = !change.added && !change.removed
    if (kept && current && i < changes.length - 1 && change.value.length < mergeGap) {
      current.remove += change.value.length
      current.insert += change.value
      at += change.value.length
      continue
    }
    if (kept) {
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
