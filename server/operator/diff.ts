/**
 * `coedit diff` (issue 18): what changed in a room between two moments. Text: a unified
 * diff of one Y.Text (the `diff` package, Myers' algorithm, as `diff -u` prints it). JSON:
 * each root whose content differs, before and after, plus the unified diff of text roots.
 * Pure functions of Yjs states.
 */
import { createTwoFilesPatch } from 'diff'
import { CoeditError } from '../errors.js'
import { docToJson, exportDoc } from './doc-ops.js'
import { DEFAULT_TEXT_NAME } from '../room/protocol.js'
import { docFromUpdates } from '../room/yjs-log.js'

export const DIFF_FORMATS = ['text', 'json'] as const
export type DiffFormat = (typeof DIFF_FORMATS)[number]

/**
 * A diff of two large, very different texts costs O(N·D): past this the diff gives up
 * (DIFF_TOO_COSTLY) instead of holding the event loop (the admin API runs it in the server).
 */
const DIFF_TIMEOUT_MS = 5000

export interface DiffLabels {
  from: string
  to: string
}

/** A unified diff of `before` and `after`, headed by the labels ('' when they are equal). */
export function unifiedDiff(name: string, before: string, after: string, labels: DiffLabels): string {
  if (before === after) return ''
  const patch = createTwoFilesPatch(`${name}@${labels.from}`, `${name}@${labels.to}`, before, after, undefined, undefined, { context: 3, timeout: DIFF_TIMEOUT_MS })
  if (patch === undefined) throw new CoeditError('DIFF_TOO_COSTLY', `the two versions of "${name}" differ too much to diff within ${DIFF_TIMEOUT_MS / 1000} s`)
  // The first line ("====...") is for several files in one patch; one file needs none.
  return patch.replace(/^=+\n/, '')
}

/** The text of root `name` of a state; NOT_TEXT if that root holds something else. */
export function textOf(state: Uint8Array, name: string): string {
  const doc = docFromUpdates([state])
  try {
    // Yjs would read any untyped root as a Y.Text (a map's as ''): look at what it holds first.
    const value = docToJson(doc)[name]
    if (value !== undefined && typeof value !== 'string') throw new Error('it holds a map or an array')
    return new TextDecoder().decode(exportDoc(doc, 'text', name))
  } catch (err) {
    throw new CoeditError('NOT_TEXT', `root "${name}" is not a Y.Text (use --format json): ${(err as Error).message}`)
  } finally {
    doc.destroy()
  }
}

function jsonOf(state: Uint8Array): Record<string, unknown> {
  const doc = docFromUpdates([state])
  try {
    return docToJson(doc)
  } finally {
    doc.destroy()
  }
}

export interface JsonDiff {
  from: string
  to: string
  /** Roots whose content differs, by name; `patch` for text roots. */
  changed: Array<{ root: string; before: unknown; after: unknown; patch?: string }>
}

export function diffRoom(before: Uint8Array, after: Uint8Array, format: DiffFormat, textName = DEFAULT_TEXT_NAME, labels: DiffLabels): string {
  if (format === 'text') return unifiedDiff(textName, textOf(before, textName), textOf(after, textName), labels)
  const a = jsonOf(before)
  const b = jsonOf(after)
  const out: JsonDiff = { from: labels.from, to: labels.to, changed: [] }
  for (const root of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    if (JSON.stringify(a[root]) === JSON.stringify(b[root])) continue
    const patch = typeof a[root] === 'string' || typeof b[root] === 'string'
      ? unifiedDiff(root, typeof a[root] === 'string' ? a[root] : '', typeof b[root] === 'string' ? b[root] : '', labels)
      : undefined
    out.changed.push({ root, before: a[root] ?? null, after: b[root] ?? null, ...(patch === undefined ? {} : { patch }) })
  }
  return JSON.stringify(out, null, 2) + '\n'
}
