/** The Store contract (test/helpers/store-conformance.ts) against every backend in this repository. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { LevelStore } from '../server/persistence/leveldb.js'
import { MemoryStore } from '../server/persistence/memory.js'
import type { Store, StoreEvents } from '../server/persistence/store.js'
import { Events } from '../server/base/events.js'
import { createContainment } from '../server/base/containment.js'
import { createLogger } from '../server/log.js'
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
  let batches = 0
  // The store tells its events of every write batch (the server's metrics use it).
  const events = new Events<StoreEvents>(createContainment({ log: createLogger('silent') }))
  events.on('store.batch', () => { batches++ })
  const store = await LevelStore.open(dir.path, { events })
  t.after(async () => {
    await store.close()
    await dir.remove()
  })
  const doc = new Y.Doc()
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  for (let i = 0; i < 200; i++) doc.getText('t').insert(0, 'x')
  const seqs = await Promise.all(updates.map((u, i) => store.append(`room-${i % 7}`, [u])))
  assert.equal(new Set(seqs.map((s, i) => `${i % 7}:${s}`)).size, 200)
  assert.ok(batches <= 2, `${batches} batch writes for 200 appends`)
})
