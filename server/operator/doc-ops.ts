/**
 * Document operations of the operator tools, shared by the offline CLI and the admin
 * API: export as text/JSON, imports and reverts computed as new updates on top of a
 * room's current state (so they merge like any client edit), and time specs.
 * Pure functions of Yjs states: no storage, no network.
 */
import * as Y from 'yjs'
import { durationMs } from './duration.js'
import { CoeditError } from '../errors.js'
import { DEFAULT_TEXT_NAME } from '../room/protocol.js'
import { docFromUpdates, tooDeep } from '../room/yjs-log.js'
import { validateUpdate } from '../room/update-checks.js'
import type { VersionInfo } from '../persistence/store.js'

export const EXPORT_FORMATS = ['text', 'json', 'update'] as const
export type ExportFormat = (typeof EXPORT_FORMATS)[number]
export const IMPORT_FORMATS = ['update', 'text', 'json'] as const
export type ImportFormat = (typeof IMPORT_FORMATS)[number]

export function exportDoc(doc: Y.Doc, format: ExportFormat, textName = DEFAULT_TEXT_NAME): Uint8Array {
  try {
    return exportAs(doc, format, textName)
  } catch (err) {
    throw tooDeep(err)
  }
}

function exportAs(doc: Y.Doc, format: ExportFormat, textName: string): Uint8Array {
  switch (format) {
    case 'update':
      return Y.encodeStateAsUpdate(doc)
    case 'text':
      return new TextEncoder().encode(readRoot(doc, textName, 'text') as string)
    case 'json':
      return new TextEncoder().encode(JSON.stringify(docToJson(doc), null, 2) + '\n')
  }
}

export type RootKind = 'text' | 'map' | 'array' | 'xml'

/**
 * What a root type is: an update does not say, so this looks at its content. Must run
 * before anything calls `doc.get(name, Constructor)` on the same document.
 */
// YEvent<any>: the element type of `doc.share`.
function rootKind(type: Y.AbstractType<Y.YEvent<any>>): RootKind | undefined {
  if (type instanceof Y.Text) return 'text'
  if (type instanceof Y.Map) return 'map'
  if (type instanceof Y.Array) return 'array'
  if (type instanceof Y.XmlFragment) return 'xml'
  let sawType = false
  for (let item = type._start; item !== null; item = item.right) {
    const content = item.content
    if (content instanceof Y.ContentString || content instanceof Y.ContentFormat || content instanceof Y.ContentEmbed) return 'text'
    if (content instanceof Y.ContentType) {
      if (content.type instanceof Y.XmlElement || content.type instanceof Y.XmlText) return 'xml'
      sawType = true
    }
    if (content instanceof Y.ContentAny || content instanceof Y.ContentBinary || content instanceof Y.ContentJSON) return 'array'
  }
  if (sawType) return 'array'
  if (type._map.size > 0) return 'map'
  return undefined
}

/** What root `name` of `doc` holds, told from its content; undefined if absent or empty. */
export function rootKindOf(doc: Y.Doc, name: string): RootKind | undefined {
  const type = doc.share.get(name)
  return type === undefined ? undefined : rootKind(type)
}

// any: each root type has its own event type; the UndoManager takes any of them.
function typedRoot(doc: Y.Doc, name: string, kind: RootKind): Y.AbstractType<any> {
  switch (kind) {
    case 'text': return doc.getText(name)
    case 'map': return doc.getMap(name)
    case 'array': return doc.getArray(name)
    case 'xml': return doc.getXmlFragment(name)
  }
}

function readRoot(doc: Y.Doc, name: string, kind: RootKind): unknown {
  switch (kind) {
    case 'text': return doc.getText(name).toString()
    case 'map': return doc.getMap(name).toJSON()
    case 'array': return doc.getArray(name).toJSON()
    case 'xml': return doc.getXmlFragment(name).toString()
  }
}

