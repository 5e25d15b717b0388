/**
 * Rooms from the embedding app (`server.rooms`): listing, deleting, disconnecting. A
 * delete closes the room's stock providers with 4410 (they stop), removes every stored key
 * of the room (LevelDB read directly), and the room starts empty; a client holding the old
 * copy brings it back unless the room was deleted with a tombstone, which refuses it.
 * Races (delete while loading, unloading, writing, joining) run on a store with gates.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import WebSocket from 'ws'
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'
import { WebsocketProvider as ProviderV2 } from 'y-websocket-v2'
import { startServer, type CoeditServer } from '../server/index.js'
import { LevelStore } from '../server/persistence/leveldb.js'
import { MemoryStore } from '../server/persistence/memory.js'
import { isHistoryLogStore, isVersionedStore, type Store } from '../server/persistence/store.js'
import { escapeRoom } from '../server/persistence/keys.js'
import { ControlledStore, gate } from './helpers/controlled-store.js'
import { connect, synced, tempDir, waitFor, type Client } from './helpers/index.js'

/** Resolves with the close a stock provider stopped on (44xx: it emits `closed` and does not reconnect). */
function stopped(client: Client): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => client.provider.once('closed', (event: { code: number; reason: string }) => resolve(event)))
}

/** Every close a provider saw (it reconnects after codes outside 4400-4499). */
function closes(client: Client): Array<{ code: number; reason: string }> {
  const seen: Array<{ code: number; reason: string }> = []
  client.provider.on('connection-close', (event: { code: number; reason: string } | null) => { if (event) seen.push({ code: event.code, reason: event.reason }) })
  return seen
}

/** Keys of LevelDB that belong to `room` (any prefix), read from the store's own handle. */
async function keysOf(store: Store, room: string): Promise<string[]> {
  // The handle is private; reading the raw keys is the point: "every key" means every key.
  const db = (store as unknown as { db: { keys(): AsyncIterable<string> } }).db
  const escaped = escapeRoom(room)
  const out: string[] = []
  for await (const key of db.keys()) {
    const [, name] = /^[a-z]:([^:]*)/.exec(key) ?? []
    if (name === escaped) out.push(key)
  }
  return out
}

async function typed(client: Client, text: string): Promise<void> {
  await synced(client)
  client.text.insert(client.text.length, text)
}

test('rooms.list() names stored and loaded rooms, with their connections', async (t) => {
  const store = new MemoryStore()
  const server = await startServer({ storage: store })
  t.after(() => server.close())
  const doc = new Y.Doc()
  doc.getText('text').insert(0, 'stored only')
  await store.append('cold', [Y.encodeStateAsUpdate(doc)])
  const writer = connect(server.url, 'busy')
  const watcher = connect(server.url, 'busy')
  const idle = connect(server.url, 'empty')
  t.after(() => { writer.destroy(); watcher.destroy(); idle.destroy() })
  await typed(writer, 'hello')
  await synced(idle)
  await waitFor(async () => (await store.load('busy')).updates.length > 0, { message: 'busy stored' })
  const list = await server.rooms.list()
  assert.deepEqual(list.map((r) => [r.name, r.loaded, r.connections, r.stored]), [
    ['busy', true, 2, true],
    ['cold', false, 0, true],
    ['empty', true, 1, false],
  ])
  assert.ok(list[0]!.bytes > 0 && list[0]!.updatedAt! > 0)
  assert.deepEqual([list[2]!.bytes, list[2]!.updatedAt], [0, undefined])
})

