/**
 * What a room checks before it stores a client's update: that the bytes are a Yjs v1
 * update that integrates, that its clocks are plausible, and which part of it the room
 * still lacks (counting the updates already accepted and being stored). Each update is
 * decoded once here and the decoded form serves every check.
 */
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import { ProtocolError } from './protocol.js'

/**
 * No clock or length in an update may reach past this, whatever the room holds:
 * a trillion operations by one client is not a document, it is an attack, and
 * numbers near 2^53 stop being exact.
 */
export const MAX_CLOCK = 2 ** 40

interface ID { client: number; clock: number }
interface Struct { id: ID; length: number; origin?: ID | null; rightOrigin?: ID | null; parent?: unknown }

/** An update's structs and deletions as Y.decodeUpdate gives them. */
export interface DecodedUpdate {
  structs: Struct[]
  ds: { clients: Map<number, Array<{ clock: number; len: number }>> }
  /** Nothing inserted, nothing deleted. */
  empty: boolean
}

function decodeRaw(update: Uint8Array): DecodedUpdate {
  // Yjs's own declared types for decodeUpdate name internal classes; these are the fields read here.
  const { structs, ds } = Y.decodeUpdate(update) as unknown as Omit<DecodedUpdate, 'empty'>
  return { structs, ds, empty: structs.length === 0 && ds.clients.size === 0 }
}

/**
 * Rejects bytes that are not a Yjs v1 update before they reach storage (a stored
 * malformed update would break every later load) and returns them decoded.
 */
export function decodeUpdateChecked(update: Uint8Array): DecodedUpdate {
  let decoded: DecodedUpdate
  try {
    decoded = decodeRaw(update)
  } catch (err) {
    throw new ProtocolError('BAD_UPDATE', `not a valid Yjs update: ${(err as Error).message}`)
  }
  // Y.decodeUpdate accepts zero-length structs and delete ranges, which Yjs never writes
  // and which break the transaction that applies them, leaving the document damaged.
  if (decoded.structs.some((s) => !(s.length > 0))) {
    throw new ProtocolError('BAD_UPDATE', 'not a valid Yjs update: zero-length struct')
  }
  for (const ranges of decoded.ds.clients.values()) {
    if (ranges.some((d) => !(d.len > 0))) throw new ProtocolError('BAD_UPDATE', 'not a valid Yjs update: empty delete range')
  }
  // Integrating is where any other malformation shows, so a self-contained update (some
  // client's structs start at clock 0) is tried on a scratch document first. One that only
  // continues earlier structs (every keystroke) would just sit pending there: skipped, as
  // the pending path costs more than the real apply.
  if (decoded.structs.some((s) => s.id.clock === 0)) {
    // A fixed guid: a random one costs ~30 crypto calls, more than the check itself.
    const scratch = new Y.Doc({ gc: false, guid: 'validate' })
    try {
      Y.applyUpdate(scratch, update)
    } catch (err) {
      throw new ProtocolError('BAD_UPDATE', `not a valid Yjs update: ${(err as Error).message}`)
    } finally {
      scratch.destroy()
    }
  }
  return decoded
}

/** Throws ProtocolError unless `update` is a valid Yjs v1 update; true if it is empty. */
export function validateUpdate(update: Uint8Array): boolean {
  return decodeUpdateChecked(update).empty
}

/**
 * An item can only point at items that existed when it was made: a reference to its
 * own client at or past its own clock is a forgery. Yjs trusts such references (it
 * only checks other clients' ones for missing dependencies) and throws halfway
 * through integrating them, after the update is stored, or later, when the update
 * waits as pending until its other dependencies arrive. Found by test/fuzz.test.ts.
 */
function checkOwnReferences(s: Struct): void {
  const parent = s.parent instanceof Y.ID ? s.parent : undefined
  for (const ref of [s.origin, s.rightOrigin, parent]) {
    if (ref && ref.client === s.id.client && !(ref.clock < s.id.clock)) {
      throw new ProtocolError('IMPLAUSIBLE_CLOCK', `item ${s.id.client}:${s.id.clock} refers to ${ref.client}:${ref.clock}, which cannot precede it`)
    }
  }
}

/**
 * Refuses an update whose structs or deletions reach implausibly far past what the
 * room has of each client: a well-formed update can claim a deleted range of 2^52
 * items, or an item at clock 2^50, and would be stored (and served) forever.
 *
 * Allowed: for each client, every struct and deleted range ends at most `maxAdvance`
 * clock units past the room's state for that client, and never past MAX_CLOCK.
 * A legitimate client only ever extends its own clock by what it actually did.
 * Returns whether the update carries structs the room already has (or will have).
 */