/** The whole document as JSON: text as a string, maps as objects, arrays as arrays, XML as its markup. */
export function docToJson(doc: Y.Doc): Record<string, unknown> {
  const kinds = [...doc.share].map(([name, type]) => [name, rootKind(type)] as const)
  const out: Record<string, unknown> = {}
  for (const [name, kind] of kinds.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (kind !== undefined) out[name] = readRoot(doc, name, kind)
  }
  return out
}

/** Runs `change` on a copy of `current` and returns the update it made (empty if none). */
function changeAsUpdate(current: Uint8Array, change: (doc: Y.Doc) => void): Uint8Array {
  const doc = docFromUpdates([current])
  const made: Uint8Array[] = []
  doc.on('update', (update: Uint8Array) => made.push(update))
  try {
    doc.transact(() => change(doc))
    return made.length === 0 ? new Uint8Array([0, 0]) : Y.mergeUpdates(made)
  } finally {
    doc.destroy()
  }
}

/** Replaces a Y.Text's content by `text`, touching only the part that differs. */
function setText(type: Y.Text, text: string): void {
  const old = type.toString()
  if (old === text) return
  let start = 0
  while (start < old.length && start < text.length && old[start] === text[start]) start++
  let end = 0
  while (end < old.length - start && end < text.length - start && old[old.length - 1 - end] === text[text.length - 1 - end]) end++
  if (old.length - start - end > 0) type.delete(start, old.length - start - end)
  if (text.length - start - end > 0) type.insert(start, text.slice(start, text.length - end))
}

/**
 * The update an import makes on top of `current`: an update file is merged as is; text
 * replaces the shared text; JSON sets each root it names (strings → text, objects → map,
 * arrays → array). Throws BAD_FILE (changing nothing) for input that is not what it says.
 */
/** A Yjs v1 update with no structs and no deletions. */
const EMPTY_UPDATE = new Uint8Array([0, 0])

export function importUpdate(current: Uint8Array, body: Uint8Array, format: ImportFormat, textName = DEFAULT_TEXT_NAME): Uint8Array {
  switch (format) {
    case 'update': {
      // Only what the room lacks: importing the same file twice then changes nothing and
      // says so (a migration re-run, an import retried after a timeout). Applying it to the
      // room's state is also the real validity test (decodeUpdate accepts some truncated input).
      let doc: Y.Doc | undefined
      try {
        validateUpdate(body)
        doc = docFromUpdates([current])
        let missing: Uint8Array | undefined
        // Yjs emits exactly the structs it integrated and the ranges it newly deleted.
        doc.on('update', (u: Uint8Array) => { missing = missing ? Y.mergeUpdates([missing, u]) : u })
        Y.applyUpdate(doc, body)
        // Structs waiting beyond a clock gap are in no event: keep the file whole for them.
        if (doc.store.pendingStructs !== null || doc.store.pendingDs !== null) return body
        return missing ?? EMPTY_UPDATE
      } catch (err) {
        throw new CoeditError('BAD_FILE', `not a Yjs update: ${(err as Error).message}`)
      } finally {
        doc?.destroy()
      }
    }
    case 'text': {
      const text = decodeUtf8(body)
      return changeAsUpdate(current, (doc) => setText(doc.getText(textName), text))
    }
    case 'json': {
      let value: unknown
      try {
        value = JSON.parse(decodeUtf8(body))
      } catch (err) {
        throw new CoeditError('BAD_FILE', `not JSON: ${(err as Error).message}`)
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new CoeditError('BAD_FILE', 'a JSON import must be an object of root types, as `export --format json` writes it')
      }
      const roots = Object.entries(value as Record<string, unknown>)
      const existing = docFromUpdates([current])
      const kinds = new Map([...existing.share].map(([name, type]) => [name, rootKind(type)]))
      existing.destroy()
      for (const [name, v] of roots) {
        const want: RootKind | undefined = typeof v === 'string' ? 'text' : Array.isArray(v) ? 'array' : v !== null && typeof v === 'object' ? 'map' : undefined
        if (!want) throw new CoeditError('BAD_FILE', `root "${name}" must be a string, an object or an array`)
        const have = kinds.get(name)
        if (have !== undefined && have !== want) throw new CoeditError('BAD_FILE', `root "${name}" is a ${have} in the room, not a ${want}`)
      }
      return changeAsUpdate(current, (doc) => {
        for (const [name, v] of roots) {
          if (typeof v === 'string') {
            setText(doc.getText(name), v)
          } else if (Array.isArray(v)) {
            const array = doc.getArray(name)
            array.delete(0, array.length)
            array.insert(0, v)
          } else {
            const map = doc.getMap(name)
            const entries = Object.entries(v as Record<string, unknown>)
            for (const key of [...map.keys()]) if (!(key in (v as object))) map.delete(key)
            for (const [key, item] of entries) {
              if (JSON.stringify(map.get(key)) !== JSON.stringify(item)) map.set(key, item)
            }
          }
        }
      })
    }
  }
}

