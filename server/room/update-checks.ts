/**
 * What a room checks before it stores a client's update: that the bytes are a Yjs v1
 * update that integrates, that its clocks are plausible, and which part of it the room
 * still lacks (counting the updates already accepted and being stored). Each update is
 * decoded once here and the decoded form serves every check.
 */
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import { ProtocolError } from './protocol.js'
import { overlapsRanges, withoutRanges, type ClockRange } from './update-trim.js'
import { sectionClients } from './update-sections.js'

/**
 * No clock or length in an update may reach past this, whatever the room holds:
 * a trillion operations by one client is not a document, it is an attack, and
 * numbers near 2^53 stop being exact.
 */
export const MAX_CLOCK = 2 ** 40

interface ID { client: number; clock: number }
interface Struct { id: ID; length: number; origin?: ID | null; rightOrigin?: ID | null; parent?: unknown; content?: unknown }

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
  if (decoded.structs.length > 0) {
    // Applied, Yjs would keep only a client's last section; merged, all of them (see update-sections.ts).
    let clients: number[]
    try {
      clients = sectionClients(update)
    } catch (err) {
      throw new ProtocolError('BAD_UPDATE', `not a valid Yjs update: ${(err as Error).message}`)
    }
    if (new Set(clients).size !== clients.length) {
      const twice = clients.find((c, i) => clients.indexOf(c) !== i)
      throw new ProtocolError('BAD_UPDATE', `not a valid Yjs update: client ${twice} is written twice`)
    }
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

/**
 * The clock ranges of each client that the room holds without having integrated them: its
 * pending structs (waiting for what they depend on) and the structs of every update in
 * flight (those past a gap too). Sorted and merged per client; built per client on demand.
 */
export function heldRanges(doc: Y.Doc, inflight: InflightUpdates): (client: number) => readonly ClockRange[] {
  const pending = pendingStructs(doc)
  if (!pending && inflight.isEmpty) return () => []
  const cache = new Map<number, readonly ClockRange[]>()
  return (client) => {
    let ranges = cache.get(client)
    if (ranges) return ranges
    const all = [...(pending ? pendingRanges(pending).get(client) ?? [] : []), ...inflight.spansOf(client)].sort((a, b) => a.from - b.from)
    const merged: ClockRange[] = []
    for (const r of all) {
      const last = merged[merged.length - 1]
      if (last && r.from <= last.to) last.to = Math.max(last.to, r.to)
      else merged.push({ from: r.from, to: r.to })
    }
    cache.set(client, ranges = merged)
    return ranges
  }
}

/** The clock ranges of pending structs by client, made once per change of the pending structs. */
const pendingRangesOf = new WeakMap<readonly Struct[], Map<number, ClockRange[]>>()
function pendingRanges(pending: readonly Struct[]): Map<number, ClockRange[]> {
  let byClient = pendingRangesOf.get(pending)
  if (byClient) return byClient
  pendingRangesOf.set(pending, byClient = new Map())
  for (const s of pending) {
    if (s instanceof Y.Skip) continue
    const list = byClient.get(s.id.client)
    const range = { from: s.id.clock, to: s.id.clock + s.length }
    if (list) list.push(range)
    else byClient.set(s.id.client, [range])
  }
  return byClient
}

/**
 * Does the update carry structs at IDs the room already holds, integrated (below its state,
 * counting what is in flight) or not (pending, or in flight past a gap)?
 */
function overlapsRoom(decoded: DecodedUpdate, doc: Y.Doc, inflight: InflightUpdates, overlapsState: boolean): boolean {
  if (decoded.structs.length === 0) return false
  if (overlapsState) return true
  // The common case, a client typing on past everything held of it, is answered without
  // building the held ranges: that sorted every span in flight for every update, and a
  // writer far ahead of the disk has thousands in flight (S5 lost a third of its rate).
  const pending = pendingStructs(doc)
  const pendingClients = pending ? pendingRanges(pending) : undefined
  const mayOverlap = decoded.structs.some((s) => !(s instanceof Y.Skip) && (pendingClients?.has(s.id.client) === true || s.id.clock < inflight.endOf(s.id.client)))
  return mayOverlap && overlapsRanges(decoded.structs as Array<Y.Item | Y.GC | Y.Skip>, heldRanges(doc, inflight))
}

/**
 * The part of an overlapping update the room lacks, once the updates in flight land: without
 * the structs below the room's state, and without those at IDs the room holds as pending or
 * in flight past a gap. Each ID is stored once, first come: a second, different struct at an
 * ID (a forgery) stored beside the first would be integrated live in one order, but merged
 * (a compaction encodes pending structs together with the document) in another, and the
 * document would change across a restart. Found by the fuzz suite (SEED=1090654619).
 */
export function missingPart(update: Uint8Array, doc: Y.Doc, inflight: InflightUpdates): { update: Uint8Array; decoded: DecodedUpdate } {
  let diff = Y.diffUpdate(update, inflight.stateVector(doc))
  let decoded = decodeRaw(diff)
  const held = heldRanges(doc, inflight)
  if (overlapsRanges(decoded.structs as Array<Y.Item | Y.GC | Y.Skip>, held)) {
    diff = withoutRanges(diff, held)
    decoded = decodeRaw(diff)
  }
  return { update: diff, decoded }
}

/**
 * What the room stores of a decoded update: all of it, or, if it carries structs at IDs the
 * room already holds (integrated, pending or in flight), only the rest (see missingPart).
 * Throws IMPLAUSIBLE_CLOCK (see checkUpdateClocks; `maxAdvance` 0 checks only references).
 *
 * The rest is not tried on a copy of the room first, as it was before each ID was stored
 * once (O(document): 2.7 s for a reconnect's step 2 on a 1 MB document here). What made
 * overlapping updates fail after storage was Yjs integrating a struct from an offset (over
 * a garbage-collected range it throws halfway); now nothing is ever integrated from an
 * offset: each struct starts where the room's clock for its client will stand.
 */
export function partToStore(update: Uint8Array, decoded: DecodedUpdate, doc: Y.Doc, inflight: InflightUpdates, maxAdvance: number): { update: Uint8Array; decoded: DecodedUpdate } {
  if (decoded.empty) return { update, decoded }
  const overlapsState = checkUpdateClocks(decoded, (client) => inflight.stateOf(doc, client), maxAdvance).overlaps
  if (!overlapsRoom(decoded, doc, inflight, overlapsState)) return { update, decoded }
  // Only what the room lacks is stored: a stored copy of structs the room already has could
  // differ from them (a forgery), and the merged reload would pick by length, not arrival,
  // so the document would change across a restart. Found by the fuzz suite.
  return missingPart(update, doc, inflight)
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
  private readonly spansByUpdate = new Map<Uint8Array, Span[]>()
  /** By client, in the order added (a typing client's spans follow one another). */
  private readonly byClient = new Map<number, Span[]>()
  /** By client, the end of its furthest span in flight (see endOf). */
  private readonly ends = new Map<number, number>()
  /** Item depths of the updates in flight (see checkNestingDepth), when checked, in the order added. */
  private readonly depths: Array<{ update: Uint8Array; depths: ItemDepths }> = []
  private unresolvedDepths = 0

  add(update: Uint8Array, decoded: DecodedUpdate, depths?: ItemDepths): void {
    if (depths) {
      this.depths.push({ update, depths })
      if (depths.unresolved) this.unresolvedDepths++
    }
    const spans: Span[] = []
    let last: Span | undefined
    for (const s of decoded.structs) {
      if (s instanceof Y.Skip) continue
      const { client, clock } = s.id
      if (last && last.client === client && last.to === clock) last.to += s.length
      else spans.push(last = { client, from: clock, to: clock + s.length })
    }
    this.spansByUpdate.set(update, spans)
    for (const span of spans) {
      const list = this.byClient.get(span.client)
      if (list) list.push(span)
      else this.byClient.set(span.client, [span])
      if (span.to > (this.ends.get(span.client) ?? 0)) this.ends.set(span.client, span.to)
    }
  }

  delete(update: Uint8Array): void {
    // Updates land in arrival order, so this is almost always the first entry.
    const at = this.depths.findIndex((d) => d.update === update)
    if (at >= 0) {
      if (this.depths[at]!.depths.unresolved) this.unresolvedDepths--
      this.depths.splice(at, 1)
    }
    const spans = this.spansByUpdate.get(update)
    if (!spans) return
    this.spansByUpdate.delete(update)
    for (const span of spans) {
      const list = this.byClient.get(span.client)!
      // Updates land in arrival order, so this is almost always the first entry.
      list.splice(list.indexOf(span), 1)
      if (list.length === 0) {
        this.byClient.delete(span.client)
        this.ends.delete(span.client)
      } else if (span.to >= (this.ends.get(span.client) ?? 0)) {
        // The furthest landed before others (rare: updates land in arrival order).
        let end = 0
        for (const s of list) end = Math.max(end, s.to)
        this.ends.set(span.client, end)
      }
    }
  }

  /** The end of `client`'s furthest span in flight (0 if none): no span reaches past it. */
  endOf(client: number): number {
    return this.ends.get(client) ?? 0
  }

  get updates(): Iterable<Uint8Array> {
    return this.spansByUpdate.keys()
  }

  get isEmpty(): boolean {
    return this.spansByUpdate.size === 0
  }

  /** Every span in flight of `client`, contiguous with the document or not. */
  spansOf(client: number): readonly Span[] {
    return this.byClient.get(client) ?? []
  }

  /** Some update in flight has items whose depth is only a lower bound. */
  get hasUnresolvedDepths(): boolean {
    return this.unresolvedDepths > 0
  }

  /** The depth of the item `id` points into, if an update in flight carries it. */
  depthAt(id: ID): number | undefined {
    // Newest first: an update usually builds on the one sent just before it.
    for (let i = this.depths.length - 1; i >= 0; i--) {
      const runs = this.depths[i]!.depths.byClient.get(id.client)
      if (!runs) continue
      let lo = 0
      let hi = runs.length - 1
      while (lo <= hi) {
        const mid = (lo + hi) >>> 1
        const r = runs[mid]!
        if (id.clock < r.from) hi = mid - 1
        else if (id.clock >= r.to) lo = mid + 1
        else return r.depth
      }
    }
    return undefined
  }

  /** The structs of the updates in flight whose depths were checked. */
  *structs(): Iterable<readonly Struct[]> {
    for (const d of this.depths) yield d.depths.structs
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

// ---- nesting depth -----------------------------------------------------------

/**
 * How deep shared types may nest. Yjs deletes, garbage-collects and reads (toJSON) nested
 * types recursively, a few stack frames per level: past ~2,000 levels of Y.Map
 * (scripts/measure-nesting.ts has the figures per type) one deletion throws RangeError, at
 * the end of a transaction where nothing catches it, and a room holding such content
 * crashes the process that loads it. So the depth is bounded before anything is stored.
 *
 * Depth: an item directly in a root type is at depth 1; an item inside a type created at
 * depth d is at depth d + 1; a JSON value (Y.Map.set('k', {...})) adds its own nesting.
 */

/** An item's depth as a run of clocks: all of one item's clocks share its parent. */
interface DepthRun { from: number; to: number; depth: number }

/** The depths of an update's items, kept while it is in flight (see InflightUpdates). */
export interface ItemDepths {
  byClient: Map<number, DepthRun[]>
  /** Some item hangs from an item the room does not have yet: its depth is a lower bound. */
  unresolved: boolean
  /** The update's structs, for the slow path of a later check (see checkNestingDepth). */
  structs: readonly Struct[]
}

const UNVISITED = -2
const VISITING = -1

/** A struct of some update being resolved; `depth` is UNVISITED, VISITING or resolved (≥ 0). */
interface Node { s: Struct; depth: number; gc: boolean }

/** Structs of several updates by client and clock, for finding the item an ID points into. */
class StructIndex {
  private readonly byClient = new Map<number, Node[]>()

  constructor(sources: Iterable<readonly Struct[]>) {
    for (const structs of sources) {
      for (const s of structs) {
        if (s instanceof Y.Skip) continue
        const node: Node = { s, depth: UNVISITED, gc: !(s instanceof Y.Item) }
        const list = this.byClient.get(s.id.client)
        if (list) list.push(node)
        else this.byClient.set(s.id.client, [node])
      }
    }
    for (const list of this.byClient.values()) {
      // One update's structs come in clock order; only several sources need sorting.
      for (let i = 1; i < list.length; i++) {
        if (list[i]!.s.id.clock < list[i - 1]!.s.id.clock) {
          list.sort((a, b) => a.s.id.clock - b.s.id.clock)
          break
        }
      }
    }
  }

  *nodes(): Iterable<Node> {
    for (const list of this.byClient.values()) yield* list
  }

  find(id: ID): Node | undefined {
    const list = this.byClient.get(id.client)
    if (!list) return undefined
    let lo = 0
    let hi = list.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      const n = list[mid]!
      if (id.clock < n.s.id.clock) hi = mid - 1
      else if (id.clock >= n.s.id.clock + n.s.length) lo = mid + 1
      else return n
    }
    return undefined
  }
}

/**
 * Where an item's parent comes from, as Yjs finds it when integrating (Item.getMissing):
 * the left neighbour's parent (origin), else the right one's (rightOrigin), else the
 * parent written in the update: a root by name, or the type an item ID holds (one deeper).
 */
function reference(s: Struct): { ref: ID | undefined; inc: number } {
  if (s.origin) return { ref: s.origin, inc: 0 }
  if (s.rightOrigin) return { ref: s.rightOrigin, inc: 0 }
  if (s.parent instanceof Y.ID) return { ref: s.parent, inc: 1 }
  return { ref: undefined, inc: 0 }
}

/** How deep JSON values nest (0 for a scalar), counted without recursion and up to `cap`. */
function jsonDepth(values: readonly unknown[], cap: number): number {
  // Most content is text or scalars: nothing to walk, nothing to allocate.
  if (values.every((v) => v === null || typeof v !== 'object')) return 0
  let max = 0
  const stack: Array<[unknown, number]> = values.map((v) => [v, 0])
  while (stack.length > 0) {
    const [v, d] = stack.pop()!
    if (v === null || typeof v !== 'object' || v instanceof Uint8Array) continue
    if (d + 1 > max) max = d + 1
    if (max > cap) return max
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, d + 1])
  }
  return max
}

