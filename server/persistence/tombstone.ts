/**
 * Tombstones: what a room deleted with `{ tombstone: true }` remembers of its old content,
 * so that the old content cannot come back through the server.
 *
 * A Yjs document's content is made of items, each identified by (client ID, clock); a
 * client's items must arrive in clock order from 0. A tombstone holds every client ID of
 * the deleted document with the clock it reached (encoded as a Yjs state vector: varuint
 * count, then varuint client and varuint clock pairs). What a room refuses because of it is
 * in server/room/tombstone.ts.
 *
 * Pure functions, no I/O: the stores call `tombstoneOf` inside their delete; the room
 * decodes what the store kept and checks updates against it.
 */
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'

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
