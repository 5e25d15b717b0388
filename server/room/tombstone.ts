/**
 * What a room refuses because of a tombstone (server/persistence/tombstone.ts: what a delete
 * with `{ tombstone: true }` keeps of the deleted document's client IDs and clocks).
 *
 * After the delete, an update is refused (DELETED_CONTENT) when it carries
 *  - an item (or garbage-collected range) of a tombstoned client: a copy of old content, or
 *    an edit that continues an old client's clock, which could never integrate without the
 *    old items before it;
 *  - an item whose origin, right origin or parent is an item of a tombstoned client: an
 *    edit made inside an old copy of the document, which could never integrate either;
 *  - a deletion of a tombstoned client's items.
 * Sound means: nothing the deleted document held is ever stored again under its IDs, and
 * nothing stored depends on it. What a tombstone cannot see is content re-created under
 * new IDs (a user pasting the old text into a fresh document): that is a new edit.
 *
 * Pure: the room calls `checkTombstone` before it stores an update.
 */
import * as Y from 'yjs'
import { ProtocolError } from './protocol.js'
import type { DecodedUpdate } from './update-checks.js'
import type { Tombstone } from '../persistence/tombstone.js'

/** Throws ProtocolError DELETED_CONTENT if `decoded` touches the tombstoned clients (see the module header). */
export function checkTombstone(decoded: DecodedUpdate, tombstone: Tombstone): void {
  if (tombstone.size === 0) return
  for (const s of decoded.structs) {
    if (s instanceof Y.Skip) continue
    if (tombstone.has(s.id.client)) throw deleted(`it carries items of client ${s.id.client}`)
    const parent = s.parent instanceof Y.ID ? s.parent : undefined
    for (const ref of [s.origin, s.rightOrigin, parent]) {
      if (ref && tombstone.has(ref.client)) throw deleted(`item ${s.id.client}:${s.id.clock} was made next to or inside item ${ref.client}:${ref.clock}`)
    }
  }
  for (const client of decoded.ds.clients.keys()) {
    if (tombstone.has(client)) throw deleted(`it deletes items of client ${client}`)
  }
}

function deleted(why: string): ProtocolError {
  return new ProtocolError('DELETED_CONTENT', `this update belongs to a deleted copy of the room (${why}): discard the local copy and start from the server's document`)
}
