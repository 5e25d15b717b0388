/**
 * The Store contract, as one suite every backend runs (LevelDB, memory, and any
 * cluster store): `storeConformance('postgres', () => openMyStore())`.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { isHistoryLogStore, isPingableStore, isReplicaStore, isVersionedStore, type HistoryLogStore, type Store } from '../../server/persistence/store.js'
import { decodeTombstone } from '../../server/persistence/tombstone.js'

export interface StoreFixture {
  store: Store
  /** Closes `store` and opens the same storage again; omit for backends that forget on close. */
  reopen?: () => Promise<Store>
  /** Closes whatever is open and removes the storage. */
  cleanup: () => Promise<void>
}

/** A real Yjs update that inserts `text` (updates of one doc, so they depend on each other). */
function editor(clientID?: number): { doc: Y.Doc; edit: (text: string) => Uint8Array; updates: Uint8Array[] } {
  const doc = new Y.Doc()
  if (clientID !== undefined) doc.clientID = clientID
  const updates: Uint8Array[] = []
  return {
    doc,
    updates,
    edit(text) {
      let update: Uint8Array | undefined
      const capture = (u: Uint8Array): void => { update = u }
      doc.once('update', capture)
      doc.getText('t').insert(doc.getText('t').length, text)
      updates.push(update!)
      return update!
    },
  }
}

function replay(updates: readonly Uint8Array[]): string {
  const doc = new Y.Doc()
  for (const u of updates) Y.applyUpdate(doc, u)
  return doc.getText('t').toString()
}