/** The JSON values an item's content holds (embeds, formatting attributes, Y.Map values, ...). */
const NO_VALUES: readonly unknown[] = []
function contentValues(content: unknown): readonly unknown[] {
  if (content instanceof Y.ContentString || content instanceof Y.ContentType || content instanceof Y.ContentDeleted) return NO_VALUES
  if (content instanceof Y.ContentAny || content instanceof Y.ContentJSON) return content.arr
  if (content instanceof Y.ContentEmbed) return [content.embed]
  if (content instanceof Y.ContentFormat) return [content.value]
  return NO_VALUES
}

/**
 * The depth of the item `id` points into, as the room's document holds it: undefined if
 * the document does not have it; 0 for garbage-collected content (an item placed next to
 * it is dropped, nothing nests there). Walks up parent types, at most `limit` + 1 steps.
 */
export function depthInDoc(doc: Y.Doc, id: ID, limit: number, cache = new Map<Y.AbstractType<unknown>, number>()): number | undefined {
  if (!(id.clock < Y.getState(doc.store, id.client))) return undefined
  const struct = Y.getItem(doc.store, id as Y.ID)
  if (!(struct instanceof Y.Item)) return 0
  // Depth of a type: 0 for a root, else the depth of the item holding it.
  const path: Array<Y.AbstractType<unknown>> = []
  let type = struct.parent
  let base = 0
  while (type instanceof Y.AbstractType) {
    const known = cache.get(type)
    if (known !== undefined) { base = known; break }
    const holder = type._item
    if (!holder || path.length > limit) break
    path.push(type)
    type = holder.parent
  }
  for (let i = path.length - 1; i >= 0; i--) cache.set(path[i]!, base + (path.length - i))
  return base + path.length + 1
}

