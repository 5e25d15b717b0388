/**
 * Cutting clock ranges out of an update (server/room/update-trim.ts): what the room stores of an
 * update that carries structs at IDs it already holds. Seeded: random documents of every
 * content kind by several clients, random ranges; the two parts of a split, applied in
 * either order, must give the document the whole update gives.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { withoutRanges, type ClockRange } from '../server/room/update-trim.js'
import { MAX_CLOCK } from '../server/room/update-checks.js'
import { sectionClients } from '../server/room/update-sections.js'
import { prng, testSeed } from './helpers/index.js'

/** A document edited by `clients` clients in turn: text with formats and embeds, maps, arrays, nested types, deletions. */
function randomDoc(rand: () => number, clients: number): Y.Doc {
  const docs = Array.from({ length: clients }, (_, i) => {
    const d = new Y.Doc()
    d.clientID = 1000 + i * 7
    return d
  })
  const sync = (): void => {
    for (const a of docs) for (const b of docs) if (a !== b) Y.applyUpdate(b, Y.encodeStateAsUpdate(a, Y.encodeStateVector(b)))
  }
  for (let step = 0; step < 40; step++) {
    const d = docs[Math.floor(rand() * docs.length)]!
    const text = d.getText('text')
    const map = d.getMap('map')
    const arr = d.getArray<unknown>('arr')
    const r = rand()
    if (r < 0.35) text.insert(Math.floor(rand() * (text.length + 1)), 'abcdefgh'.slice(0, 1 + Math.floor(rand() * 8)), rand() < 0.2 ? { bold: true } : undefined)
    else if (r < 0.45 && text.length > 1) text.delete(Math.floor(rand() * (text.length - 1)), 1 + Math.floor(rand() * 2))
    else if (r < 0.5) text.insertEmbed(Math.floor(rand() * (text.length + 1)), { image: 'x' })
    else if (r < 0.55) map.set(`k${Math.floor(rand() * 4)}`, rand() < 0.5 ? Math.floor(rand() * 100) : { nested: [1, 2] })
    else if (r < 0.58) map.set('bin', new Uint8Array([1, 2, 3]))
    else if (r < 0.6) map.set('sub', new Y.Doc())
    else if (r < 0.75) arr.insert(Math.floor(rand() * (arr.length + 1)), [1, 'two', { three: 3 }].slice(0, 1 + Math.floor(rand() * 3)))
    else if (r < 0.8 && arr.length > 0) arr.delete(Math.floor(rand() * arr.length), 1)
    else if (r < 0.9) {
      const inner = new Y.Map<unknown>()
      map.set(`t${Math.floor(rand() * 3)}`, inner)
      inner.set('x', 'y')
    } else {
      const x = new Y.XmlElement('p')
      // Yjs's types leave hooks out of what a fragment takes; it holds them all the same.
      d.getXmlFragment('xml').insert(0, rand() < 0.8 ? [x] : [new Y.XmlHook('hook') as unknown as Y.XmlElement])
      if (x.doc) x.insert(0, [new Y.XmlText('hi')])
    }
    if (rand() < 0.3) sync()
  }
  sync()
  return docs[0]!
}

function contents(doc: Y.Doc): unknown {
  return {
    text: doc.getText('text').toDelta(),
    map: Object.fromEntries([...doc.getMap('map').entries()].map(([k, v]) => [k, v instanceof Y.Doc ? `doc ${v.guid}` : v instanceof Y.AbstractType ? v.toJSON() : v])),
    arr: doc.getArray('arr').toJSON(),
    xml: doc.getXmlFragment('xml').toString(),
  }
}

/** Random disjoint sorted ranges within 0..end. */
function randomRanges(rand: () => number, end: number): ClockRange[] {
  const ranges: ClockRange[] = []
  let at = Math.floor(rand() * 3)
  while (at < end) {
    const len = 1 + Math.floor(rand() * 6)
    if (rand() < 0.5) ranges.push({ from: at, to: Math.min(end, at + len) })
    at += len + Math.floor(rand() * 4)
  }
  return ranges
}

function complement(ranges: readonly ClockRange[]): ClockRange[] {
  const out: ClockRange[] = []
  let at = 0
  for (const r of ranges) {
    if (r.from > at) out.push({ from: at, to: r.from })
    at = r.to
  }
  out.push({ from: at, to: MAX_CLOCK })
  return out
}

function ids(update: Uint8Array): Set<string> {
  const out = new Set<string>()
  for (const s of Y.decodeUpdate(update).structs) {
    if (s instanceof Y.Skip) continue
    for (let c = s.id.clock; c < s.id.clock + s.length; c++) out.add(`${s.id.client}:${c}`)
  }
  return out
}