test('delete: providers stop on 4410, every key of the room goes, the room starts empty, others are untouched', async (t) => {
  const dir = await tempDir()
  // Versions every 50 ms, a history log folded at once, compaction every 3 updates: every kind of key.
  const server = await startServer({ dataDir: dir.path, historyInterval: 50, historyExact: 1, compactEvery: 3, roomGrace: 60_000 })
  t.after(async () => { await server.close(); await dir.remove() })
  const a = connect(server.url, 'doomed')
  const b = connect(server.url, 'doomed')
  const canary = connect(server.url, 'doomed:not')
  t.after(() => { a.destroy(); b.destroy(); canary.destroy() })
  for (let i = 0; i < 8; i++) await typed(i % 2 ? a : b, `line ${i}\n`)
  await typed(canary, 'keep me')
  const store = server.store
  assert.ok(isVersionedStore(store) && isHistoryLogStore(store))
  await waitFor(async () => (await store.listVersions('doomed')).length > 0 && (await store.readLog('doomed')).base !== undefined, { message: 'versions and a folded log' })
  // One more, not yet compacted nor folded: an update key and its mark.
  await typed(a, 'last line')
  await waitFor(async () => (await keysOf(store, 'doomed')).some((k) => k.startsWith('t:')), { message: 'a logged update' })
  const prefixes = new Set((await keysOf(store, 'doomed')).map((k) => k[0]))
  for (const p of ['m', 's', 'u', 't', 'b', 'h']) assert.ok(prefixes.has(p), `the room has ${p}: keys before the delete (${[...prefixes].join('')})`)
  // A version's state is a v: key, or the compacted state itself (an a: key lists those).
  assert.ok(prefixes.has('v') || prefixes.has('a'), `the room has v: or a: keys before the delete (${[...prefixes].join('')})`)

  const stops = [stopped(a), stopped(b)]
  const result = await server.rooms.delete('doomed')
  assert.deepEqual(result, { room: 'doomed', existed: true, tombstone: false, connections: 2 })
  for (const close of await Promise.all(stops)) assert.equal(close.code, 4410)
  assert.deepEqual(await keysOf(store, 'doomed'), [], 'no key of the room is left')
  assert.deepEqual((await server.rooms.list()).map((r) => r.name), ['doomed:not'])

  const fresh = connect(server.url, 'doomed')
  t.after(() => fresh.destroy())
  await synced(fresh)
  assert.equal(fresh.text.toString(), '', 'a client joining afterwards finds the room empty')
  await typed(fresh, 'new life')
  await waitFor(async () => (await store.load('doomed')).updates.length > 0, { message: 'the new room stores' })
  assert.equal(canary.text.toString(), 'keep me')
  const late = connect(server.url, 'doomed:not')
  t.after(() => late.destroy())
  await synced(late)
  assert.equal(late.text.toString(), 'keep me', 'the other room is intact')
  // Versions of the deleted room never come back from history written later.
  await waitFor(async () => (await store.listVersions('doomed')).length > 0, { message: 'a version of the new room' })
  for (const v of await store.listVersions('doomed')) {
    const version = await store.getVersion('doomed', v.id)
    const doc = new Y.Doc()
    Y.applyUpdate(doc, version!.state)
    assert.doesNotMatch(doc.getText('text').toString(), /line/, 'no version holds the old content')
  }
})

