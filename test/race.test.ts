/**
 * The unload/rejoin race: a client that joins while its room is being stored and
 * unloaded must get a correct room (the same one, or a freshly loaded one with
 * everything in it), never a half-destroyed document, and nothing may be lost.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { startServer } from '../server/index.js'
import { LevelStore } from '../server/persistence/leveldb.js'
import { encodeSyncStep1, encodeSyncUpdate } from '../server/room/protocol.js'
import { prng, tempDir, testSeed, waitFor } from './helpers/index.js'
import { RawClient } from './helpers/raw-client.js'
import { ControlledStore, gate } from './helpers/controlled-store.js'

/** Connects, optionally writes one insert, waits for its ack, and returns the document it was served. */
async function session(url: string, room: string, insert?: string): Promise<{ client: RawClient; doc: Y.Doc; served: string }> {
  const client = await RawClient.open(`${url}/${room}?coedit=1`)
  client.send(encodeSyncStep1(new Uint8Array([0])))
  const step2 = await client.waitForMessage('sync-step2', 0, 20_000)
  const doc = new Y.Doc()
  Y.applyUpdate(doc, step2.update)
  const served = doc.getText('text').toString()
  if (insert !== undefined) {
    let update: Uint8Array | undefined
    doc.once('update', (u: Uint8Array) => { update = u })
    doc.getText('text').insert(doc.getText('text').length, insert)
    client.send(encodeSyncUpdate(update!))
    await waitFor(() => client.messages.some((m) => m.type === 'coedit-persisted' && m.count === 1), { timeout: 20_000, message: `ack of ${insert}` })
  }
  return { client, doc, served }
}

async function openStore(t: { after(fn: () => Promise<void>): void }): Promise<ControlledStore> {
  const dir = await tempDir()
  const store = new ControlledStore(await LevelStore.open(dir.path))
  t.after(async () => {
    await store.close()
    await dir.remove()
  })
  return store
}

test('a client joining while the room is unloading keeps the room and its edits', async (t) => {
  const store = await openStore(t)
  const server = await startServer({ storage: store, roomGrace: 5, compactEvery: 1000 })
  const compacting = gate()
  t.after(() => {
    // A failed assertion must not leave the shutdown waiting on a closed gate.
    store.beforeCompact = undefined
    compacting.open()
    return server.close()
  })

  const a = await session(server.url, 'r', 'A')
  let compactStarted = false
  store.beforeCompact = async () => {
    compactStarted = true
    await compacting.promise
  }
  a.client.close()
  // The grace period ends, the unload stores the room and is now stuck in compaction.
  await waitFor(() => compactStarted, { message: 'the unload to start compacting' })
  const b = await session(server.url, 'r', 'B')
  assert.equal(b.served, 'A', 'the joiner is served the room\'s content')
  store.beforeCompact = undefined
  compacting.open()
  // The unload must notice the new connection and keep the room.
  await waitFor(() => store.calls.compact >= 1 && server.registry.rooms.some((r) => r.name === 'r' && r.size === 1), { message: 'the room stays loaded' })
  const c = await session(server.url, 'r')
  assert.equal(c.doc.getText('text').toString(), 'AB')
  assert.equal(store.loads.get('r'), 1, 'the room was never reloaded')
  b.client.close()
  c.client.close()

  await waitFor(() => server.registry.rooms.every((r) => r.name !== 'r'), { message: 'the room unloads at last' })
  const d = await session(server.url, 'r')
  d.client.close()
  assert.equal(d.doc.getText('text').toString(), 'AB', 'a reload has everything')
  assert.equal(store.loads.get('r'), 2)
})