test('seeded: the parts of an update cut along random ranges add up to the update, applied in either order', (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed} (replay with SEED=${seed})`)
  const rand = prng(seed)
  for (let round = 0; round < 60; round++) {
    const source = randomDoc(rand, 1 + Math.floor(rand() * 3))
    const whole = Y.encodeStateAsUpdate(source)
    const sv = Y.decodeStateVector(Y.encodeStateVector(source))
    const cut = new Map<number, ClockRange[]>()
    for (const [client, clock] of sv) cut.set(client, randomRanges(rand, clock))
    const rest = withoutRanges(whole, (c) => cut.get(c) ?? [])
    const removed = withoutRanges(whole, (c) => complement(cut.get(c) ?? []))
    const what = `round ${round} (seed ${seed})`

    const wholeIds = ids(whole)
    const restIds = ids(rest)
    const removedIds = ids(removed)
    for (const id of restIds) assert.ok(!removedIds.has(id), `${what}: ${id} in both parts`)
    assert.equal(restIds.size + removedIds.size, wholeIds.size, `${what}: the parts cover the update`)
    for (const [client, ranges] of cut) {
      for (const r of ranges) for (let c = r.from; c < r.to; c++) assert.ok(!restIds.has(`${client}:${c}`), `${what}: ${client}:${c} was cut`)
    }

    const merged = new Y.Doc()
    Y.applyUpdate(merged, Y.mergeUpdates([rest, removed]))
    assert.equal(merged.store.pendingStructs, null, `${what}: merged, nothing pending`)
    assert.deepEqual(contents(merged), contents(source), `${what}: merged`)
    assert.deepEqual(Y.encodeStateVector(merged), Y.encodeStateVector(source), `${what}: merged`)
    for (const order of [[rest, removed], [removed, rest]]) {
      const doc = new Y.Doc()
      for (const u of order) Y.applyUpdate(doc, u)
      // Applied one after the other, Yjs may leave structs pending that it could integrate:
      // it retries them only once a client passes the clock it noted, and it notes the
      // deepest blocker of a chain, not what each struct waits for (README, Security:
      // "Not prevented yet"). Everything is there all the same: encoded whole, it integrates.
      const whole = new Y.Doc()
      Y.applyUpdate(whole, Y.encodeStateAsUpdate(doc))
      assert.equal(whole.store.pendingStructs, null, `${what}: nothing pending`)
      assert.deepEqual(contents(whole), contents(source), what)
      assert.deepEqual(Y.encodeStateVector(whole), Y.encodeStateVector(source), what)
    }
  }
})

test('the delete set is kept whole: everything cut leaves only the deletions, nothing cut the same update', () => {
  const doc = new Y.Doc()
  doc.clientID = 5
  doc.getText('text').insert(0, 'hello')
  doc.getText('text').delete(1, 2)
  const whole = Y.encodeStateAsUpdate(doc)
  const none = withoutRanges(whole, () => [{ from: 0, to: MAX_CLOCK }])
  const decoded = Y.decodeUpdate(none)
  assert.equal(decoded.structs.length, 0)
  assert.deepEqual([...decoded.ds.clients].map(([c, r]) => [c, r.map((d) => [d.clock, d.len])]), [[5, [[1, 2]]]])
  const kept = new Y.Doc()
  Y.applyUpdate(kept, withoutRanges(whole, () => []))
  assert.equal(kept.getText('text').toString(), 'hlo', 'nothing cut: the same update')
})

test('seeded: sectionClients reads through every section Yjs writes, every content kind, to the delete set', (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed} (replay with SEED=${seed})`)
  const rand = prng(seed)
  for (let round = 0; round < 40; round++) {
    const source = randomDoc(rand, 1 + Math.floor(rand() * 3))
    const updates: Uint8Array[] = [Y.encodeStateAsUpdate(source)]
    // Incremental updates too, and merges of them (Skips between a client's runs).
    const copy = new Y.Doc()
    copy.on('update', (u: Uint8Array) => updates.push(u))
    Y.applyUpdate(copy, updates[0]!)
    copy.getText('text').insert(0, 'more')
    copy.getMap('map').set('k0', 'x')
    updates.push(Y.mergeUpdates(updates.filter(() => rand() < 0.5)))
    for (const u of updates) {
      const decoded = Y.decodeUpdate(u)
      const clients: number[] = []
      for (const s of decoded.structs) if (clients[clients.length - 1] !== s.id.client) clients.push(s.id.client)
      assert.deepEqual(sectionClients(u), clients, `round ${round} (seed ${seed})`)
    }
  }
})