test('a deleted room\'s old client: its copy comes back without a tombstone, and is refused with one', async (t) => {
  const server = await startServer({ storage: 'memory' })
  t.after(() => server.close())
  for (const tombstone of [false, true]) {
    const room = `offline-${tombstone}`
    const old = connect(server.url, room)
    t.after(() => old.destroy())
    await typed(old, 'secret plans')
    await waitFor(async () => (await server.store.load(room)).updates.length > 0, { message: 'stored' })
    const stop = stopped(old)
    await server.rooms.delete(room, { tombstone })
    assert.equal((await stop).code, 4410)
    // The app reconnects with the document it still holds (an IndexedDB copy, a page that kept it).
    old.provider.destroy()
    const again = connect(server.url, room, { doc: old.doc })
    t.after(() => again.destroy())
    const seen = closes(again)
    if (!tombstone) {
      const reader = connect(server.url, room)
      t.after(() => reader.destroy())
      await waitFor(() => reader.text.toString() === 'secret plans', { message: 'without a tombstone the offline copy is sent back' })
      continue
    }
    const refused = await stopped(again)
    assert.equal(refused.code, 4410)
    assert.match(refused.reason, /^DELETED_CONTENT: /)
    assert.deepEqual(seen.map((c) => c.code), [4410])
    // The same content under the same IDs in a fresh document, and edits typed into the old copy: refused too.
    const copy = new Y.Doc()
    Y.applyUpdate(copy, Y.encodeStateAsUpdate(old.doc))
    copy.getText('text').insert(0, 'edited offline: ')
    const third = connect(server.url, room, { doc: copy })
    t.after(() => third.destroy())
    assert.equal((await stopped(third)).code, 4410)
    // New clients work, and never see the old content.
    const fresh = connect(server.url, room)
    t.after(() => fresh.destroy())
    await typed(fresh, 'clean start')
    const reader = connect(server.url, room)
    t.after(() => reader.destroy())
    await waitFor(() => reader.text.toString() === 'clean start', { message: 'the new room works' })
    assert.equal(Y.mergeUpdates((await server.store.load(room)).updates).length > 0, true)
    const stored = new Y.Doc()
    Y.applyUpdate(stored, Y.mergeUpdates((await server.store.load(room)).updates))
    assert.equal(stored.getText('text').toString(), 'clean start', 'storage holds nothing of the old room')
  }
})

test('a y-websocket 2.x provider reconnects after any close: it sends the old copy back, unless a tombstone refuses it at each attempt', async (t) => {
  const server = await startServer({ storage: 'memory' })
  t.after(() => server.close())
  for (const tombstone of [false, true]) {
    const room = `v2-${tombstone}`
    const doc = new Y.Doc()
    const v2 = new ProviderV2(server.url, room, doc, {
      // ws implements the WebSocket API the provider needs; its types differ from the DOM's.
      WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
      disableBc: true,
      resyncInterval: -1,
    })
    const codes: number[] = []
    v2.on('connection-close', (event: { code: number } | null) => { if (event) codes.push(event.code) })
    t.after(() => { v2.destroy(); doc.destroy() })
    await waitFor(() => v2.synced, { message: 'the 2.x provider synced' })
    doc.getText('text').insert(0, 'two-point-x content')
    await waitFor(async () => (await server.store.load(room)).updates.length > 0, { message: 'stored' })
    await server.rooms.delete(room, { tombstone })
    if (!tombstone) {
      await waitFor(async () => (await server.store.load(room)).updates.length > 0, { message: 'the 2.x provider sent its copy back' })
      const reader = connect(server.url, room)
      t.after(() => reader.destroy())
      await waitFor(() => reader.text.toString() === 'two-point-x content', { message: 'the old content is back' })
      continue
    }
    await waitFor(() => codes.length >= 2, { message: 'refused again after reconnecting' })
    assert.deepEqual(codes.slice(0, 2), [4410, 4410])
    assert.deepEqual((await server.store.load(room)).updates, [], 'nothing of it is stored')
  }
})

test('a Hocuspocus document of a deleted room is closed alone; its socket\'s other document carries on', async (t) => {
  const server = await startServer({ storage: 'memory' })
  t.after(() => server.close())
  const socket = new HocuspocusProviderWebsocket({ url: server.url, WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket })
  const docs = [new Y.Doc(), new Y.Doc()]
  const providers = ['gone', 'stays'].map((name, i) => new HocuspocusProvider({ websocketProvider: socket, name, document: docs[i]!, token: '' }))
  for (const p of providers) p.attach()
  t.after(() => { for (const p of providers) p.destroy(); socket.destroy() })
  await waitFor(() => providers.every((p) => p.isSynced), { message: 'both documents synced' })
  const closed = new Promise<{ reason: string }>((resolve) => providers[0]!.on('close', ({ event }: { event: { reason: string } }) => resolve(event)))
  await server.rooms.delete('gone')
  assert.match((await closed).reason, /^4410: /)
  docs[1]!.getText('text').insert(0, 'still here')
  const reader = connect(server.url, 'stays')
  t.after(() => reader.destroy())
  await waitFor(() => reader.text.toString() === 'still here', { message: 'the other document still syncs on the same socket' })
  // Disconnected with a code that means "come back": the socket closes, the provider reconnects
  // and authenticates the document again.
  let disconnects = 0
  socket.on('disconnect', () => { disconnects++ })
  assert.equal(await server.rooms.disconnect('stays', { code: 4000, reason: 'come back' }), 2, 'the document and the reader')
  await waitFor(() => disconnects === 1 && providers[1]!.isSynced, { message: 'the socket reconnected' })
  docs[1]!.getText('text').insert(0, 'back: ')
  await waitFor(() => reader.text.toString() === 'back: still here', { message: 'edits flow again after the reconnect' })
})