/**
 * Throws TOO_DEEP if integrating `decoded` would put an item (or a JSON value in one)
 * deeper than `limit`, and returns its items' depths. Linear in the structs examined and
 * without recursion: an update of 20,000 nested maps costs 20,000 steps.
 *
 * An item in the wire format names its parent only if it has no neighbours; otherwise
 * the parent is its neighbour's, so depths are resolved through origins: within the
 * update, then in what is in flight (`inflightDepth`), then in the document (`docDepth`).
 * An item hanging from one the room does not have yet (it will wait as pending) gets a
 * lower bound (its anchor at depth 1). So that chains split into pieces, each sent
 * before the piece it hangs from, cannot add up unseen, the slow path (taken when
 * `slowSources` is given: the room holds pending structs or something in flight is
 * unresolved) resolves this update together with those structs, whose depths rise as
 * this update supplies their anchors.
 */
export function checkNestingDepth(
  decoded: DecodedUpdate,
  limit: number,
  docDepth: (id: ID) => number | undefined,
  inflightDepth: (id: ID) => number | undefined = () => undefined,
  slowSources: ReadonlyArray<readonly Struct[]> = [],
): ItemDepths {
  const index = new StructIndex([decoded.structs, ...slowSources])
  const outside = slowSources.length > 0 ? docDepth : (id: ID) => inflightDepth(id) ?? docDepth(id)
  let unresolved = false
  const stack: Node[] = []
  for (const start of index.nodes()) {
    if (start.depth !== UNVISITED) continue
    start.depth = VISITING
    stack.push(start)
    while (stack.length > 0) {
      const node = stack[stack.length - 1]!
      let depth: number
      if (node.gc) {
        depth = 0
      } else {
        const { ref, inc } = reference(node.s)
        if (!ref) {
          depth = 1
        } else {
          const target = index.find(ref)
          if (target && target.depth === UNVISITED) {
            target.depth = VISITING
            stack.push(target)
            continue
          }
          if (target) {
            // VISITING: a cycle of references, which Yjs can never integrate (it stays pending).
            depth = target.depth === VISITING ? 0 : target.depth === 0 ? 0 : target.depth + inc
          } else {
            const known = outside(ref)
            if (known === undefined) unresolved = true
            depth = known === undefined ? 1 + inc : known === 0 ? 0 : known + inc
          }
        }
        const total = depth + jsonDepth(contentValues(node.s.content), limit)
        if (total > limit) {
          throw new ProtocolError('TOO_DEEP', `item ${node.s.id.client}:${node.s.id.clock} would nest ${total} levels deep, beyond the allowed ${limit}`)
        }
      }
      node.depth = depth
      stack.pop()
    }
  }
  const byClient = new Map<number, DepthRun[]>()
  for (const s of decoded.structs) {
    if (s instanceof Y.Skip) continue
    const node = index.find(s.id)!
    const runs = byClient.get(s.id.client)
    const run = { from: s.id.clock, to: s.id.clock + s.length, depth: node.depth }
    if (runs) runs.push(run)
    else byClient.set(s.id.client, [run])
  }
  return { byClient, unresolved, structs: decoded.structs }
}

