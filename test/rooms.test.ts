/**
 * Rooms: many rooms restore exactly after a restart; a room is loaded once however many
 * clients arrive together; nothing is answered before the load finished; a failed load
 * closes with 1013 and never serves (or overwrites storage with) an empty document.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { startServer, LevelStore, MemoryStore } from '../server/index.js'
import { encodeSyncStep1, encodeSyncUpdate } from '../server/room/protocol.js'
import { mergeUpdates } from '../server/room/yjs-log.js'
import { connect, prng, synced, tempDir, testSeed, waitFor, type Client } from './helpers/index.js'
import { RawClient } from './helpers/raw-client.js'
import { ControlledStore, gate } from './helpers/controlled-store.js'
import { scrapeUntil, total } from './helpers/prometheus.js'

async function inBatches<T>(items: T[], size: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) {
    await Promise.all(items.slice(i, i + size).map((item, j) => fn(item, i + j)))
  }
}

/** Writes `updates` to `room` over the wire and resolves once the server acked them as stored. */
async function write(url: string, room: string, updates: Uint8Array[]): Promise<void> {
  const c = await RawClient.open(`${url}/${encodeURIComponent(room)}?coedit=1`)
  try {
    for (const u of updates) c.send(encodeSyncUpdate(u))
    await waitFor(() => c.messages.some((m) => m.type === 'coedit-persisted' && m.count === updates.length), { timeout: 20_000, message: `acks for ${room}` })
  } finally {
    c.close()
  }
}

/** The document a fresh connection is served (its first sync step 2). */
async function read(url: string, room: string): Promise<Y.Doc> {
  const c = await RawClient.open(`${url}/${encodeURIComponent(room)}`)
  try {
    c.send(encodeSyncStep1(new Uint8Array([0])))
    const step2 = await c.waitForMessage('sync-step2', 0, 20_000)
    const doc = new Y.Doc()
    Y.applyUpdate(doc, step2.update)
    return doc
  } finally {
    c.close()
  }
}

test('300 rooms restore exactly after a restart', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const names = Array.from({ length: 300 }, (_, i) => i % 50 === 0 ? `room ${i}/ü:${i}` : `room-${i}`)
  const expected = new Map<string, { text: string; sv: Buffer; map: unknown }>()
  // compactEvery 3: rooms with more updates are stored compacted, the others as a log.
  let server = await startServer({ dataDir: dir.path, compactEvery: 3, roomGrace: 20 })
  await inBatches(names, 25, async (name, i) => {
    const doc = new Y.Doc()
    const updates: Uint8Array[] = []
    doc.on('update', (u: Uint8Array) => updates.push(u))
    for (let k = 0; k <= i % 6; k++) doc.getText('text').insert(0, `${name}#${k};`)
    if (i % 4 === 0) doc.getText('text').delete(0, 2)
    doc.getMap('m').set('i', i)
    await write(server.url, name, updates)
    expected.set(name, { text: doc.getText('text').toString(), sv: Buffer.from(Y.encodeStateVector(doc)), map: doc.getMap('m').toJSON() })
  })
  await server.close()

  server = await startServer({ dataDir: dir.path })
  t.after(() => server.close())
  const stored = await server.store.listRooms()
  assert.equal(stored.length, names.length, 'every room is listed')
  await inBatches(names, 25, async (name) => {
    const doc = await read(server.url, name)
    const want = expected.get(name)!
    assert.equal(doc.getText('text').toString(), want.text, `${name}: content`)
    assert.deepEqual(doc.getMap('m').toJSON(), want.map, `${name}: map`)
    assert.deepEqual(Buffer.from(Y.encodeStateVector(doc)), want.sv, `${name}: state vector`)
  })
})