test('disconnect closes the room\'s connections with the code and reason given; the room stays', async (t) => {
  const server = await startServer({ storage: 'memory' })
  t.after(() => server.close())
  const a = connect(server.url, 'r')
  const b = connect(server.url, 'r')
  t.after(() => { a.destroy(); b.destroy() })
  await typed(a, 'kept')
  await synced(b)
  const seen = closes(a)
  assert.equal(await server.rooms.disconnect('r', { code: 4000, reason: 'please reconnect' }), 2)
  await waitFor(() => seen.length > 0, { message: 'a was closed' })
  assert.deepEqual(seen[0], { code: 4000, reason: 'please reconnect' })
  // 4000 is not 44xx: the stock provider comes back and finds the room as it was.
  await waitFor(() => a.provider.wsconnected && a.provider.synced, { message: 'a reconnected' })
  assert.equal(a.text.toString(), 'kept')
  const stop = stopped(b)
  await server.rooms.disconnect('r', { code: 4403, reason: 'x'.repeat(300) })
  const close = await stop
  assert.equal(close.code, 4403)
  assert.ok(Buffer.byteLength(close.reason) <= 123, 'the reason fits a close frame')
  assert.equal(await server.rooms.disconnect('nobody-here'), 0)
  for (const code of [999, 1004, 1005, 1006, 1015, 2000, 5000, 4000.5, Number.NaN]) {
    await assert.rejects(server.rooms.disconnect('r', { code }), (err: { code?: string }) => err.code === 'BAD_CLOSE_CODE', String(code))
  }
  for (const name of ['', 'a\u0000b', 'evil\u202etxt', 'x'.repeat(600)]) {
    await assert.rejects(server.rooms.disconnect(name), (err: { code?: string }) => err.code === 'BAD_ROOM_NAME', JSON.stringify(name))
    await assert.rejects(server.rooms.delete(name), (err: { code?: string }) => err.code === 'BAD_ROOM_NAME', JSON.stringify(name))
  }
  // Typed callers can still pass anything.
  await assert.rejects(server.rooms.delete(42 as unknown as string), (err: { code?: string }) => err.code === 'BAD_ROOM_NAME')
  assert.deepEqual(await server.rooms.delete('never-was'), { room: 'never-was', existed: false, tombstone: false, connections: 0 })
})

// ---- races: a store with gates (test/helpers/controlled-store.ts) ----------------------------

async function gatedServer(t: { after(fn: () => Promise<void> | void): void }, options: { roomGrace?: number } = {}): Promise<{ server: CoeditServer; store: ControlledStore; inner: LevelStore }> {
  const dir = await tempDir()
  const inner = await LevelStore.open(dir.path)
  const store = new ControlledStore(inner)
  const server = await startServer({ storage: store, roomGrace: options.roomGrace ?? 60_000 })
  t.after(async () => {
    await server.close()
    await inner.close()
    await dir.remove()
  })
  return { server, store, inner }
}

/** Stores `text` in `room` as a client would have (before the server reads it). */
async function seed(store: Store, room: string, text: string): Promise<void> {
  const doc = new Y.Doc()
  doc.getText('text').insert(0, text)
  await store.append(room, [Y.encodeStateAsUpdate(doc)])
}

