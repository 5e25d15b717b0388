/**
 * Structure-aware generators for deep Yjs nesting: chains of shared types (Y.Map,
 * Y.Array, Y.XmlElement, Y.XmlText, Y.XmlFragment, or a mix), each level placed either
 * with an explicit parent (the first item of its type) or through an origin (after a
 * sibling, so the wire format leaves the parent out and Yjs infers it from the origin),
 * written by one client or several, sent whole or in pieces in any order (pieces sent
 * before what they hang from wait as pending structs), optionally with a JSON value
 * nested inside the innermost type and a delete-set-only update of the outermost type
 * (the poisoned-room attack of issue 13).
 *
 * Used by test/structure.test.ts (fixed cases) and test/fuzz.test.ts (random ones).
 */
import fc from 'fast-check'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'

export const NEST_KINDS = ['map', 'array', 'xmlelement', 'xmltext', 'xmlfragment'] as const
export type NestKind = (typeof NEST_KINDS)[number]

// any: the levels are of different types; each is only inserted into its parent.
type AnyType = Y.AbstractType<any>

export interface NestSpec {
  /** The type of each level, outermost first (its length is the depth). */
  kinds: NestKind[]
  /** Per level: place it through an origin (after a sibling) instead of as its parent's first item. */
  viaOrigin: boolean[]
  /** Per level: which client writes it (an index into `clients`). */
  writers: number[]
  clients: number[]
  /** How deep a JSON value put in the innermost type nests (0: none). */
  json: number
  /** Levels per piece: the chain is sent as updates of this many levels each. */
  piece: number
  /** The order the pieces are sent in (a permutation of their indexes, or fewer). */
  order: number[]
  /** Finally send a delete-set-only update deleting the outermost type. */
  deleteOutermost: boolean
}

function newType(kind: NestKind): AnyType {
  switch (kind) {
    case 'map': return new Y.Map()
    case 'array': return new Y.Array()
    case 'xmlelement': return new Y.XmlElement('div')
    case 'xmltext': return new Y.XmlText()
    case 'xmlfragment': return new Y.XmlFragment()
  }
}

/** The root a chain starting with `kind` lives in (a type the child can be put into). */
function rootFor(doc: Y.Doc, kind: NestKind): AnyType {
  return kind === 'map' ? doc.getMap('nest') : doc.getArray('nest')
}

/** Puts `child` into `parent`; through an origin means after a sibling written just before. */
function put(parent: AnyType, child: AnyType, viaOrigin: boolean, filler: () => AnyType | string): void {
  if (parent instanceof Y.Map) {
    // A second value for the same key has the first as its origin.
    if (viaOrigin) parent.set('k', 0)
    parent.set('k', child)
  } else if (parent instanceof Y.XmlText) {
    if (viaOrigin) parent.insert(0, 'x')
    parent.insertEmbed(parent.length, child)
  } else if (parent instanceof Y.Array) {
    if (viaOrigin) parent.insert(0, [0])
    parent.insert(parent.length, [child])
  } else {
    const xml = parent as Y.XmlFragment
    if (viaOrigin) xml.insert(0, [filler() as Y.XmlElement])
    xml.insert(xml.length, [child as Y.XmlElement])
  }
}

function nestedJson(depth: number): unknown {
  let v: unknown = 'leaf'
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { v }
  return v
}

/** The updates of a NestSpec, in the order to send them. */
export function buildNest(spec: NestSpec): Uint8Array[] {
  const doc = new Y.Doc({ gc: false })
  const perLevel: Uint8Array[] = []
  let last: Uint8Array | undefined
  doc.on('update', (u: Uint8Array) => { last = u })
  const depth = spec.kinds.length
  let parent = rootFor(doc, spec.kinds[0]!)
  for (let level = 0; level < depth; level++) {
    doc.clientID = spec.clients[spec.writers[level]! % spec.clients.length]!
    const child = newType(spec.kinds[level]!)
    last = undefined
    doc.transact(() => put(parent, child, spec.viaOrigin[level]!, () => new Y.XmlElement('hr')))
    perLevel.push(last!)
    parent = child
  }
  if (spec.json > 0) {
    last = undefined
    doc.transact(() => {
      const value = nestedJson(spec.json)
      if (parent instanceof Y.Map) parent.set('json', value)
      else if (parent instanceof Y.XmlText) parent.insertEmbed(0, value as object)
      else if (parent instanceof Y.Array) parent.insert(0, [value])
      else (parent as Y.XmlElement | Y.XmlFragment).insert(0, [new Y.XmlText('json')])
    })
    if (last) perLevel.push(last)
  }
  const pieces: Uint8Array[] = []
  const size = Math.max(1, spec.piece)
  for (let i = 0; i < perLevel.length; i += size) pieces.push(Y.mergeUpdates(perLevel.slice(i, i + size)))
  const order = spec.order.length > 0 ? spec.order.map((i) => i % pieces.length) : pieces.map((_, i) => i)
  const sent = [...new Set(order)]
  // Every piece goes out once; the order only says which go first.
  for (let i = 0; i < pieces.length; i++) if (!sent.includes(i)) sent.push(i)
  const out = sent.map((i) => pieces[i]!)
  if (spec.deleteOutermost) out.push(deleteOnly(outermostId(doc, spec.kinds[0]!)))
  return out
}