test('a room is loaded once when many clients join together, and nothing is answered before', async (t) => {
  const inner = new MemoryStore()
  const seed = new Y.Doc()
  seed.getText('text').insert(0, 'stored content')
  await inner.append('busy', [Y.encodeStateAsUpdate(seed)])
  const store = new ControlledStore(inner)
  const loading = gate()
  store.beforeLoad = () => loading.promise
  const server = await startServer({ storage: store })
  const raws: RawClient[] = []
  const clients: Client[] = []
  t.after(async () => {
    for (const c of clients) c.destroy()
    for (const r of raws) r.close()
    await server.close()
  })
  for (let i = 0; i < 10; i++) clients.push(connect(server.url, 'busy'))
  // Raw clients ask for the document the moment they are open, before the load finished.
  for (let i = 0; i < 10; i++) {
    const r = new RawClient(`${server.url}/busy`)
    r.ws.once('open', () => r.send(encodeSyncStep1(new Uint8Array([0]))))
    raws.push(r)
  }
  await Promise.all(raws.map((r) => r.opened))
  await waitFor(() => store.calls.load >= 1, { message: 'the load started' })
  assert.ok(raws.every((r) => r.frames === 0), 'nothing is sent while the room loads')
  loading.open()
  await Promise.all(clients.map((c) => synced(c)))
  for (const r of raws) {
    const step2 = await r.waitForMessage('sync-step2')
    const doc = new Y.Doc()
    Y.applyUpdate(doc, step2.update)
    assert.equal(doc.getText('text').toString(), 'stored content', 'the first answer already holds the stored document')
  }
  assert.equal(store.loads.get('busy'), 1, 'loaded exactly once')
  assert.ok(clients.every((c) => c.text.toString() === 'stored content'))
})

test('a failed load closes with 1013, serves nothing, and never overwrites what is stored', async (t) => {
  const inner = new MemoryStore()
  const seed = new Y.Doc()
  seed.getText('text').insert(0, 'precious')
  await inner.append('fragile', [Y.encodeStateAsUpdate(seed)])
  const store = new ControlledStore(inner)
  let failing = true
  store.beforeLoad = (room) => {
    if (failing && room === 'fragile') throw new Error('disk on fire')
  }
  const server = await startServer({ storage: store })
  const clients: Client[] = []
  t.after(async () => {
    for (const c of clients) c.destroy()
    await server.close()
  })
  const raw = await RawClient.open(`${server.url}/fragile`)
  raw.send(encodeSyncStep1(new Uint8Array([0])))
  const closed = await raw.waitClosed()
  assert.equal(closed.code, 1013)
  assert.ok(!raw.messages.some((m) => m.type === 'sync-step1' || m.type === 'sync-step2'), 'no document was served')

  // A stock provider with local edits keeps retrying (1013 means try again) and stores nothing meanwhile.
  const client = connect(server.url, 'fragile')
  clients.push(client)
  client.text.insert(0, 'local ')
  await waitFor(() => (store.loads.get('fragile') ?? 0) >= 3, { timeout: 20_000, message: 'the provider retries' })
  assert.equal(store.calls.append, 0, 'nothing stored while the room cannot load')
  assert.equal(client.provider.synced, false)
  // Other rooms are not affected.
  const other = connect(server.url, 'sturdy')
  clients.push(other)
  await synced(other)

  failing = false
  // Both inserts are at 0 and concurrent: Yjs orders them by client ID.
  const merged = (text: string): boolean => text.length === 'local precious'.length && text.includes('local ') && text.includes('precious')
  await waitFor(() => client.provider.synced && merged(client.text.toString()), { timeout: 20_000, message: 'sync once storage is back' })
  const stored = await inner.load('fragile')
  const doc = new Y.Doc()
  for (const u of stored.updates) Y.applyUpdate(doc, u)
  assert.ok(merged(doc.getText('text').toString()), 'the stored content survived and the client\'s edit joined it')
})