async function assertGone(inner: LevelStore, room: string): Promise<void> {
  assert.deepEqual(await keysOf(inner, room), [], `nothing of ${room} is stored`)
}

test('race: delete while the room is loading', async (t) => {
  const { server, store, inner } = await gatedServer(t)
  await seed(inner, 'r', 'old content')
  const held = gate()
  store.beforeLoad = (room) => (room === 'r' ? held.promise : undefined)
  const early = connect(server.url, 'r')
  t.after(() => early.destroy())
  await waitFor(() => store.calls.load > 0, { message: 'the load started' })
  const deleting = server.rooms.delete('r')
  store.beforeLoad = undefined
  held.open()
  const result = await deleting
  assert.equal(result.existed, true)
  // The early joiner was let into the old room, then closed with it (or found the new one).
  await waitFor(() => !early.provider.wsconnected || (early.provider.synced && early.text.toString() === ''), { message: 'the early joiner left the old room' })
  await assertGone(inner, 'r')
  const fresh = connect(server.url, 'r')
  t.after(() => fresh.destroy())
  await synced(fresh)
  assert.equal(fresh.text.toString(), '')
})

test('race: delete while a write is in flight', async (t) => {
  const { server, store, inner } = await gatedServer(t)
  await seed(inner, 'r', 'old ')
  const writer = connect(server.url, 'r')
  t.after(() => writer.destroy())
  await synced(writer)
  const held = gate()
  store.beforeAppend = (room) => (room === 'r' ? held.promise : undefined)
  const old = server.registry.loaded('r')!
  const appends = store.calls.append
  writer.text.insert(4, 'typed just before')
  await waitFor(() => store.calls.append > appends, { message: 'the write reached the store' })
  const stop = stopped(writer)
  const deleting = server.rooms.delete('r')
  assert.equal((await stop).code, 4410)
  await deleting
  // The write lands after the delete: the store refuses it for the deleted generation.
  store.beforeAppend = undefined
  held.open()
  await old.writesSettled()
  await assertGone(inner, 'r')
  const fresh = connect(server.url, 'r')
  t.after(() => fresh.destroy())
  await synced(fresh)
  assert.equal(fresh.text.toString(), '', 'neither the old content nor the write in flight came back')
})

test('race: delete while the room unloads (its final compaction held)', async (t) => {
  const { server, store, inner } = await gatedServer(t, { roomGrace: 0 })
  const writer = connect(server.url, 'r')
  await typed(writer, 'going, going')
  await waitFor(async () => (await inner.load('r')).updates.length > 0, { message: 'stored' })
  const held = gate()
  store.beforeCompact = (room) => (room === 'r' ? held.promise : undefined)
  writer.destroy()
  await waitFor(() => store.calls.compact > 0, { message: 'the unload compacts' })
  const deleting = server.rooms.delete('r')
  held.open()
  await deleting
  await assertGone(inner, 'r')
  const fresh = connect(server.url, 'r')
  t.after(() => fresh.destroy())
  await synced(fresh)
  assert.equal(fresh.text.toString(), '')
})

test('race: a client joining while the delete runs gets the new, empty room and keeps it', async (t) => {
  const { server, store, inner } = await gatedServer(t)
  await seed(inner, 'r', 'old content')
  const before = connect(server.url, 'r')
  t.after(() => before.destroy())
  await synced(before)
  const held = gate()
  store.beforeDelete = () => held.promise
  const stop = stopped(before)
  const deleting = server.rooms.delete('r')
  assert.equal((await stop).code, 4410)
  await waitFor(() => store.calls.delete === 1, { message: 'the store delete started' })
  const loads = store.calls.load
  const joiner = connect(server.url, 'r')
  t.after(() => joiner.destroy())
  const seen = closes(joiner)
  // Its connection is accepted (and its join asked for) once the socket is open: the join
  // waits for the delete rather than load the old room.
  await waitFor(() => joiner.provider.wsconnected, { message: 'the joiner is connected' })
  assert.equal(store.calls.load, loads, 'nothing loaded while the delete runs')
  assert.equal(joiner.provider.synced, false, 'not served while the delete runs')
  held.open()
  await deleting
  await synced(joiner)
  assert.equal(joiner.text.toString(), '')
  await typed(joiner, 'after')
  await waitFor(async () => {
    const doc = new Y.Doc()
    Y.applyUpdate(doc, Y.mergeUpdates((await inner.load('r')).updates))
    return doc.getText('text').toString() === 'after'
  }, { message: 'the joiner\'s write is stored in the new room' })
  assert.deepEqual(seen, [], 'the joiner was never closed')
})

