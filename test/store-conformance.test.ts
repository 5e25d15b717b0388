/** The Store contract (test/helpers/store-conformance.ts) against every backend in this repository. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { LevelStore } from '../server/persistence/leveldb.js'
import { MemoryStore } from '../server/persistence/memory.js'
import type { Store } from '../server/persistence/store.js'
import { storeConformance } from './helpers/store-conformance.js'
import { tempDir } from './helpers/index.js'

storeConformance('MemoryStore', async () => {
  const store = new MemoryStore()
  return { store, cleanup: () => store.close() }
})

storeConformance('LevelStore', async () => {
  const dir = await tempDir()
  let current: Store = await LevelStore.open(dir.path)
  const fixture = {
    store: current,
    reopen: async () => {
      await current.close()
      current = await LevelStore.open(dir.path)
      return current
    },
    cleanup: async () => {
      await current.close()
      await dir.remove()
    },
  }
  return fixture
})

test('LevelStore: appends arriving together share one batch write (group commit)', async (t) => {
  const dir = await tempDir()
  const store = await LevelStore.open(dir.path)
  t.after(async () => {
    await store.close()
    await dir.remove()
  })
  // The database handle is private; counting its batch calls is the point of this test.
  const db = (store as unknown as { db: { batch: (...args: unknown[]) => Promise<unknown> } }).db
  const batch = db.batch.bind(db)
  let batches = 0
  db.batch = (...args: unknown[]) => {
    batches++
    return batch(...args)
  }
  const doc = new Y.Doc()
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  for (let i = 0; i < 200; i++) doc.getText('t').insert(0, 'x')
  const seqs = await Promise.all(updates.map((u, i) => store.append(`room-${i % 7}`, [u])))
  assert.equal(new Set(seqs.map((s, i) => `${i % 7}:${s}`)).size, 200)
  assert.ok(batches <= 2, `${batches} batch writes for 200 appends`)
})
