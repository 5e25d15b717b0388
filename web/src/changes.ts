/**
 * What changed in the text since a moment of its history, for the history panel: the text
 * as it was, cut into what is still there, what is gone since, and what was added since.
 * Pure, so it runs (and is tested) without a browser.
 *
 * Bounded: the common start and end are cut off first (linear, as for every keystroke,
 * see diff.ts); only the part in between is diffed word by word (Myers, O(N·D)), and only
 * when it is at most `maxChars` characters and the diff finishes within `timeout` ms.
 * Past that the panel shows the text as it was, without highlights, and says why.
 */
import { diffWordsWithSpace } from 'diff/lib/diff/word.js'
import { computeSplice } from './diff.js'

export type SegmentKind = 'same' | 'gone' | 'added'

export interface Segment {
  /** same: in both; gone: in the old text only (changed since); added: in the current text only. */
  kind: SegmentKind
  text: string
}

export type Changes =
  | { ok: true; segments: Segment[] }
  /** Too costly to diff here: `changed` characters differ (both sides together). */
  | { ok: false; changed: number }

export interface ChangeLimits {
  maxChars: number
  timeout: number
}

export const DEFAULT_CHANGE_LIMITS: ChangeLimits = { maxChars: 50_000, timeout: 1000 }

function push(out: Segment[], kind: SegmentKind, text: string): void {
  if (text.length === 0) return
  const last = out[out.length - 1]
  if (last && last.kind === kind) last.text += text
  else out.push({ kind, text })
}

/** The old text `then`, with what differs from `now` marked (see Segment). */
export function changesSince(then: string, now: string, limits: ChangeLimits = DEFAULT_CHANGE_LIMITS): Changes {
  const splice = computeSplice(then, now, -1)
  if (!splice) return { ok: true, segments: then.length > 0 ? [{ kind: 'same', text: then }] : [] }
  const changed = splice.remove + splice.insert.length
  if (changed > limits.maxChars) return { ok: false, changed }
  const before = then.slice(splice.index, splice.index + splice.remove)
  const parts = diffWordsWithSpace(before, splice.insert, { timeout: limits.timeout })
  if (!parts) return { ok: false, changed }
  const out: Segment[] = []
  push(out, 'same', then.slice(0, splice.index))
  for (const part of parts) push(out, part.added ? 'added' : part.removed ? 'gone' : 'same', part.value)
  push(out, 'same', then.slice(splice.index + splice.remove))
  return { ok: true, segments: out }
}

/** The text as it was: what `changesSince` marked, without the additions since. */
export function textThen(segments: readonly Segment[]): string {
  return segments.filter((s) => s.kind !== 'added').map((s) => s.text).join('')
}

/** The text now: what `changesSince` marked, without what is gone since. */
export function textNow(segments: readonly Segment[]): string {
  return segments.filter((s) => s.kind !== 'gone').map((s) => s.text).join('')
}