test('a client writing into a room that is still loading is not read past 1 MiB; all of it is stored once the room is there', async (t) => {
  const store = new ControlledStore(new MemoryStore())
  const loading = gate()
  store.beforeLoad = (room) => (room === 'slow' ? loading.promise : undefined)
  // The server echoes each stored update to a `?coedit=1` sender: 24 MiB back to this client,
  // which shares the test's event loop. On a loaded machine it can fall 16 MiB behind and be
  // closed as a slow consumer (4408), which is right but not what this test is about.
  const server = await startServer({ storage: store, maxBufferedBytes: 0 })
  t.after(() => server.close())
  const raw = await RawClient.open(`${server.url}/slow?coedit=1`)
  t.after(() => raw.close())
  const doc = new Y.Doc()
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  for (let i = 0; i < 48; i++) doc.getText('text').insert(0, String.fromCharCode(97 + (i % 26)).repeat(512 * 1024))
  for (const u of updates) raw.send(encodeSyncUpdate(u))
  const sent = updates.reduce((n, u) => n + u.length, 0)
  // Loopback socket buffers hold a few MiB: what the server did not read stays with the client.
  // Once the server has read past 1 MiB it must stop; wait until nothing more leaves the
  // client (a server reading on would drain it to 0 first).
  await scrapeUntil(server.httpUrl, (m) => total(m, 'coedit_received_bytes_total', { type: 'sync_update' }) > 1024 * 1024, 'the server to read past 1 MiB')
  let unread = -1
  let still = 0
  await waitFor(() => {
    const now = raw.ws.bufferedAmount
    still = now === unread ? still + 1 : 0
    unread = now
    return still >= 10
  }, { timeout: 60_000, interval: 20, message: 'the client to stop sending' })
  t.diagnostic(`left the client while the room was loading: ${sent - unread} of ${sent} bytes`)
  assert.ok(unread > sent - 12 * 1024 * 1024, `the server read at most 1 MiB + socket buffers while loading (${sent - unread} of ${sent} bytes left the client)`)
  loading.open()
  await waitFor(() => raw.messages.some((m) => m.type === 'coedit-persisted' && m.count === 48), { timeout: 60_000, message: 'all 48 updates stored' })
  const stored = new Y.Doc()
  for (const u of (await store.inner.load('slow')).updates) Y.applyUpdate(stored, u)
  assert.equal(stored.getText('text').length, 48 * 512 * 1024)
})

test('a stored update that cannot be applied is kept: the room still serves the rest and is not compacted over it', async (t) => {
  const inner = new MemoryStore()
  const author = new Y.Doc()
  const updates: Uint8Array[] = []
  author.on('update', (u: Uint8Array) => updates.push(u))
  author.getText('text').insert(0, 'before ')
  author.getText('text').insert(7, 'after')
  const damaged = new Uint8Array([1, 2, 3])
  await inner.append('scarred', [updates[0]!])
  await inner.append('scarred', [damaged])
  await inner.append('scarred', [updates[1]!])
  const store = new ControlledStore(inner)
  const server = await startServer({ storage: store, compactEvery: 2, roomGrace: 5 })
  const client = connect(server.url, 'scarred')
  t.after(async () => {
    client.destroy()
    await server.close()
  })
  await waitFor(() => client.provider.synced && client.text.toString() === 'before after', { message: 'the readable updates are served' })
  client.text.insert(0, '>')
  await waitFor(() => store.calls.append >= 1, { message: 'the edit is stored' })
  client.provider.disconnect()
  await waitFor(() => server.registry.rooms.every((r) => r.name !== 'scarred'), { message: 'the room unloads' })
  assert.equal(store.calls.compact, 0, 'never compacted')
  const stored = await inner.load('scarred')
  assert.ok(stored.updates.some((u) => Buffer.from(u).equals(Buffer.from(damaged))), 'the unreadable update is still stored for an operator to inspect')
})

