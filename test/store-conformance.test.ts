/** The Store contract (test/helpers/store-conformance.ts) against every backend in this repository. */
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