/** The pending structs of `doc` (waiting for what they depend on), decoded once per change. */
const pendingDecoded = new WeakMap<Uint8Array, readonly Struct[]>()
export function pendingStructs(doc: Y.Doc): readonly Struct[] | undefined {
  const pending = doc.store.pendingStructs
  if (!pending) return undefined
  let structs = pendingDecoded.get(pending.update)
  // Yjs keeps them encoded in the v2 format.
  if (!structs) pendingDecoded.set(pending.update, structs = (Y.decodeUpdateV2(pending.update) as unknown as DecodedUpdate).structs)
  return structs
}

/** --max-nesting-depth's default: Yjs overflows the stack near 2,000 levels, this leaves room for any real document. */
export const DEFAULT_MAX_NESTING_DEPTH = 256

/**
 * checkNestingDepth for a room: against its document, its pending structs and what is in
 * flight. `limit` 0 checks nothing.
 */
export function checkRoomNesting(decoded: DecodedUpdate, doc: Y.Doc, inflight: InflightUpdates, limit: number): ItemDepths | undefined {
  if (!limit) return undefined
  checkDeletionDepth(decoded, doc, limit)
  if (decoded.structs.length === 0) return undefined
  const cache = new Map<Y.AbstractType<unknown>, number>()
  const docDepth = (id: ID): number | undefined => depthInDoc(doc, id, limit, cache)
  const pending = pendingStructs(doc)
  const slow = pending !== undefined || inflight.hasUnresolvedDepths
  if (!slow) return checkNestingDepth(decoded, limit, docDepth, (id) => inflight.depthAt(id))
  // Something may hang from what this update supplies: resolve it all together.
  return checkNestingDepth(decoded, limit, docDepth, undefined, [...(pending ? [pending] : []), ...inflight.structs()])
}

