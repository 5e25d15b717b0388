/**
 * Cuts clock ranges out of a Yjs v1 update: what remains is the same update without the
 * structs (or parts of structs) whose IDs fall in those ranges; the delete set is kept
 * whole. Y.diffUpdate only cuts each client's prefix (below a state vector); a room also
 * holds structs past a gap (pending, or in flight), and an update carrying other structs
 * at those IDs must lose exactly those parts (see missingPart in update-checks.ts).
 *
 * Slicing follows Yjs's own (sliceStruct in yjs/src/utils/updates.js): a part that starts
 * inside an item gets the item's previous clock as its origin; a part that ends inside
 * one keeps its rightOrigin and parent.
 */
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'

/** A run of one client's clocks, `to` excluded. */
export interface ClockRange { from: number; to: number }

interface Piece { struct: Y.Item | Y.GC; from: number; to: number }

/** `from`..`to` minus `ranges` (sorted, disjoint), as the parts left. */
function subtract(from: number, to: number, ranges: readonly ClockRange[]): ClockRange[] {
  const left: ClockRange[] = []
  let at = from
  for (const r of ranges) {
    if (r.to <= at) continue
    if (r.from >= to) break
    if (r.from > at) left.push({ from: at, to: r.from })
    at = Math.max(at, r.to)
    if (at >= to) break
  }
  if (at < to) left.push({ from: at, to })
  return left
}

/** Does any struct of `structs` (decoded) fall in `ranges` of its client? */
export function overlapsRanges(structs: ReadonlyArray<Y.Item | Y.GC | Y.Skip>, rangesOf: (client: number) => readonly ClockRange[]): boolean {
  for (const s of structs) {
    if (s instanceof Y.Skip) continue
    const end = s.id.clock + s.length
    for (const r of rangesOf(s.id.client)) {
      if (r.from < end && r.to > s.id.clock) return true
    }
  }
  return false
}

/**
 * `update` without its structs' IDs in `rangesOf(client)` (sorted, disjoint ranges per
 * client). Gaps left inside a client's run are written as Skip structs, as Yjs writes them.
 */
export function withoutRanges(update: Uint8Array, rangesOf: (client: number) => readonly ClockRange[]): Uint8Array {
  // Freshly decoded: the structs are ours to slice.
  const { structs, ds } = Y.decodeUpdate(update) as unknown as {
    structs: Array<Y.Item | Y.GC | Y.Skip>
    ds: { clients: Map<number, Array<{ clock: number; len: number }>> }
  }
  const byClient = new Map<number, Piece[]>()
  for (const s of structs) {
    if (s instanceof Y.Skip) continue
    const client = s.id.client
    const parts = subtract(s.id.clock, s.id.clock + s.length, rangesOf(client))
    if (parts.length === 0) continue
    let pieces = byClient.get(client)
    if (!pieces) byClient.set(client, pieces = [])
    for (const p of parts) pieces.push({ struct: s, ...p })
  }
  const encoder = new Y.UpdateEncoderV1()
  encoding.writeVarUint(encoder.restEncoder, byClient.size)
  for (const [client, pieces] of byClient) {
    let count = pieces.length
    for (let i = 1; i < pieces.length; i++) if (pieces[i]!.from > pieces[i - 1]!.to) count++
    encoding.writeVarUint(encoder.restEncoder, count)
    encoder.writeClient(client)
    encoding.writeVarUint(encoder.restEncoder, pieces[0]!.from)
    let at = pieces[0]!.from
    for (const p of pieces) {
      if (p.from > at) new Y.Skip(Y.createID(client, at), p.from - at).write(encoder, 0)
      writePiece(encoder, p)
      at = p.to
    }
  }
  // The delete set as it came (Yjs sorts it by client; the order does not matter to a reader).
  encoding.writeVarUint(encoder.restEncoder, ds.clients.size)
  for (const [client, ranges] of ds.clients) {
    encoding.writeVarUint(encoder.restEncoder, client)
    encoding.writeVarUint(encoder.restEncoder, ranges.length)
    for (const r of ranges) {
      encoder.writeDsClock(r.clock)
      encoder.writeDsLen(r.len)
    }
  }
  return encoder.toUint8Array()
}

function writePiece(encoder: Y.UpdateEncoderV1, p: Piece): void {
  const s = p.struct
  const offset = p.from - s.id.clock
  const end = s.id.clock + s.length
  if (p.to === end) {
    s.write(encoder, offset)
  } else if (s instanceof Y.GC) {
    new Y.GC(s.id, p.to - s.id.clock).write(encoder, offset)
  } else {
    // Cut the end off a copy: Content.splice keeps the left part in place.
    const content = s.content.copy()
    content.splice(p.to - s.id.clock)
    // Decoded items hold their parent as a root name or an item ID, which Item.write accepts.
    const parent = s.parent as unknown as Y.AbstractType<unknown> | null
    new Y.Item(s.id, null, s.origin, null, s.rightOrigin, parent, s.parentSub, content).write(encoder, offset)
  }
}