// ---- the admin endpoint -----------------------------------------------------------------------

const ADMIN = 'an-admin-token-for-the-delete-tests'

async function del(server: CoeditServer, path: string, init: RequestInit = {}): Promise<{ status: number; body: { error?: { code: string; message: string } } & Record<string, unknown> }> {
  const res = await fetch(`${server.httpUrl}${path}`, { method: 'DELETE', ...init, headers: { Authorization: `Bearer ${ADMIN}`, ...(init.headers as Record<string, string> | undefined) } })
  return { status: res.status, body: await res.json() as { error?: { code: string; message: string } } & Record<string, unknown> }
}

test('DELETE /admin/rooms/ROOM: deletes, answers in JSON, 404 when there is nothing, and refuses hostile names', async (t) => {
  const server = await startServer({ storage: 'memory', adminToken: ADMIN })
  t.after(() => server.close())
  const client = connect(server.url, 'team/notes')
  const canary = connect(server.url, 'canary')
  t.after(() => { client.destroy(); canary.destroy() })
  await typed(client, 'minutes')
  await typed(canary, 'still here')
  const stop = stopped(client)
  const ok = await del(server, '/admin/rooms/team%2Fnotes')
  assert.deepEqual(ok, { status: 200, body: { room: 'team/notes', deleted: true, tombstone: false, connections: 1 } })
  assert.equal((await stop).code, 4410)
  assert.deepEqual(await del(server, '/admin/rooms/team%2Fnotes'), {
    status: 404, body: { error: { code: 'ROOM_NOT_FOUND', message: 'there is no room "team/notes"' } },
  })

  const stored = connect(server.url, 'kept')
  t.after(() => stored.destroy())
  await typed(stored, 'x')
  await waitFor(async () => (await server.store.load('kept')).updates.length > 0, { message: 'stored' })
  const tomb = await del(server, '/admin/rooms/kept?tombstone=1')
  assert.deepEqual(tomb.body, { room: 'kept', deleted: true, tombstone: true, connections: 1 })
  assert.ok((await server.store.load('kept')).tombstone, 'the tombstone is stored')
  const reimport = await fetch(`${server.httpUrl}/admin/rooms/kept/import?format=update`, {
    method: 'POST', body: Y.encodeStateAsUpdate(stored.doc), headers: { Authorization: `Bearer ${ADMIN}` },
  })
  assert.equal(reimport.status, 409, 'an import of the old content is refused')
  assert.equal(((await reimport.json()) as { error: { code: string } }).error.code, 'DELETED_CONTENT')
  assert.deepEqual((await server.store.load('kept')).updates, [])

  const hostile: Array<[string, number, string]> = [
    ['/admin/rooms/a%00b', 400, 'BAD_ROOM_NAME'],
    ['/admin/rooms/line%0Abreak', 400, 'BAD_ROOM_NAME'],
    ['/admin/rooms/evil%E2%80%AEtxt', 400, 'BAD_ROOM_NAME'],
    ['/admin/rooms/zero%E2%80%8Bwidth', 400, 'BAD_ROOM_NAME'],
    [`/admin/rooms/${'x'.repeat(600)}`, 400, 'BAD_ROOM_NAME'],
    ['/admin/rooms/%ED%A0%80', 404, 'ROOM_NOT_FOUND'], // not UTF-8: kept as the literal name "%ED%A0%80", never stored
    ['/admin/rooms/..%2F..%2Fcanary', 404, 'ROOM_NOT_FOUND'],
    ['/admin/rooms/u%3Acanary%3A1', 404, 'ROOM_NOT_FOUND'],
    ['/admin/rooms/canary?tombstone=yes', 400, 'BAD_REQUEST'],
    ['/admin/rooms/', 404, 'NOT_FOUND'],
    ['/admin/rooms/canary/extra', 404, 'NOT_FOUND'],
  ]
  for (const [path, status, code] of hostile) {
    const res = await del(server, path)
    assert.equal(res.status, status, path)
    assert.equal(res.body.error?.code, code, path)
  }
  const wrongMethod = await fetch(`${server.httpUrl}/admin/rooms/canary`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN}` } })
  assert.equal(wrongMethod.status, 400)
  assert.equal(((await wrongMethod.json()) as { error: { code: string } }).error.code, 'BAD_REQUEST')
  const noToken = await fetch(`${server.httpUrl}/admin/rooms/canary`, { method: 'DELETE' })
  assert.equal(noToken.status, 401)
  const big = await del(server, '/admin/rooms/canary', { body: 'x'.repeat(70_000) })
  assert.equal(big.status, 413)
  // Nothing of that touched the other room.
  assert.equal(canary.text.toString(), 'still here')
  assert.deepEqual((await server.rooms.list()).filter((r) => r.stored).map((r) => r.name), ['canary'])
})

// ---- coedit delete ----------------------------------------------------------------------------

test('coedit delete: --yes required, offline and against a running server, exit codes and confirmations', async (t) => {
  const { cli } = await import('./helpers/cli.js')
  const dir = await tempDir()
  t.after(() => dir.remove())
  const data = `${dir.path}/data`
  const text = (s: string): { stdin: Uint8Array } => ({ stdin: new TextEncoder().encode(s) })
  for (const room of ['r', 'keep']) {
    assert.equal((await cli(['import', room, '-', '--format', 'text', '--data', data], text(`text of ${room}`))).code, 0)
  }
  // A name no verb writes any more (coedit import checks names offline too): stored directly.
  const legacyStore = await LevelStore.open(data)
  await seed(legacyStore, 'evil\u202etxt', 'text of evil')
  await legacyStore.close()
  const noYes = await cli(['delete', 'r', '--data', data])
  assert.equal(noYes.code, 2)
  assert.match(noYes.stderr, /^coedit delete: delete removes r and its history for good: add --yes/)
  assert.equal(noYes.stderr.trim().split('\n').length, 1)
  const done = await cli(['delete', 'r', '--yes', '--data', data])
  assert.deepEqual([done.code, done.stderr, done.out], [0, 'r: deleted\n', ''])
  const again = await cli(['delete', 'r', '--yes', '--data', data])
  assert.equal(again.code, 1)
  assert.equal(again.stderr, 'coedit delete: there is no room "r"\n')
  // A name stored before such characters were refused: deletable offline, printed escaped.
  const legacy = await cli(['delete', 'evil\u202etxt', '--yes', '--tombstone', '--json', '--data', data])
  assert.equal(legacy.code, 0, legacy.stderr)
  assert.equal(legacy.stderr, 'evil\\u202etxt: deleted, its old content refused from now on (tombstone)\n')
  assert.deepEqual(JSON.parse(legacy.out), { room: 'evil\u202etxt', tombstone: true, deleted: true })
  assert.equal((await cli(['delete', 'keep', '--yes', '-q', '--data', data])).stderr, '')
  assert.equal((await cli(['rooms', '--data', data])).stderr, 'no rooms\n')
  assert.equal((await cli(['delete', 'r', '--yes', '--data', `${dir.path}/nowhere`])).code, 1, 'no data directory')

  const server = await startServer({ storage: 'memory', adminToken: ADMIN })
  t.after(() => server.close())
  const client = connect(server.url, 'live room')
  t.after(() => client.destroy())
  await typed(client, 'on the server')
  await waitFor(async () => (await server.store.load('live room')).updates.length > 0, { message: 'stored' })
  const stop = stopped(client)
  const where = ['--server', server.httpUrl, '--admin-token', ADMIN]
  const live = await cli(['delete', 'live room', '--yes', ...where])
  assert.deepEqual([live.code, live.stderr], [0, 'live room: deleted (1 connection closed)\n'])
  assert.equal((await stop).code, 4410)
  const missing = await cli(['delete', 'live room', '--yes', ...where])
  assert.deepEqual([missing.code, missing.stderr], [1, 'coedit delete: there is no room "live room"\n'])
  const refused = await cli(['delete', 'line\nbreak', '--yes', ...where])
  assert.equal(refused.code, 1)
  assert.match(refused.stderr, /^coedit delete: room name contains control characters/)
  assert.equal((await cli(['delete', 'x', '--yes', '--server', server.httpUrl, '--admin-token', 'wrong'])).code, 1)
})

test('server.documents and the hooks around a delete: a transact caught by it is ROOM_DELETED, later ones start the new room (tombstone or not), unloaded is told', async (t) => {
  const told: string[] = []
  const server = await startServer({
    storage: 'memory',
    hooks: { loaded: ({ room }) => { told.push(`loaded ${room}`) }, unloaded: ({ room }) => { told.push(`unloaded ${room}`) } },
  })
  t.after(() => server.close())
  for (const tombstone of [false, true]) {
    const room = `docs-${tombstone}`
    // Twice, so that the documents' pooled client ID wrote in the room before the delete.
    await server.documents.transact(room, (doc) => { doc.getText('text').insert(0, 'old ') })
    await server.documents.transact(room, (doc) => { doc.getText('text').insert(4, 'words') })
    assert.equal((await server.documents.get(room)).getText('text').toString(), 'old words')
    const old = Y.encodeStateAsUpdate(await server.documents.get(room))

    // A transact whose callback is still running when the delete ends the room stores nothing.
    let release!: () => void
    const held = new Promise<void>((resolve) => { release = resolve })
    let entered!: () => void
    const inside = new Promise<void>((resolve) => { entered = resolve })
    const caught = server.documents.transact(room, async (doc) => {
      entered()
      await held
      doc.getText('text').insert(0, 'too late ')
    })
    await inside
    assert.deepEqual(await server.rooms.delete(room, { tombstone }), { room, existed: true, tombstone, connections: 0 })
    release()
    await assert.rejects(caught, (err: { code?: string }) => err.code === 'ROOM_DELETED')
    await waitFor(() => told.includes(`unloaded ${room}`), { message: 'unloaded told for the deleted room' })
    assert.equal((await server.store.load(room)).updates.length, 0, 'nothing of the caught transact was stored')

    // Afterwards: the new, empty room, written under a client ID the tombstone does not hold.
    await server.documents.transact(room, (doc) => { doc.getText('text').insert(0, 'new') })
    assert.equal((await server.documents.get(room)).getText('text').toString(), 'new')

    // The old content through the document API: back without a tombstone, 409 DELETED_CONTENT with one.
    const res = await fetch(`${server.httpUrl}/api/rooms/${room}/update`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: old })
    const text = (await server.documents.get(room)).getText('text').toString()
    if (tombstone) {
      assert.equal(res.status, 409)
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'DELETED_CONTENT')
      assert.equal(text, 'new', 'nothing old came back')
    } else {
      assert.equal(res.status, 200)
      assert.match(text, /old words/, 'without a tombstone the old copy merges back')
    }
  }
  assert.deepEqual(told.filter((x) => x.endsWith('-true')), ['loaded docs-true', 'unloaded docs-true', 'loaded docs-true'])
})
