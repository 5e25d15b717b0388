/**
 * Tombstones: what a room deleted with `{ tombstone: true }` remembers of its old content,
 * so that the old content cannot come back through the server.
 *
 * A Yjs document's content is made of items, each identified by (client ID, clock); a
 * client's items must arrive in clock order from 0. A tombstone holds every client ID of
 * the deleted document with the clock it reached (encoded as a Yjs state vector: varuint
 * count, then varuint client and varuint clock pairs). After the delete, an update is
 * refused (DELETED_CONTENT) when it carries
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
 * Pure functions, no I/O: the stores call `tombstoneOf` inside their delete, the room
 * `checkTombstone` before it stores an update.
 */
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import { ProtocolError } from './protocol.js'
import type { DecodedUpdate } from './update-checks.js'

/** Client ID → the clock it reached in the deleted document. */
export type Tombstone = ReadonlyMap<number, number>

/**
 * The tombstone of a room whose stored updates are `updates` (its compacted state and log,
 * in any order), merged with earlier tombstones (the room's own, one of part of its log). An update that cannot
 * be parsed adds nothing (it could not be served either).
 */
export function tombstoneOf(updates: Iterable<Uint8Array>, ...previous: Array<Uint8Array | undefined>): Uint8Array {
  const clocks = new Map<number, number>()
  for (const earlier of previous) {
    if (earlier) for (const [client, clock] of decodeTombstone(earlier)) clocks.set(client, Math.max(clock, clocks.get(client) ?? 0))
  }
  for (const update of updates) {
    let to: Map<number, number>
    try {
      // Reads the structs' IDs and lengths only, not their content.
      ({ to } = Y.parseUpdateMeta(update))
    } catch {
      continue
    }
    for (const [client, clock] of to) clocks.set(client, Math.max(clock, clocks.get(client) ?? 0))
  }
  return encodeTombstone(clocks)
}

export function encodeTombstone(clocks: Tombstone): Uint8Array {
  const e = encoding.createEncoder()
  const sorted = [...clocks].sort((a, b) => a[0] - b[0])
  encoding.writeVarUint(e, sorted.length)
  for (const [client, clock] of sorted) {
    encoding.writeVarUint(e, client)
    encoding.writeVarUint(e, clock)
  }
  return encoding.toUint8Array(e)
}

/** A tombstone of no client: nothing to keep. */
export function isEmptyTombstone(bytes: Uint8Array): boolean {
  return decodeTombstone(bytes).size === 0
}

/** Throws if `bytes` is not a tombstone (a stored value that does not decode is a broken store). */
export function decodeTombstone(bytes: Uint8Array): Tombstone {
  return Y.decodeStateVector(bytes)
}

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