function decodeUtf8(body: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(body)
  } catch {
    throw new CoeditError('BAD_FILE', 'not UTF-8 text')
  }
}

const TRACKED = Symbol('changes since the version')

/**
 * The update that turns `current` back into the content of `old` (a version of the same
 * room), as a new change on top of `current`: the changes made since `old` are undone
 * with a Y.UndoManager. Because it deletes what was added since (rather than rewinding),
 * a client that still holds that content cannot bring it back: deletions win in a merge.
 */
export function computeRevert(current: Uint8Array, old: Uint8Array): Uint8Array {
  // Already that content: undoing and redoing the same text would only churn.
  if (sameJson(current, old)) return new Uint8Array([0, 0])
  // Roots that exist now but not in the old version must be in scope too; and each must
  // have its real type: the UndoManager only sees changes to typed roots.
  const scratch = docFromUpdates([old, current])
  const kinds = [...scratch.share].map(([name, type]) => [name, rootKind(type)] as const)
  scratch.destroy()
  // gc off: undoing a deletion needs the deleted content.
  const doc = docFromUpdates([old], false)
  try {
    const scope = kinds.flatMap(([name, kind]) => (kind === undefined ? [] : [typedRoot(doc, name, kind)]))
    const undo = new Y.UndoManager(scope, { trackedOrigins: new Set([TRACKED]), captureTimeout: Number.POSITIVE_INFINITY })
    Y.applyUpdate(doc, current, TRACKED)
    const made: Uint8Array[] = []
    doc.on('update', (update: Uint8Array) => made.push(update))
    while (undo.canUndo()) undo.undo()
    undo.destroy()
    return made.length === 0 ? new Uint8Array([0, 0]) : Y.mergeUpdates(made)
  } finally {
    doc.destroy()
  }
}

/** Same content as JSON (the state vectors may differ). */
export function sameJson(a: Uint8Array, b: Uint8Array): boolean {
  const da = docFromUpdates([a])
  const db = docFromUpdates([b])
  try {
    return JSON.stringify(docToJson(da)) === JSON.stringify(docToJson(db))
  } finally {
    da.destroy()
    db.destroy()
  }
}

/** True if `state` contains every insertion of `part` (merging `part` would add nothing). */
export function containsState(state: Uint8Array, part: Uint8Array): boolean {
  const missing = Y.decodeUpdate(Y.diffUpdate(part, Y.encodeStateVectorFromUpdate(state))).structs.filter((s) => !(s instanceof Y.Skip))
  if (missing.length === 0) return true
  // Structs beyond a clock gap (pending in a document) are past the state vector: look them up.
  const held = new Map<number, Array<[number, number]>>()
  for (const s of Y.decodeUpdate(state).structs) {
    if (s instanceof Y.Skip) continue
    const ranges = held.get(s.id.client) ?? []
    ranges.push([s.id.clock, s.id.clock + s.length])
    held.set(s.id.client, ranges)
  }
  return missing.every((s) => held.get(s.id.client)?.some(([from, to]) => from <= s.id.clock && s.id.clock + s.length <= to) === true)
}

