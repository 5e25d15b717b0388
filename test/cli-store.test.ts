/**
 * The history and backup capabilities of the stores (LevelDB and memory): version ids,
 * listing without states, deletion, snapshot isolation from later writes (what makes a
 * live backup consistent), and whole-room replacement (what a restore writes).
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { LevelStore } from '../server/persistence/leveldb.js'
import { MemoryStore } from '../server/persistence/memory.js'
import type { VersionedStore } from '../server/persistence/store.js'
import { tempDir } from './helpers/index.js'

const bytes = (...xs: number[]): Uint8Array => new Uint8Array(xs)

const backends: Array<[string, () => Promise<{ store: VersionedStore; done: () => Promise<void> }>]> = [
  ['memory', async () => ({ store: new MemoryStore(), done: async () => {} })],
  ['leveldb', async () => {
    const dir = await tempDir()
    const store = await LevelStore.open(dir.path)
    return { store, done: async () => { await store.close(); await dir.remove() } }
  }],
]

for (const [name, make] of backends) {
  describe(`${name} store: history and backup`, () => {
    test('versions: increasing ids, listed oldest first without states, read back, deleted', async (t) => {
      const { store, done } = await make()
      t.after(done)
      const a = await store.putVersion('r', { at: 1000, seq: 3, state: bytes(1, 2, 3) })
      const b = await store.putVersion('r', { at: 2000, seq: 5, state: bytes(4, 5) })
      await store.putVersion('other', { at: 1500, seq: 1, state: bytes(9) })
      assert.equal(a.id, 1)
      assert.equal(b.id, 2)
      assert.deepEqual(await store.listVersions('r'), [
        { id: 1, at: 1000, seq: 3, bytes: 3 },
        { id: 2, at: 2000, seq: 5, bytes: 2 },
      ])
      assert.deepEqual([...(await store.getVersion('r', 2))!.state], [4, 5])
      assert.equal(await store.getVersion('r', 7), undefined)
      await store.deleteVersions('r', [1])
      assert.deepEqual((await store.listVersions('r')).map((v) => v.id), [2])
      const c = await store.putVersion('r', { at: 3000, seq: 6, state: bytes(6) })
      assert.equal(c.id, 3, 'ids are never reused')
      assert.deepEqual((await store.listVersions('other')).map((v) => v.id), [1])
      assert.deepEqual(await store.listVersions('never'), [])
    })

    test('snapshot: a consistent view that later writes do not change', async (t) => {
      const { store, done } = await make()
      t.after(done)
      await store.append('a', [bytes(0, 0)])
      await store.append('b', [bytes(0, 0)])
      await store.putVersion('a', { at: 1, seq: 1, state: bytes(7) })
      const snap = await store.snapshot()
      t.after(() => snap.close())
      await store.append('a', [bytes(1, 1)])
      await store.append('c', [bytes(2, 2)])
      await store.compact('b', bytes(3, 3), 1)
      await store.putVersion('a', { at: 2, seq: 2, state: bytes(8) })
      assert.deepEqual(snap.rooms, ['a', 'b'])
      const a = await snap.read('a')
      assert.equal(a.lastSeq, 1)
      assert.deepEqual(a.updates.map((u) => [...u]), [[0, 0]])
      assert.deepEqual(a.versions.map((v) => v.id), [1])
      assert.deepEqual((await snap.read('b')).updates.map((u) => [...u]), [[0, 0]], 'compaction after the snapshot is not seen')
      assert.equal(typeof a.updatedAt, 'number')
    })

    test('putRoom: replaces what the room held, keeps other rooms, appends continue after lastSeq', async (t) => {
      const { store, done } = await make()
      t.after(done)
      await store.append('r', [bytes(1), bytes(2), bytes(3)])
      await store.putVersion('r', { at: 5, seq: 1, state: bytes(1) })
      await store.append('keep', [bytes(4)])
      await store.putRoom({ name: 'r', updatedAt: 1234, lastSeq: 10, updates: [bytes(9, 9), bytes(8)], versions: [{ id: 4, at: 99, seq: 9, bytes: 1, state: bytes(5) }] })
      const loaded = await store.load('r')
      assert.deepEqual(loaded.updates.map((u) => [...u]), [[9, 9], [8]])
      assert.equal(loaded.lastSeq, 10)
      assert.deepEqual(await store.listVersions('r'), [{ id: 4, at: 99, seq: 9, bytes: 1 }])
      assert.equal(await store.append('r', [bytes(7)]), 11)
      assert.deepEqual((await store.load('keep')).updates.map((u) => [...u]), [[4]])
      const info = (await store.listRooms()).find((x) => x.name === 'r')!
      assert.equal(info.lastSeq, 11)
      assert.equal((await store.putVersion('r', { at: 100, seq: 11, state: bytes(1) })).id, 5)
    })
  })
}