test('updates applied together reach a big room as one merged message each connection, a small room as they are', async (t) => {
  const dir = await tempDir()
  const server = await startServer({ dataDir: dir.path })
  t.after(async () => {
    await server.close()
    await dir.remove()
  })
  for (const readers of [20, 3]) {
    const room = `burst-${readers}`
    const clients = await Promise.all(Array.from({ length: readers }, () => RawClient.open(`${server.url}/${room}`)))
    const writer = await RawClient.open(`${server.url}/${room}`)
    t.after(() => { for (const c of [...clients, writer]) c.close() })
    const doc = new Y.Doc()
    const updates: Uint8Array[] = []
    doc.on('update', (u: Uint8Array) => updates.push(u))
    for (let i = 0; i < 50; i++) doc.getText('text').insert(i, String.fromCharCode(97 + (i % 26)))
    // Sent back to back: read in one turn, stored in one group commit, applied in one tick.
    for (const u of updates) writer.send(encodeSyncUpdate(u))
    const want = doc.getText('text').toString()
    await waitFor(() => clients.every((c) => c.docFromMessages().getText('text').toString() === want), { message: `every reader of ${room} has the burst` })
    const counts = clients.map((c) => c.messages.filter((m) => m.type === 'sync-update').length)
    if (readers >= 16) assert.ok(Math.max(...counts) < 50, `merged in the big room: ${counts.join(', ')} messages for 50 updates`)
    else assert.ok(counts.every((n) => n === 50), `one message per update in the small room: ${counts.join(', ')}`)
  }
})

test('compaction waits for the log to be a quarter of the state: a large document is not rewritten every few updates', async (t) => {
  const store = new ControlledStore(new MemoryStore())
  const server = await startServer({ storage: store, compactEvery: 10 })
  t.after(() => server.close())
  const doc = new Y.Doc()
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  const text = doc.getText('text')
  text.insert(0, 'x'.repeat(400_000))
  for (let i = 0; i < 10; i++) text.insert(i, 'y')
  await write(server.url, 'big', updates.splice(0))
  await waitFor(() => store.calls.compact === 1, { message: 'the first fold (no state stored yet)' })
  // 200 small updates (~6 KB) against a 400 KB state: due by count 20 times over, not by size.
  for (let i = 0; i < 200; i++) text.insert(i, 'z')
  await write(server.url, 'big', updates.splice(0))
  await server.registry.rooms[0]!.flushed()
  assert.equal(store.calls.compact, 1, 'no fold for a log of 1.5% of the state')
  // A log over a quarter of the state is folded.
  text.insert(0, 'w'.repeat(120_000))
  await write(server.url, 'big', updates.splice(0))
  await waitFor(() => store.calls.compact === 2, { message: 'folded once the log is a quarter of the state' })
  const stored = await store.inner.load('big')
  assert.equal(stored.pendingUpdates, 0)
  const reread = new Y.Doc()
  for (const u of stored.updates) Y.applyUpdate(reread, u)
  assert.equal(reread.getText('text').toString(), text.toString())
})

test('updates applied while a compaction runs are folded after it, not left in the log until the next write', async (t) => {
  const store = new ControlledStore(new MemoryStore())
  const compacting = gate()
  store.beforeCompact = () => compacting.promise
  const server = await startServer({ storage: store, compactEvery: 10 })
  t.after(() => {
    compacting.open()
    return server.close()
  })
  const doc = new Y.Doc()
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  const text = doc.getText('text')
  for (let i = 0; i < 10; i++) text.insert(i, 'a')
  await write(server.url, 'folded', updates.splice(0))
  await waitFor(() => store.calls.compact === 1, { message: 'the first compaction (held)' })
  // A burst while it is held: stored and applied, and due for a fold of its own.
  for (let i = 0; i < 25; i++) text.insert(i, 'b')
  await write(server.url, 'folded', updates.splice(0))
  compacting.open()
  await server.registry.rooms[0]!.flushed()
  const stored = await store.inner.load('folded')
  assert.equal(stored.pendingUpdates, 0, `the burst was folded too (${stored.pendingUpdates} updates left in the log, ${store.calls.compact} compactions)`)
  const reread = new Y.Doc()
  for (const u of stored.updates) Y.applyUpdate(reread, u)
  assert.equal(reread.getText('text').toString(), text.toString())
})