/**
 * True if two updates hold the same items and the same deletions, compared as updates: no
 * document is built. Two integrations of the same structs need not agree (forged origins
 * that contradict each other order concurrent inserts by integration order; Yjs can leave
 * a chain pending in one and not the other), so "the store holds what the backup holds"
 * is asked of the bytes, not of one reading of them.
 */
export function sameUpdate(a: Uint8Array, b: Uint8Array): boolean {
  if (Buffer.from(a).equals(Buffer.from(b))) return true
  return containsState(a, b) && containsState(b, a) && deletedRanges(a) === deletedRanges(b)
}

/** An update's deletions, normalized (sorted, adjacent and overlapping ranges joined). */
function deletedRanges(update: Uint8Array): string {
  const out: Array<[number, Array<[number, number]>]> = []
  for (const [client, items] of Y.decodeUpdate(update).ds.clients) {
    const ranges: Array<[number, number]> = []
    for (const { clock, len } of [...items].sort((x, y) => x.clock - y.clock)) {
      const last = ranges.at(-1)
      if (last && clock <= last[1]) last[1] = Math.max(last[1], clock + len)
      else ranges.push([clock, clock + len])
    }
    if (ranges.length > 0) out.push([client, ranges])
  }
  return JSON.stringify(out.sort((x, y) => x[0] - y[0]))
}

/** Longest time spec read (an ISO time with nanoseconds and a zone is 35 characters). */
export const MAX_TIME_SPEC_LENGTH = 64
/** The largest instant a Date holds (ECMAScript: ±8.64e15 ms). */
const MAX_DATE_MS = 8.64e15

/**
 * A moment: ISO 8601 (`2026-11-22T10:00:00Z`, a date, or a local time without zone) or a
 * time ago (`90s`, `10m`, `2h`, `3d`, `1w`). Throws BAD_TIME.
 */
export function parseTimeSpec(text: string, now: number): number {
  // A time ago is a duration as every option takes it, optionally followed by "ago".
  // Longer than any time written by hand; the patterns below then never see megabytes.
  if (text.length <= MAX_TIME_SPEC_LENGTH) {
    const ago = durationMs(text.replace(/\s*ago\s*$/i, ''))
    const ms = ago !== undefined ? now - ago
      : /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/i.test(text.trim()) ? Date.parse(text.trim()) : NaN
    // Past what a Date can hold ("1e20w ago"), no message could even print the instant.
    if (Number.isFinite(ms) && Math.abs(ms) <= MAX_DATE_MS) return ms
  }
  const shown = text.length <= MAX_TIME_SPEC_LENGTH ? text : `${text.slice(0, MAX_TIME_SPEC_LENGTH)}…`
  throw new CoeditError('BAD_TIME', `"${shown}" is not a time: use ISO 8601 (2026-11-22T10:00:00Z) or a time ago (10m, 2h, 3d)`)
}

/**
 * The version `spec` names: a bare number is a version id; anything else is a time, and
 * picks the newest version recorded at or before it. Throws VERSION_NOT_FOUND / BAD_TIME.
 */
export function resolveVersion(versions: readonly VersionInfo[], spec: string, now: number): VersionInfo {
  if (/^\s*\d+\s*$/.test(spec)) {
    const id = Number(spec)
    const found = versions.find((v) => v.id === id)
    if (!found) throw new CoeditError('VERSION_NOT_FOUND', `there is no version ${id} (see coedit history)`)
    return found
  }
  const at = parseTimeSpec(spec, now)
  let best: VersionInfo | undefined
  for (const v of versions) if (v.at <= at && (!best || v.at >= best.at)) best = v
  if (!best) {
    throw new CoeditError('VERSION_NOT_FOUND', `no version was recorded at or before ${new Date(at).toISOString()}${versions.length > 0 ? ` (the oldest is from ${new Date(Math.min(...versions.map((v) => v.at))).toISOString()})` : ''}`)
  }
  return best
}