/**
 * Throws TOO_DEEP if the update would delete a type whose content nests more than `limit`
 * levels below it: through its delete set, or by overwriting a map value (a new value for
 * a key deletes the old one). Yjs deletes recursively, so such a deletion overflows the
 * stack halfway, after the update is stored, and leaves the content deleted in part (a
 * state no client can apply either). Such content exists only if it was stored before
 * the limit did; accepted content never nests that deep, so no legitimate deletion is
 * refused. Walks each deleted type's live content once, without recursion.
 */
export function checkDeletionDepth(decoded: DecodedUpdate, doc: Y.Doc, limit: number): void {
  let walked: Map<Y.AbstractType<unknown>, number> | undefined
  const check = (struct: unknown): void => {
    if (struct instanceof Y.Item && !struct.deleted && struct.content instanceof Y.ContentType) checkHeight(struct.content.type, limit, walked ??= new Map())
  }
  for (const [client, ranges] of decoded.ds.clients) {
    const structs = doc.store.clients.get(client)
    if (!structs) continue
    const state = Y.getState(doc.store, client)
    for (const r of ranges) {
      if (!(r.clock < state)) continue
      const end = r.clock + r.len
      for (let i = Y.findIndexSS(structs, r.clock); i < structs.length && structs[i]!.id.clock < end; i++) check(structs[i])
    }
  }
  for (const s of decoded.structs) {
    if (!(s instanceof Y.Item)) continue
    if (s.origin) {
      // Placed after a map value: it replaces it, or is itself discarded.
      if (!(s.origin.clock < Y.getState(doc.store, s.origin.client))) continue
      const left = Y.getItem(doc.store, s.origin)
      if (left instanceof Y.Item && left.parentSub !== null) check(left)
    } else if (s.parentSub && !s.rightOrigin) {
      // A map value without neighbours: it may win over the key's current value.
      const parent = typeof s.parent === 'string' ? doc.share.get(s.parent)
        : s.parent instanceof Y.ID && s.parent.clock < Y.getState(doc.store, s.parent.client) ? contentType(Y.getItem(doc.store, s.parent))
        : undefined
      check(parent?._map.get(s.parentSub))
    }
  }
}