test('a compaction keeps counting the bytes of updates still being stored: the log they make is folded when due', async (t) => {
  const store = new ControlledStore(new MemoryStore())
  const server = await startServer({ storage: store, compactEvery: 10 })
  const storing = gate()
  t.after(() => {
    storing.open()
    return server.close()
  })
  const doc = new Y.Doc()
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  const text = doc.getText('text')
  for (let i = 0; i < 10; i++) text.insert(i, 'a')
  await write(server.url, 'counted', updates.splice(0))
  const room = server.registry.rooms[0]!
  await waitFor(() => store.calls.compact === 1, { message: 'the first fold' })
  await room.flushed()
  text.insert(0, 'b')
  await write(server.url, 'counted', updates.splice(0))
  // Ten larger updates held at the store (in flight) while the one above is folded.
  store.beforeAppend = () => storing.promise
  const appends = store.calls.append
  const writer = await RawClient.open(`${server.url}/counted?coedit=1`)
  t.after(() => writer.close())
  for (let i = 0; i < 10; i++) text.insert(0, 'c'.repeat(100))
  for (const u of updates.splice(0)) writer.send(encodeSyncUpdate(u))
  await waitFor(() => store.calls.append === appends + 10, { message: 'ten updates in flight' })
  await room.compact()
  assert.equal(store.calls.compact, 2)
  // Stored and applied, they are a log of ten updates and ~1 KB against a state of a few
  // dozen bytes (due by count and by size): folded.
  store.beforeAppend = undefined
  storing.open()
  await waitFor(() => writer.messages.some((m) => m.type === 'coedit-persisted' && m.count === 10), { message: 'the ten stored' })
  await room.flushed()
  const stored = await store.inner.load('counted')
  assert.equal(stored.pendingUpdates, 0, `the ten were folded (${stored.pendingUpdates} updates left in the log, ${store.calls.compact} compactions)`)
})

test('a cold room answers its first joiners from the stored state, then integrates it: their writes in the same burst are applied, and everyone gets our step 1', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const original = new Y.Doc()
  const firstHalf: Uint8Array[] = []
  original.on('update', (u: Uint8Array) => { if (firstHalf.length === 0) firstHalf.push(u) })
  original.getText('text').insert(0, 'stored '.repeat(10_000))
  original.getText('text').insert(0, 'stored '.repeat(10_000))
  let server = await startServer({ dataDir: dir.path })
  await write(server.url, 'cold', [Y.encodeStateAsUpdate(original)])
  await server.close() // compacts: the room is stored as one state
  // The load is held until every joiner's first messages are queued at the server: a load
  // that finished first (or a writer joining before `fresh`) would integrate the state
  // before `fresh` asks, and `fresh` would rightly get our step 1 first.
  const store = new ControlledStore(await LevelStore.open(dir.path))
  const loading = gate()
  store.beforeLoad = () => loading.promise
  server = await startServer({ storage: store })
  t.after(() => server.close())

  // Two fresh joiners and one that already has part of it, all before the room is loaded;
  // one of them writes in the same burst as its step 1. `fresh` joins first.
  const fresh = await RawClient.open(`${server.url}/cold`)
  await waitFor(() => store.calls.load === 1, { message: 'the load started' })
  const writer = new RawClient(`${server.url}/cold?coedit=1`)
  const partial = new RawClient(`${server.url}/cold`)
  t.after(() => { for (const c of [fresh, writer, partial]) c.close() })
  await Promise.all([writer.opened, partial.opened])
  const edit = new Y.Doc()
  edit.clientID = 7
  edit.getText('text').insert(0, 'new ')
  const half = new Y.Doc()
  Y.applyUpdate(half, firstHalf[0]!)
  fresh.send(encodeSyncStep1(new Uint8Array([0])))
  writer.send(encodeSyncStep1(new Uint8Array([0])))
  writer.send(encodeSyncUpdate(Y.encodeStateAsUpdate(edit)))
  partial.send(encodeSyncStep1(Y.encodeStateVector(half)))
  await scrapeUntil(server.httpUrl, (s) => total(s, 'coedit_messages_received_total', { type: 'sync_step1' }) === 3
    && total(s, 'coedit_messages_received_total', { type: 'sync_update' }) === 1, 'every first message queued at the server')
  loading.open()

  const expected = new Y.Doc()
  Y.applyUpdate(expected, Y.encodeStateAsUpdate(original))
  Y.applyUpdate(expected, Y.encodeStateAsUpdate(edit))
  for (const c of [fresh, writer, partial]) {
    const step1 = await c.waitForMessage('sync-step1', 0, 10_000)
    await c.waitForMessage('sync-step2', 0, 10_000)
    assert.deepEqual(Y.decodeStateVector(step1.stateVector).get(original.clientID), original.getText('text').length, 'our step 1 holds the stored state')
  }
  // Served from the stored bytes: a fresh joiner's step 2 comes before our step 1, which
  // waits for the integration (an eagerly loaded room greets with step 1 first).
  const kinds = fresh.messages.map((m) => m.type)
  assert.ok(kinds.indexOf('sync-step2') < kinds.indexOf('sync-step1'), `answered before integrating: ${kinds.join(', ')}`)
  await waitFor(() => writer.messages.some((m) => m.type === 'coedit-persisted' && m.count === 1), { message: 'the write is stored' })
  const seenBy = (c: RawClient): string => {
    const d = c.docFromMessages()
    if (c === partial) Y.applyUpdate(d, firstHalf[0]!)
    return d.getText('text').toString()
  }
  for (const c of [fresh, partial]) {
    await waitFor(() => seenBy(c) === expected.getText('text').toString(), { message: 'content and the new edit' })
  }
  assert.ok(partial.messages.filter((m) => m.type === 'sync-step2').every((m) => m.type === 'sync-step2' && m.update.length < 1000 + original.getText('text').length / 2), 'the partial joiner got only what it lacked')
  assert.ok(server.registry.rooms[0]!.doc.getText('text').toString().startsWith('new stored'))
})