function outermostId(doc: Y.Doc, kind: NestKind): Y.ID {
  const root = rootFor(doc, kind)
  if (root instanceof Y.Map) return root._map.get('k')!.id
  for (let item = root._start; item !== null; item = item.right) {
    if (item.content instanceof Y.ContentType) return item.id
  }
  throw new Error('no outermost type')
}

/** A delete-set-only update deleting one item: 6-10 bytes, no structs. */
export function deleteOnly(id: { client: number; clock: number }, len = 1): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 0) // no structs
  encoding.writeVarUint(e, 1) // one client in the delete set
  encoding.writeVarUint(e, id.client)
  encoding.writeVarUint(e, 1) // one range
  encoding.writeVarUint(e, id.clock)
  encoding.writeVarUint(e, len)
  return encoding.toUint8Array(e)
}

/** A chain of `depth` levels of one kind (or a mix, cycling), with everything default. */
export function simpleNest(kind: NestKind | 'mixed', depth: number, options: Partial<NestSpec> = {}): NestSpec {
  const kinds = Array.from({ length: depth }, (_, i) => (kind === 'mixed' ? NEST_KINDS[i % NEST_KINDS.length]! : kind))
  return {
    kinds,
    viaOrigin: kinds.map(() => false),
    writers: kinds.map(() => 0),
    clients: [7001],
    json: 0,
    piece: depth + 1,
    order: [],
    deleteOutermost: false,
    ...options,
  }
}

/**
 * A random NestSpec around `limit`: mostly just under or over it, sometimes far past it
 * (up to `maxDepth`), through parents, origins or both, by up to three clients (their
 * IDs from `clientBase` on, so they never collide with real providers), in pieces sent
 * in random order.
 */
export function nestSpecArb(limit: number, maxDepth: number, clientBase: number): fc.Arbitrary<NestSpec> {
  const depthArb = fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: Math.max(1, limit - 3), max: limit + 3 }) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: limit * 2 }) },
    { weight: 1, arbitrary: fc.integer({ min: limit, max: maxDepth }) },
  )
  return depthArb.chain((depth) => fc.record({
    kinds: fc.oneof(
      fc.constantFrom(...NEST_KINDS).map((k) => Array.from({ length: depth }, () => k)),
      fc.array(fc.constantFrom(...NEST_KINDS), { minLength: depth, maxLength: depth }),
    ),
    viaOrigin: fc.oneof(
      fc.boolean().map((b) => Array.from({ length: depth }, () => b)),
      fc.array(fc.boolean(), { minLength: depth, maxLength: depth }),
    ),
    writers: fc.array(fc.nat({ max: 2 }), { minLength: depth, maxLength: depth }),
    clients: fc.uniqueArray(fc.integer({ min: clientBase, max: clientBase + 1_000_000 }), { minLength: 1, maxLength: 3 }),
    json: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat({ max: 8 }) }),
    piece: fc.oneof(fc.constant(depth + 1), fc.integer({ min: 1, max: Math.max(1, Math.ceil(depth / 2)) })),
    order: fc.array(fc.nat({ max: 64 }), { maxLength: 8 }),
    deleteOutermost: fc.boolean(),
  }))
}

/** How deep types nest in `doc` (walked without recursion). */
export function maxDepth(doc: Y.Doc): number {
  let max = 0
  // any: doc.share holds each root with its own event type.
  const stack: Array<[Y.AbstractType<any>, number]> = [...doc.share.values()].map((t) => [t, 0])
  while (stack.length > 0) {
    const [type, depth] = stack.pop()!
    const items: Y.Item[] = []
    for (let item = type._start; item !== null; item = item.right) items.push(item)
    for (const item of type._map.values()) items.push(item)
    for (const item of items) {
      if (item.deleted) continue
      max = Math.max(max, depth + 1)
      if (item.content instanceof Y.ContentType) stack.push([item.content.type, depth + 1])
    }
  }
  return max
}