test('a client that joins and leaves during the unload, with its write still in flight, loses nothing', async (t) => {
  const store = await openStore(t)
  const server = await startServer({ storage: store, roomGrace: 5, compactEvery: 1000 })
  const compacting = gate()
  const appending = gate()
  t.after(() => {
    store.beforeCompact = store.beforeAppend = undefined
    compacting.open()
    appending.open()
    return server.close()
  })
  const a = await session(server.url, 'w', 'A')
  let compactStarted = false
  store.beforeCompact = async () => {
    compactStarted = true
    await compacting.promise
  }
  a.client.close()
  await waitFor(() => compactStarted, { message: 'the unload to start compacting' })
  store.beforeCompact = undefined
  store.beforeAppend = () => appending.promise
  const b = await session(server.url, 'w')
  let update: Uint8Array | undefined
  b.doc.once('update', (u: Uint8Array) => { update = u })
  b.doc.getText('text').insert(1, 'B')
  b.client.send(encodeSyncUpdate(update!))
  await waitFor(() => store.calls.append >= 2, { message: 'the write reaches the store' })
  b.client.close()
  await waitFor(() => server.registry.rooms.find((r) => r.name === 'w')?.size === 0, { message: 'B is gone' })
  compacting.open()
  // Let the unload run to its check while the write is still pending.
  await waitFor(() => store.calls.compact >= 1, { message: 'compaction ran' })
  appending.open()
  store.beforeAppend = undefined
  await waitFor(() => server.registry.rooms.every((r) => r.name !== 'w'), { message: 'the room unloads' })
  const c = await session(server.url, 'w')
  c.client.close()
  assert.equal(c.doc.getText('text').toString(), 'AB')
})

test('random joins and leaves around unloads and delayed storage lose nothing', async (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed} (replay with SEED=${seed})`)
  const random = prng(seed)
  const store = await openStore(t)
  // Compacting every 2 updates and unloading after 1 ms: compactions and unloads overlap constantly.
  const server = await startServer({ storage: store, roomGrace: 1, compactEvery: 2 })
  t.after(() => server.close())
  const delay = (): Promise<void> | void => {
    const ms = Math.floor(random() * 15)
    return ms < 3 ? undefined : new Promise((r) => setTimeout(r, ms))
  }
  const written: string[] = []
  const run = async (mark: string): Promise<void> => {
    const s = await session(server.url, 'hot', mark)
    written.push(mark)
    // Sometimes leave at once, sometimes a turn later.
    if (random() < 0.5) await new Promise((r) => setImmediate(r))
    s.client.close()
  }
  // Joins timed into compactions: most of them are the unload's, so this is the race itself.
  const intruders: Array<Promise<void>> = []
  store.beforeAppend = delay
  store.beforeLoad = delay
  store.beforeCompact = () => {
    if (intruders.length < 20 && random() < 0.6) intruders.push(run(`<x.${intruders.length}>`))
    return delay()
  }
  // One client at a time, so the room empties (and starts unloading) between sessions.
  for (let i = 0; i < 40; i++) {
    await run(`<${i}>`)
    // Now and then let the unload finish, so the next join loads the room afresh.
    if (random() < 0.25) await waitFor(() => server.registry.rooms.every((r) => r.name !== 'hot'), { timeout: 10_000, message: 'an unload' })
  }
  await Promise.all(intruders)
  await waitFor(() => server.registry.rooms.every((r) => r.name !== 'hot'), { timeout: 10_000, message: 'the room unloads' })
  store.beforeAppend = store.beforeCompact = store.beforeLoad = undefined
  const final = await session(server.url, 'hot')
  final.client.close()
  const text = final.doc.getText('text').toString()
  const missing = written.filter((m) => !text.includes(m))
  assert.deepEqual(missing, [], `lost after unloads (seed ${seed})`)
  t.diagnostic(`${store.loads.get('hot')} loads, ${store.calls.compact} compactions`)
  assert.ok((store.loads.get('hot') ?? 0) > 2, 'the room was unloaded and reloaded during the run')
})

test('overlapping compactions of a room never put an older state over a newer one', async (t) => {
  const store = await openStore(t)
  const server = await startServer({ storage: store, compactEvery: 1000 })
  const first = gate()
  t.after(() => {
    store.beforeCompact = undefined
    first.open()
    return server.close()
  })
  const a = await session(server.url, 'c', 'one')
  const room = server.registry.rooms.find((r) => r.name === 'c')!
  let calls = 0
  // The first compaction stalls in storage; the second overtakes it.
  store.beforeCompact = () => (++calls === 1 ? first.promise : undefined)
  const older = room.compact()
  const b = await session(server.url, 'c', 'two')
  const newer = room.compact()
  await waitFor(() => calls >= 1, { message: 'the first compaction reached the store' })
  first.open()
  await Promise.all([older, newer])
  a.client.close()
  b.client.close()
  const loaded = await store.load('c')
  const doc = new Y.Doc()
  for (const u of loaded.updates) Y.applyUpdate(doc, u)
  assert.equal(doc.getText('text').toString(), 'onetwo')
})