test('a room stored as a state and a long log (what a kill -9 under a fast writer leaves) loads whole and at once; its backup merge too', { timeout: 30_000 }, async (t) => {
  const inner = new MemoryStore()
  const doc = new Y.Doc()
  const log: Uint8Array[] = []
  doc.getText('text').insert(0, 'state;')
  await inner.append('long', [Y.encodeStateAsUpdate(doc)])
  await inner.compact('long', Y.encodeStateAsUpdate(doc), 1)
  doc.on('update', (u: Uint8Array) => log.push(u))
  // A fast writer's shape: 30,000 appends (Y.mergeUpdates of these alone took 18 s here:
  // it is quadratic in their number), and some deletions at seeded random places.
  const random = prng(testSeed())
  const text = doc.getText('text')
  for (let i = 0; i < 30_000; i++) {
    if (i % 100 === 99) text.delete(Math.floor(random() * text.length), 1)
    else text.insert(text.length, `${i};`)
  }
  for (let i = 0; i < log.length; i += 1000) await inner.append('long', log.slice(i, i + 1000))
  const stored = await inner.load('long')
  assert.equal(stored.pendingUpdates, 30_000)
  const server = await startServer({ storage: inner })
  t.after(() => server.close())
  // Measured in CPU time, which the machine's load hardly changes (wall time it does):
  // the point is the complexity class. Loaded in order in one transaction this is a few
  // hundred ms; merging the log first (Y.mergeUpdates) is quadratic, 18 s here.
  const cpu = process.cpuUsage()
  const client = connect(server.url, 'long')
  t.after(() => client.destroy())
  await synced(client, 120_000)
  const used = process.cpuUsage(cpu)
  const cpuMs = Math.round((used.user + used.system) / 1000)
  t.diagnostic(`30,000-update log loaded and served in ${cpuMs} ms of CPU time`)
  assert.ok(cpuMs < 6000, `loading took ${cpuMs} ms of CPU: the log is not applied in linear time`)
  assert.equal(client.text.toString(), text.toString())
  assert.deepEqual(Y.encodeStateVector(server.registry.rooms[0]!.doc), Y.encodeStateVector(doc))
  // What a backup writes for the room: one update holding the state and the whole log.
  const merged = new Y.Doc()
  Y.applyUpdate(merged, mergeUpdates(stored.updates))
  assert.equal(merged.getText('text').toString(), text.toString())
})