export function checkUpdateClocks(decoded: DecodedUpdate, stateOf: (client: number) => number, maxAdvance: number): { overlaps: boolean } {
  const states = new Map<number, number>()
  const state = (client: number): number => {
    let s = states.get(client)
    if (s === undefined) states.set(client, s = stateOf(client))
    return s
  }
  const { structs, ds } = decoded
  for (const s of structs) checkOwnReferences(s)
  const overlaps = structs.some((s) => !(s instanceof Y.Skip) && s.id.clock < state(s.id.client))
  if (!maxAdvance) return { overlaps }
  const limitOf = (client: number): number => Math.min(MAX_CLOCK, state(client) + maxAdvance)
  for (const s of structs) {
    const end = s.id.clock + s.length
    if (!(end <= limitOf(s.id.client))) {
      throw new ProtocolError('IMPLAUSIBLE_CLOCK', `update claims clock ${end} for client ${s.id.client}, beyond the allowed ${limitOf(s.id.client)}`)
    }
  }
  for (const [client, ranges] of ds.clients) {
    for (const r of ranges) {
      const end = r.clock + r.len
      if (!(end <= limitOf(client))) {
        throw new ProtocolError('IMPLAUSIBLE_CLOCK', `update deletes up to clock ${end} of client ${client}, beyond the allowed ${limitOf(client)}`)
      }
    }
  }
  return { overlaps }
}

/** The part of an overlapping update the room lacks, once the updates in flight land. */
export function missingPart(update: Uint8Array, doc: Y.Doc, inflight: InflightUpdates): { update: Uint8Array; decoded: DecodedUpdate } {
  const diff = Y.diffUpdate(update, inflight.stateVector(doc))
  return { update: diff, decoded: decodeRaw(diff) }
}

/**
 * Applies `update` to a copy of `doc` and throws BAD_UPDATE if Yjs cannot integrate it.
 * For updates that overlap what the room already has (a reconnecting client's sync
 * step 2, or a forgery): Yjs integrates such structs from an offset, and a forged one
 * (content over a range the room holds as garbage-collected) throws halfway, after
 * storage. O(document), so only for overlapping updates, never for plain keystrokes.
 */
export function trialApply(doc: Y.Doc, inflight: Iterable<Uint8Array>, update: Uint8Array): void {
  const scratch = new Y.Doc({ gc: false, guid: 'trial' })
  try {
    Y.applyUpdate(scratch, Y.encodeStateAsUpdate(doc))
    for (const u of inflight) Y.applyUpdate(scratch, u)
    Y.applyUpdate(scratch, update)
  } catch (err) {
    throw new ProtocolError('BAD_UPDATE', `update cannot be integrated: ${(err as Error).message}`)
  } finally {
    scratch.destroy()
  }
}

/** A run of one client's clocks that an update in flight carries. */
interface Span { client: number; from: number; to: number }

/**
 * Updates accepted but not yet applied (they are being stored): what the room will hold
 * once they land. Checks against the document alone would miss a forgery sent right
 * behind the update it builds on.
 *
 * Only spans contiguous with what the document has count: an update in flight can carry
 * a client's structs with a gap before them (a reconnecting provider's sync step 2
 * includes what it holds as pending; a provider types on while its step 2 is on the
 * way), and counting such a span as present would make the room drop, from a later
 * update, exactly the structs that fill the gap. They would be lost for good.
 */
export class InflightUpdates {
  private readonly spansOf = new Map<Uint8Array, Span[]>()
  /** By client, in the order added (a typing client's spans follow one another). */
  private readonly byClient = new Map<number, Span[]>()

  add(update: Uint8Array, decoded: DecodedUpdate): void {
    const spans: Span[] = []
    let last: Span | undefined
    for (const s of decoded.structs) {
      if (s instanceof Y.Skip) continue
      const { client, clock } = s.id
      if (last && last.client === client && last.to === clock) last.to += s.length
      else spans.push(last = { client, from: clock, to: clock + s.length })
    }
    this.spansOf.set(update, spans)
    for (const span of spans) {
      const list = this.byClient.get(span.client)
      if (list) list.push(span)
      else this.byClient.set(span.client, [span])
    }
  }

  delete(update: Uint8Array): void {
    const spans = this.spansOf.get(update)
    if (!spans) return
    this.spansOf.delete(update)
    for (const span of spans) {
      const list = this.byClient.get(span.client)!
      // Updates land in arrival order, so this is almost always the first entry.
      list.splice(list.indexOf(span), 1)
      if (list.length === 0) this.byClient.delete(span.client)
    }
  }

  get updates(): Iterable<Uint8Array> {
    return this.spansOf.keys()
  }

  /** The room's clock for `client` once everything in flight is applied. */
  stateOf(doc: Y.Doc, client: number): number {
    return this.extend(Y.getState(doc.store, client), this.byClient.get(client))
  }

  /** The room's state vector once everything in flight is applied, encoded. */
  stateVector(doc: Y.Doc): Uint8Array {
    const sv = Y.decodeStateVector(Y.encodeStateVector(doc))
    for (const [client, spans] of this.byClient) {
      const state = this.extend(sv.get(client) ?? 0, spans)
      if (state > 0) sv.set(client, state)
    }
    const e = encoding.createEncoder()
    encoding.writeVarUint(e, sv.size)
    for (const [client, clock] of sv) {
      encoding.writeVarUint(e, client)
      encoding.writeVarUint(e, clock)
    }
    return encoding.toUint8Array(e)
  }

  private extend(state: number, spans: Span[] | undefined): number {
    if (!spans) return state
    // In order, one pass reaches the end; out of order, repeat until nothing connects.
    for (let grew = true; grew;) {
      grew = false
      for (const s of spans) {
        if (s.from <= state && s.to > state) {
          state = s.to
          grew = true
        }
      }
    }
    return state
  }
}