function contentType(struct: unknown): Y.AbstractType<unknown> | undefined {
  return struct instanceof Y.Item && struct.content instanceof Y.ContentType ? struct.content.type : undefined
}

/**
 * Throws TOO_DEEP if live content nests more than `limit` levels below `root`. `walked`
 * holds the levels left when a type was last walked: its content fits in those, so a walk
 * arriving with as many or more need not go below it again.
 */
function checkHeight(root: Y.AbstractType<unknown>, limit: number, walked: Map<Y.AbstractType<unknown>, number>): void {
  const stack: Array<[Y.AbstractType<unknown>, number]> = [[root, 0]]
  while (stack.length > 0) {
    const [type, depth] = stack.pop()!
    const left = walked.get(type)
    if (left !== undefined && left <= limit - depth) continue
    walked.set(type, limit - depth)
    const visit = (item: Y.Item): void => {
      if (item.deleted || !(item.content instanceof Y.ContentType)) return
      if (depth + 1 > limit) throw new ProtocolError('TOO_DEEP', `deleting ${root._item ? `item ${root._item.id.client}:${root._item.id.clock}` : 'a type'} would delete content nested more than ${limit} levels below it`)
      stack.push([item.content.type, depth + 1])
    }
    for (let item = type._start; item !== null; item = item.right) visit(item)
    for (const item of type._map.values()) visit(item)
  }
}