export function storeConformance(name: string, open: () => Promise<StoreFixture>): void {
  const withStore = (title: string, body: (f: StoreFixture) => Promise<void>): void => {
    test(`${name}: ${title}`, async (t) => {
      const fixture = await open()
      t.after(() => fixture.cleanup())
      await body(fixture)
    })
  }

  withStore('a room never written loads empty', async ({ store }) => {
    assert.deepEqual(await store.load('nothing-here'), { updates: [], lastSeq: 0, pendingUpdates: 0 })
  })

  withStore('append returns growing sequence numbers and load returns the updates in order', async ({ store }) => {
    const e = editor()
    const updates = ['a', 'b', 'c', 'd'].map((s) => e.edit(s))
    const s1 = await store.append('r', [updates[0]!])
    const s2 = await store.append('r', [updates[1]!, updates[2]!])
    const s3 = await store.append('r', [updates[3]!])
    assert.ok(s1 >= 1 && s2 >= s1 + 2 && s3 > s2, `sequence numbers ${s1}, ${s2}, ${s3}`)
    const loaded = await store.load('r')
    assert.equal(loaded.lastSeq, s3)
    assert.equal(loaded.pendingUpdates, 4)
    assert.deepEqual(loaded.updates.map((u) => Buffer.from(u)), updates.map((u) => Buffer.from(u)))
    assert.equal(replay(loaded.updates), 'abcd')
  })

  withStore('appends called together keep call order per room and never mix rooms', async ({ store }) => {
    const rooms = ['x', 'y', 'x:y', 'x;', 'a/b', 'ü 🙂', '%41', 'x:']
    const editors = new Map(rooms.map((r) => [r, editor()]))
    const calls: Array<Promise<number>> = []
    const expected = new Map<string, string>()
    for (let i = 0; i < 200; i++) {
      const room = rooms[i % rooms.length]!
      const ch = String.fromCharCode(97 + (i % 26))
      expected.set(room, (expected.get(room) ?? '') + ch)
      calls.push(store.append(room, [editors.get(room)!.edit(ch)]))
    }
    const seqs = await Promise.all(calls)
    for (const room of rooms) {
      const mine = seqs.filter((_, i) => rooms[i % rooms.length] === room)
      for (let i = 1; i < mine.length; i++) assert.ok(mine[i]! > mine[i - 1]!, `room ${room}: seq ${mine[i]} after ${mine[i - 1]}`)
      const loaded = await store.load(room)
      assert.equal(replay(loaded.updates), expected.get(room), `room ${room}`)
      assert.equal(loaded.lastSeq, mine.at(-1))
    }
  })

  withStore('stored bytes do not change when the caller reuses its buffer', async ({ store }) => {
    const e = editor()
    const update = e.edit('hello')
    const copy = update.slice()
    await store.append('r', [update])
    update.fill(0)
    assert.deepEqual(Buffer.from((await store.load('r')).updates[0]!), Buffer.from(copy))
  })

  withStore('compact replaces the prefix up to upTo and keeps later updates', async ({ store }) => {
    const e = editor()
    let upTo = 0
    for (const s of ['a', 'b', 'c']) upTo = await store.append('r', [e.edit(s)])
    const snapshot = Y.encodeStateAsUpdate(e.doc)
    const later = e.edit('d')
    // An append running while compaction runs must survive it.
    const [, laterSeq] = await Promise.all([store.compact('r', snapshot, upTo), store.append('r', [later])])
    const loaded = await store.load('r')
    assert.equal(loaded.pendingUpdates, 1)
    assert.equal(loaded.updates.length, 2)
    assert.equal(loaded.lastSeq, laterSeq)
    assert.equal(replay(loaded.updates), 'abcd')
    const next = await store.append('r', [e.edit('e')])
    assert.ok(next > laterSeq, 'sequence numbers keep growing after compaction')
    assert.equal(replay((await store.load('r')).updates), 'abcde')
  })

  withStore('compaction of everything leaves a state and an empty log', async ({ store }) => {
    const e = editor()
    let upTo = 0
    for (let i = 0; i < 50; i++) upTo = await store.append('r', [e.edit(String(i % 10))])
    await store.compact('r', Y.encodeStateAsUpdate(e.doc), upTo)
    const loaded = await store.load('r')
    assert.equal(loaded.pendingUpdates, 0)
    assert.equal(loaded.updates.length, 1)
    assert.equal(loaded.lastSeq, upTo)
    assert.equal(replay(loaded.updates), e.doc.getText('t').toString())
    const room = (await store.listRooms()).find((r) => r.name === 'r')
    assert.ok(room)
    assert.equal(room.updates, 0)
    assert.equal(room.lastSeq, upTo)
  })

  withStore('listRooms names every written room with its log size', async ({ store }) => {
    const e1 = editor()
    const e2 = editor()
    await store.append('beta', [e1.edit('x')])
    await store.append('alpha:1', [e2.edit('y'), e2.edit('z')])
    const rooms = await store.listRooms()
    assert.deepEqual(rooms.map((r) => r.name), ['alpha:1', 'beta'])
    assert.equal(rooms[0]!.updates, 2)
    assert.equal(rooms[1]!.updates, 1)
    assert.ok(rooms.every((r) => r.bytes > 0 && r.lastSeq >= r.updates))
  })

  withStore('append after close fails with STORE_CLOSED', async ({ store }) => {
    await store.close()
    await assert.rejects(store.append('r', [editor().edit('x')]), (err: { code?: string }) => err.code === 'STORE_CLOSED')
  })

  withStore('what was appended and compacted is there after reopening', async (fixture) => {
    if (!fixture.reopen) return
    const e = editor()
    let upTo = 0
    for (const s of ['a', 'b']) upTo = await fixture.store.append('r', [e.edit(s)])
    await fixture.store.compact('r', Y.encodeStateAsUpdate(e.doc), upTo)
    const last = await fixture.store.append('r', [e.edit('c')])
    const reopened = await fixture.reopen()
    const loaded = await reopened.load('r')
    assert.equal(replay(loaded.updates), 'abc')
    assert.equal(loaded.lastSeq, last)
    assert.ok((await reopened.append('r', [e.edit('d')])) > last, 'sequence numbers continue after reopening')
    assert.equal(replay((await reopened.load('r')).updates), 'abcd')
  })

  // ---- history log (issue 18): every backend that keeps one must keep it the same way ----

  const withLog = (title: string, body: (store: HistoryLogStore, f: StoreFixture) => Promise<void>): void => {
    withStore(`history log: ${title}`, async (f) => {
      assert.ok(isHistoryLogStore(f.store), 'every built-in store keeps a history log')
      await body(f.store, f)
    })
  }

  withLog('each stored update is logged with its seq, a never-decreasing time and its user', async (store) => {
    const e = editor()
    const before = Date.now()
    const s1 = await store.append('r', [e.edit('a')], { user: 'ana' })
    const s2 = await store.append('r', [e.edit('b'), e.edit('c')], { user: 'ben' })
    const s3 = await store.append('r', [e.edit('d')])
    const after = Date.now()
    const { base, entries } = await store.readLog('r')
    assert.equal(base, undefined, 'nothing folded yet')
    assert.deepEqual(entries.map((x) => x.seq), [s1, s2 - 1, s2, s3])
    assert.deepEqual(entries.map((x) => x.user), ['ana', 'ben', 'ben', undefined])
    for (let i = 0; i < entries.length; i++) {
      assert.ok(entries[i]!.at >= before && entries[i]!.at <= after, `entry ${i} stamped ${entries[i]!.at}, not within [${before}, ${after}]`)
      if (i > 0) assert.ok(entries[i]!.at >= entries[i - 1]!.at, 'times never decrease along the log')
    }
    assert.equal(replay(entries.map((x) => x.update)), 'abcd')
    // untilAt and afterSeq select a prefix and a suffix.
    assert.deepEqual((await store.readLog('r', { afterSeq: s1 })).entries.map((x) => x.seq), [s2 - 1, s2, s3])
    assert.deepEqual((await store.readLog('r', { untilAt: before - 1 })).entries, [])
    assert.equal((await store.readLog('r', { untilAt: after })).entries.length, 4)
    assert.deepEqual(await store.readLog('never-written'), { base: undefined, entries: [] })
  })

  withLog('compaction leaves the log alone; foldLog replaces its prefix by a base', async (store, f) => {
    const e = editor()
    const seqs: number[] = []
    for (const ch of ['a', 'b', 'c', 'd']) seqs.push(await store.append('r', [e.edit(ch)], { user: 'u' }))
    await store.compact('r', Y.encodeStateAsUpdate(e.doc), seqs[3]!)
    assert.equal((await store.readLog('r')).entries.length, 4, 'compaction does not touch the log')
    const doc = new Y.Doc()
    for (const x of (await store.readLog('r')).entries.slice(0, 2)) Y.applyUpdate(doc, x.update)
    const at = (await store.readLog('r')).entries[1]!.at
    await store.foldLog('r', { upTo: seqs[1]!, at, state: Y.encodeStateAsUpdate(doc) })
    let log = await store.readLog('r')
    assert.equal(log.base?.upTo, seqs[1])
    assert.equal(log.base?.at, at)
    assert.deepEqual(log.entries.map((x) => x.seq), [seqs[2], seqs[3]])
    assert.equal(replay([log.base!.state, ...log.entries.map((x) => x.update)]), 'abcd')
    if (f.reopen) {
      const reopened = await f.reopen()
      assert.ok(isHistoryLogStore(reopened))
      log = await reopened.readLog('r')
      assert.equal(log.base?.upTo, seqs[1])
      assert.equal(replay([log.base!.state, ...log.entries.map((x) => x.update)]), 'abcd')
    }
  })

  withLog('folds and compactions in either order never lose an update load needs', async (store, f) => {
    const e = editor()
    const seqs: number[] = []
    for (const ch of ['a', 'b', 'c', 'd', 'e']) seqs.push(await store.append('r', [e.edit(ch)]))
    const stateThrough = (n: number): Uint8Array => {
      const d = new Y.Doc()
      for (const x of e.updates.slice(0, n)) Y.applyUpdate(d, x)
      return Y.encodeStateAsUpdate(d)
    }
    await store.compact('r', stateThrough(2), seqs[1]!)
    // The log folds further than the compacted state: updates 3 and 4 are still needed by load.
    await store.foldLog('r', { upTo: seqs[3]!, at: Date.now(), state: stateThrough(4) })
    assert.equal(replay((await store.load('r')).updates), 'abcde')
    await store.compact('r', stateThrough(5), seqs[4]!)
    const loaded = await store.load('r')
    assert.equal(replay(loaded.updates), 'abcde')
    assert.equal(loaded.pendingUpdates, 0)
    assert.deepEqual((await store.readLog('r')).entries.map((x) => x.seq), [seqs[4]])
    if (f.reopen) {
      const reopened = await f.reopen()
      assert.equal(replay((await reopened.load('r')).updates), 'abcde')
    }
  })

  withLog('a version equal to the compacted state keeps its bytes when the room is compacted again, deleted or backed up', async (store, f) => {
    assert.ok(isVersionedStore(store))
    const e = editor()
    let last = 0
    for (const ch of ['a', 'b']) last = await store.append('r', [e.edit(ch)])
    const state = Y.encodeStateAsUpdate(e.doc)
    await store.compact('r', state, last)
    // What the history keeper records at unload: the compacted state itself (LevelDB stores it once).
    const same = (bytes: Uint8Array | undefined): boolean => bytes !== undefined && Buffer.compare(bytes, state) === 0
    const v1 = await store.putVersion('r', { at: 1, seq: last, state })
    const v2 = await store.putVersion('r', { at: 2, seq: last, state, pinned: true })
    assert.ok(same((await store.getVersion('r', v1.id))?.state))
    const backup = await store.snapshot()
    assert.deepEqual((await backup.read('r')).versions.map((v) => replay([v.state])), ['ab', 'ab'])
    await backup.close()
    await store.deleteVersions('r', [v1.id])
    const next = await store.append('r', [e.edit('c')])
    await store.compact('r', Y.encodeStateAsUpdate(e.doc), next)
    const reopened = (f.reopen ? await f.reopen() : store) as typeof store
    assert.equal(await reopened.getVersion('r', v1.id), undefined)
    assert.ok(same((await reopened.getVersion('r', v2.id))?.state))
    assert.equal(replay((await reopened.load('r')).updates), 'abc')
    // A version of another moment is stored as itself.
    const v3 = await reopened.putVersion('r', { at: 3, seq: last, state })
    assert.ok(same((await reopened.getVersion('r', v3.id))?.state))
    await reopened.delete('r')
    assert.deepEqual(await reopened.listVersions('r'), [])
    await reopened.putVersion('r', { at: 4, seq: 0, state: Y.encodeStateAsUpdate(new Y.Doc()) })
    assert.equal((await reopened.listVersions('r')).length, 1)
  })

  withLog('a snapshot carries the log and pinned versions; putRoom restores them, or starts a log without one', async (store) => {
    assert.ok(isVersionedStore(store))
    const e = editor()
    let last = 0
    for (const ch of ['a', 'b', 'c']) last = await store.append('src', [e.edit(ch)], { user: 'zoe' })
    await store.putVersion('src', { at: Date.now(), seq: last, state: Y.encodeStateAsUpdate(e.doc), pinned: true })
    assert.equal((await store.listVersions('src'))[0]!.pinned, true)
    const snapshot = await store.snapshot()
    const record = await snapshot.read('src')
    await snapshot.close()
    assert.equal(record.log?.entries.length, 3)
    assert.equal(record.versions[0]!.pinned, true)
    await store.putRoom({ ...record, name: 'copy' })
    const copied = await store.readLog('copy')
    assert.deepEqual(copied.entries.map((x) => [x.seq, x.at, x.user]), record.log!.entries.map((x) => [x.seq, x.at, x.user]))
    assert.equal((await store.listVersions('copy'))[0]!.pinned, true)
    // A record from an old backup (no log): the log starts at the restore, with the state as its base.
    const { log: _drop, ...old } = record
    await store.putRoom({ ...old, name: 'old', updates: [Y.encodeStateAsUpdate(e.doc)] })
    const started = await store.readLog('old')
    assert.equal(started.base?.upTo, last)
    assert.equal(started.entries.length, 0)
    assert.equal(replay([started.base!.state]), 'abc')
    const next = await store.append('old', [e.edit('d')])
    assert.deepEqual((await store.readLog('old')).entries.map((x) => x.seq), [next])
  })

  // ---- delete (issue 14) ------------------------------------------------------------------

  const refused = (err: { code?: string }): boolean => err.code === 'ROOM_DELETED'

  withStore('delete removes every key of the room and nothing of the others', async (f) => {
    const { store } = f
    // Names that share a prefix with 'r' in a key layout: their keys must survive.
    const others = ['r:x', 'r;', 'ra', 'r%3A', 'x']
    const editors = new Map<string, ReturnType<typeof editor>>()
    for (const room of ['r', ...others]) {
      const e = editor()
      editors.set(room, e)
      let last = 0
      for (const ch of ['a', 'b', 'c']) last = await store.append(room, [e.edit(ch)], { user: 'u' })
      await store.compact(room, Y.encodeStateAsUpdate(e.doc), last)
      await store.append(room, [e.edit('d')])
      if (isVersionedStore(store)) await store.putVersion(room, { at: Date.now(), seq: last, state: Y.encodeStateAsUpdate(e.doc), pinned: true })
      if (isHistoryLogStore(store)) {
        const log = await store.readLog(room)
        const doc = new Y.Doc()
        Y.applyUpdate(doc, log.entries[0]!.update)
        await store.foldLog(room, { upTo: log.entries[0]!.seq, at: log.entries[0]!.at, state: Y.encodeStateAsUpdate(doc) })
      }
    }
    const before = await store.load('r')
    const result = await store.delete('r')
    assert.deepEqual(result, { existed: true, deleted: before.generation ?? 0 })
    const loaded = await store.load('r')
    assert.deepEqual({ ...loaded, generation: undefined }, { updates: [], lastSeq: 0, pendingUpdates: 0, generation: undefined })
    assert.ok((loaded.generation ?? 0) > (before.generation ?? 0), 'the generation grows')
    assert.deepEqual((await store.listRooms()).map((r) => r.name), [...others].sort())
    if (isVersionedStore(store)) {
      assert.deepEqual(await store.listVersions('r'), [])
      const snapshot = await store.snapshot()
      assert.deepEqual(snapshot.rooms, [...others].sort())
      await snapshot.close()
    }
    if (isHistoryLogStore(store)) {
      const log = await store.readLog('r')
      assert.deepEqual([log.base, log.entries], [undefined, []])
    }
    for (const room of others) {
      assert.equal(replay((await store.load(room)).updates), 'abcd', `room ${room} untouched`)
      if (isVersionedStore(store)) assert.equal((await store.listVersions(room)).length, 1, `room ${room} keeps its version`)
      if (isHistoryLogStore(store)) assert.equal((await store.readLog(room)).base?.upTo, 1, `room ${room} keeps its log`)
    }
    // The room starts afresh: its sequence, its log.
    const e = editor()
    const seq = await store.append('r', [e.edit('new')], { user: 'v' })
    assert.equal(seq, 1)
    assert.equal(replay((await store.load('r')).updates), 'new')
    if (isHistoryLogStore(store)) assert.deepEqual((await store.readLog('r')).entries.map((x) => [x.seq, x.user]), [[1, 'v']])
    if (f.reopen) {
      const reopened = await f.reopen()
      assert.equal(replay((await reopened.load('r')).updates), 'new', 'the delete is durable')
      assert.deepEqual((await reopened.listRooms()).map((r) => r.name), ['r', ...others].sort())
    }
  })

  withStore('deleting a room never written: nothing existed, nothing is written', async ({ store }) => {
    assert.equal((await store.delete('never', { tombstone: true })).existed, false)
    const loaded = await store.load('never')
    assert.deepEqual([loaded.updates, loaded.lastSeq, loaded.tombstone], [[], 0, undefined])
    assert.deepEqual(await store.listRooms(), [])
  })

  withStore('writes made for the deleted generation are refused; the new generation\'s pass', async ({ store }) => {
    const e = editor()
    const old = (await store.load('r')).generation ?? 0
    const seq = await store.append('r', [e.edit('a')], { generation: old })
    await store.delete('r')
    const now = (await store.load('r')).generation ?? 0
    assert.notEqual(now, old)
    await assert.rejects(store.append('r', [e.edit('b')], { generation: old }), refused, 'append')
    await assert.rejects(store.compact('r', Y.encodeStateAsUpdate(e.doc), seq, { generation: old }), refused, 'compact')
    if (isVersionedStore(store)) {
      await assert.rejects(store.putVersion('r', { at: Date.now(), seq, state: Y.encodeStateAsUpdate(e.doc) }, { generation: old }), refused, 'putVersion')
    }
    if (isHistoryLogStore(store)) {
      await assert.rejects(store.foldLog('r', { upTo: seq, at: Date.now(), state: Y.encodeStateAsUpdate(e.doc) }, { generation: old }), refused, 'foldLog')
    }
    assert.deepEqual((await store.load('r')).updates, [], 'nothing of the old generation was written')
    assert.deepEqual(await store.listRooms(), [])
    const fresh = editor()
    const s1 = await store.append('r', [fresh.edit('x')], { generation: now })
    await store.compact('r', Y.encodeStateAsUpdate(fresh.doc), s1, { generation: now })
    if (isVersionedStore(store)) await store.putVersion('r', { at: Date.now(), seq: s1, state: Y.encodeStateAsUpdate(fresh.doc) }, { generation: now })
    if (isHistoryLogStore(store)) {
      const log = await store.readLog('r')
      assert.equal(log.generation ?? 0, now, 'readLog tells the generation it read')
      await store.foldLog('r', { upTo: s1, at: log.entries[0]!.at, state: Y.encodeStateAsUpdate(fresh.doc) }, { generation: log.generation ?? 0 })
    }
    assert.equal(replay((await store.load('r')).updates), 'x')
  })

  withStore('appends called before a delete go with it, fenced ones called after it are refused', async ({ store }) => {
    const e = editor()
    const generation = (await store.load('r')).generation ?? 0
    const before = [store.append('r', [e.edit('a')]), store.append('r', [e.edit('b')], { generation })]
    const deleted = store.delete('r')
    const late = store.append('r', [e.edit('c')], { generation }).then(() => 'stored', (err: { code?: string }) => err.code)
    await Promise.all([...before, deleted])
    assert.equal(await late, 'ROOM_DELETED')
    assert.deepEqual((await store.load('r')).updates, [])
    const fresh = editor()
    assert.equal(await store.append('r', [fresh.edit('z')], { generation: (await store.load('r')).generation ?? 0 }), 1)
    assert.equal(replay((await store.load('r')).updates), 'z')
  })

  withStore('a fenced compaction racing a delete never brings the room back', async ({ store }) => {
    const e = editor()
    let last = 0
    for (const ch of ['a', 'b', 'c']) last = await store.append('r', [e.edit(ch)], { generation: 0 })
    const generation = (await store.load('r')).generation ?? 0
    const compaction = store.compact('r', Y.encodeStateAsUpdate(e.doc), last, { generation }).then(() => 'stored', (err: { code?: string }) => err.code)
    await store.delete('r')
    const outcome = await compaction
    assert.ok(outcome === 'stored' || outcome === 'ROOM_DELETED', String(outcome))
    const loaded = await store.load('r')
    assert.deepEqual([loaded.updates, loaded.lastSeq], [[], 0])
    assert.deepEqual(await store.listRooms(), [])
  })

  withStore('a tombstone holds the deleted clients, grows with a later one, and a plain delete removes it', async (f) => {
    const { store } = f
    const ada = editor(1111)
    const bob = editor(2222)
    await store.append('r', [ada.edit('hello ')])
    await store.append('r', [bob.edit('world'), bob.edit('!')])
    assert.deepEqual(await store.delete('r', { tombstone: true }).then((r) => r.existed), true)
    let tombstone = (await store.load('r')).tombstone
    assert.ok(tombstone, 'load returns the tombstone')
    assert.deepEqual([...decodeTombstone(tombstone)].sort(), [[1111, 6], [2222, 6]])
    assert.deepEqual(await store.listRooms(), [], 'a tombstone is no room')
    const cid = editor(3333)
    await store.append('r', [cid.edit('new')])
    await store.delete('r', { tombstone: true })
    tombstone = (await store.load('r')).tombstone
    assert.deepEqual([...decodeTombstone(tombstone!)].map(([client]) => client).sort(), [1111, 2222, 3333])
    if (f.reopen) {
      const reopened = await f.reopen()
      assert.deepEqual([...decodeTombstone((await reopened.load('r')).tombstone!)].map(([client]) => client).sort(), [1111, 2222, 3333], 'the tombstone is durable')
      assert.equal((await reopened.delete('r')).existed, true, 'a tombstone alone is something stored')
      assert.equal((await reopened.load('r')).tombstone, undefined)
      return
    }
    assert.equal((await store.delete('r')).existed, true, 'a tombstone alone is something stored')
    assert.equal((await store.load('r')).tombstone, undefined)
  })

  withStore('putRoom replaces a tombstone with the record', async ({ store }) => {
    if (!isVersionedStore(store)) return
    const e = editor(4444)
    const seq = await store.append('r', [e.edit('old')])
    await store.delete('r', { tombstone: true })
    await store.putRoom({ name: 'r', updatedAt: Date.now(), lastSeq: seq, updates: [Y.encodeStateAsUpdate(e.doc)], versions: [] })
    const loaded = await store.load('r')
    assert.equal(loaded.tombstone, undefined)
    assert.equal(replay(loaded.updates), 'old')
  })

  withStore('a snapshot carries the tombstones (with content under the name again or not); putTombstone sets one and leaves the content', async ({ store }) => {
    if (!isVersionedStore(store) || !store.putTombstone) return
    const gone = editor(5555)
    await store.append('gone', [gone.edit('gone')])
    await store.delete('gone', { tombstone: true })
    const back = editor(6666)
    await store.append('back', [back.edit('old')])
    await store.delete('back', { tombstone: true })
    await store.append('back', [editor(7777).edit('new')])
    const snapshot = await store.snapshot()
    try {
      assert.deepEqual(snapshot.rooms, ['back'], 'a tombstone alone is no room of the snapshot')
      assert.deepEqual([...(snapshot.tombstones ?? new Map())].map(([name, t]) => [name, [...decodeTombstone(t).keys()]]).sort(), [['back', [6666]], ['gone', [5555]]])
    } finally {
      await snapshot.close()
    }
    const other = (await store.load('gone')).tombstone!
    await store.putTombstone('back', other)
    const loaded = await store.load('back')
    assert.deepEqual([...decodeTombstone(loaded.tombstone!).keys()], [5555], 'replaced, not merged')
    assert.equal(replay(loaded.updates), 'new', 'the content stays')
    await assert.rejects(store.putTombstone('x', new Uint8Array([5])), 'a value that is no tombstone is refused')
  })

  withStore('every method rejects with STORE_CLOSED after close()', async ({ store }) => {
    const e = editor(5555)
    const seq = await store.append('r', [e.edit('before')])
    await store.close()
    const state = Y.encodeStateAsUpdate(e.doc)
    const calls: Array<[string, () => Promise<unknown>]> = [
      ['load', () => store.load('r')],
      ['append', () => store.append('r', [e.edit('after')])],
      ['compact', () => store.compact('r', state, seq)],
      ['delete', () => store.delete('r')],
      ['listRooms', () => store.listRooms()],
    ]
    if (isVersionedStore(store)) {
      calls.push(
        ['putVersion', () => store.putVersion('r', { at: Date.now(), seq, state })],
        ['listVersions', () => store.listVersions('r')],
        ['getVersion', () => store.getVersion('r', 1)],
        ['deleteVersions', () => store.deleteVersions('r', [1])],
        ['snapshot', () => store.snapshot()],
        ['putRoom', () => store.putRoom({ name: 'r', updatedAt: Date.now(), lastSeq: seq, updates: [state], versions: [] })],
      )
    }
    if (isHistoryLogStore(store)) {
      calls.push(
        ['readLog', () => store.readLog('r')],
        ['foldLog', () => store.foldLog('r', { upTo: seq, at: Date.now(), state })],
      )
    }
    if (isPingableStore(store)) calls.push(['ping', () => store.ping()])
    if (isReplicaStore(store)) {
      calls.push(
        ['readSince', () => store.readSince('r', 0)],
        ['lastSeqs', () => store.lastSeqs(['r'])],
      )
    }
    for (const [method, call] of calls) {
      // A method that throws before returning its promise counts too: callers await either way.
      await assert.rejects(async () => call(), { code: 'STORE_CLOSED' }, `${method} after close()`)
    }
    await store.close()
  })

  withStore('a replica store reads back what was stored after a sequence number (cluster catch-up)', async ({ store }) => {
    if (!isReplicaStore(store)) return
    const e = editor(6666)
    const s1 = await store.append('r', [e.edit('a')])
    const s2 = await store.append('r', [e.edit('b')])
    const since = await store.readSince('r', s1)
    assert.deepEqual(since.updates.map((u) => u.seq), [s2])
    assert.equal(since.lastSeq, s2)
    const last = await store.lastSeqs(['r', 'never-written'])
    assert.equal(last.get('r')?.lastSeq, s2)
    assert.equal(last.has('never-written'), false)
  })
}
