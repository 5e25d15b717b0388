/**
 * The Yjs side of a room's log: applying a stored log to a document in one linear pass, merging
 * it into one update, and keeping Yjs's recursive garbage collection from overflowing the stack
 * on deeply nested content. Used by the room (load, cluster catch-up) and by the operator tools.
 * Pure functions of Yjs documents and updates: no storage, no network.
 */
import * as Y from 'yjs'
import { CoeditError } from '../errors.js'

/**
 * Applies `updates` in order in one transaction. Y.mergeUpdates of a long list is quadratic
 * in its length (70 s for a state and 46,000 logged updates, what a kill -9 under a fast
 * writer leaves); this is linear (0.2 s for the same). With `onError`, an update that fails
 * to apply is reported and the rest still applied; without, the error is thrown.
 */
export function applyUpdates(doc: Y.Doc, updates: readonly Uint8Array[], origin?: unknown, onError?: (err: unknown, index: number) => void): void {
  Y.transact(doc, () => {
    for (let i = 0; i < updates.length; i++) {
      try {
        Y.applyUpdate(doc, updates[i]!, origin)
      } catch (err) {
        if (!onError) throw err
        onError(err, i)
      }
    }
  }, origin)
}

/**
 * Deleted content nested deeper than this below a deleted type is never garbage-collected
 * (see keepDeepGarbage). Yjs's GC recursion overflows Node's default stack at ~1,950
 * levels of Y.Map (scripts/measure-nesting.ts; README "Persistence"); this stays well
 * under it, and above any --max-nesting-depth a room accepts by default.
 */
export const GC_SAFE_DEPTH = 1000

/**
 * Makes `doc` skip garbage collection of deleted types whose content nests deeper than
 * `maxHeight`, or still holds undeleted items (a deletion cut short by a stack overflow).
 *
 * Why: Yjs collects a deleted type's content recursively, at the end of the transaction,
 * in a `finally`. A RangeError there escapes applyUpdate and, worse, leaves the document
 * with its transaction cleanup never finished: no later transaction is ever cleaned up or
 * observed again. A room that holds content stored before --max-nesting-depth existed
 * hits this when a deletion of it loads (the poisoned-room attack of issue 13). Kept
 * garbage costs memory and nothing else: it is encoded as deleted, as Yjs does with gc off.
 * The heights are computed without recursion, once per type and transaction.
 */
export function keepDeepGarbage(doc: Y.Doc, maxHeight = GC_SAFE_DEPTH): void {
  let heights = new WeakMap<Y.AbstractType<unknown>, number>()
  // Collection runs after 'afterTransaction', on the transaction's final document.
  doc.on('afterTransaction', () => { heights = new WeakMap() })
  doc.gcFilter = (item: Y.Item) => {
    if (!(item.content instanceof Y.ContentType)) return true
    const height = subtreeHeight(item.content.type, heights)
    return height >= 0 && height <= maxHeight
  }
}

/** The items directly in `type`: its list and every version of each map entry. */
function* itemsOf(type: Y.AbstractType<unknown>): Iterable<Y.Item> {
  for (let item = type._start; item !== null; item = item.right) yield item
  for (const last of type._map.values()) for (let item: Y.Item | null = last; item !== null; item = item.left) yield item
}

/** How deep types nest below `root` (0: none), or -1 if an undeleted item is below it. No recursion. */
function subtreeHeight(root: Y.AbstractType<unknown>, heights: WeakMap<Y.AbstractType<unknown>, number>): number {
  const order: Array<Y.AbstractType<unknown>> = []
  const stack = [root]
  while (stack.length > 0) {
    const type = stack.pop()!
    if (heights.has(type)) continue
    order.push(type)
    for (const item of itemsOf(type)) if (item.content instanceof Y.ContentType) stack.push(item.content.type)
  }
  // Pre-order reversed: every type comes after the types it holds.
  for (let i = order.length - 1; i >= 0; i--) {
    const type = order[i]!
    let height = 0
    for (const item of itemsOf(type)) {
      if (!item.deleted) { height = -1; break }
      if (item.content instanceof Y.ContentType) {
        const below = heights.get(item.content.type) ?? 0
        if (below < 0) { height = -1; break }
        height = Math.max(height, below + 1)
      }
    }
    heights.set(type, height)
  }
  return heights.get(root)!
}

/**
 * A RangeError from a stack overflow, as nested content too deep for Yjs's recursive
 * operations gives; other errors are not this.
 */
export function isStackOverflow(err: unknown): boolean {
  return err instanceof RangeError && /call stack/i.test(err.message)
}

/** A document holding `updates` (a room's stored log, or one state). */
export function docFromUpdates(updates: readonly Uint8Array[], gc = true): Y.Doc {
  const doc = new Y.Doc({ gc })
  keepDeepGarbage(doc)
  try {
    applyUpdates(doc, updates)
  } catch (err) {
    doc.destroy()
    throw tooDeep(err)
  }
  return doc
}

/** A stack overflow (content nested too deep, stored before --max-nesting-depth) as a coded one-line error. */
export function tooDeep(err: unknown): unknown {
  if (!isStackOverflow(err)) return err
  return new CoeditError('TOO_DEEP', 'the room holds shared types nested too deeply for Yjs to read (stored before --max-nesting-depth bounded it); the server still serves it, without the part it cannot apply', { cause: err })
}

/** Up to this many updates are merged without a document (Y.mergeUpdates: no integration). */
const MERGE_DIRECT_MAX = 32

/**
 * One update holding all of `updates` (a room's stored log, a log's parts). A few are merged as
 * updates (Y.mergeUpdates integrates nothing, so forged structs keep the form they were stored
 * in); more go through a document, linear in the total, where Y.mergeUpdates of a long list is
 * quadratic (see applyUpdates). The only merge of stored updates; a relay's short burst uses
 * Y.mergeUpdates directly (Room.flush).
 */
export function mergeUpdates(updates: readonly Uint8Array[]): Uint8Array {
  if (updates.length === 1) return updates[0]!
  if (updates.length <= MERGE_DIRECT_MAX) return Y.mergeUpdates([...updates])
  const doc = docFromUpdates(updates)
  try {
    return Y.encodeStateAsUpdate(doc)
  } finally {
    doc.destroy()
  }
}
