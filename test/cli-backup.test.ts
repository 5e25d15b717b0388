/**
 * coedit backup / restore-backup: a backup of a live server taken while clients keep
 * editing holds everything any client had received before it started, each room is
 * internally consistent, and it restores into a second server; bad files change nothing.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as Y from 'yjs'
import { startServer } from '../server/index.js'
import { LevelStore } from '../server/persistence/leveldb.js'
import { decodeBackup, encodeBackup, verifyBackup, type BackupRoom } from '../server/operator/backup-format.js'
import { encodeTombstone } from '../server/persistence/tombstone.js'
import type { StoreSnapshot } from '../server/persistence/store.js'
import { docFromUpdates, mergeUpdates } from '../server/room/yjs-log.js'
import { connect, prng, synced, tempDir, testSeed, waitFor, type Client } from './helpers/index.js'
import { cli } from './helpers/cli.js'
import { RawClient } from './helpers/raw-client.js'
import { encodeSyncUpdate } from '../server/room/protocol.js'
import * as encoding from 'lib0/encoding'
/** waitFor with a generous default timeout: the CPU is shared with other test runs. */
const wait = <T>(check: () => T | Promise<T>, options: Parameters<typeof waitFor>[1] = {}): Promise<T> => waitFor(check, { timeout: 15_000, ...options })

async function readBackup(file: string): Promise<BackupRoom[]> {
  const rooms: BackupRoom[] = []
  const bytes = await readFile(file)
  for await (const item of decodeBackup((async function* () { yield bytes })())) if ('room' in item) rooms.push(item.room)
  return rooms
}

/** True if `state` already holds every insertion and deletion of `updates`. */
function holdsAll(state: Uint8Array, updates: Uint8Array[]): boolean {
  const doc = docFromUpdates([state])
  let changed = false
  doc.on('update', () => { changed = true })
  Y.applyUpdate(doc, Y.mergeUpdates(updates))
  doc.destroy()
  return !changed
}

test('backup of a live server while 5 clients keep editing, restored into a second server', async (t) => {
  const seed = testSeed()
  const random = prng(seed)
  t.diagnostic(`seed ${seed} (SEED=${seed} to replay)`)
  const dir = await tempDir()
  t.after(() => dir.remove())
  const server = await startServer({ dataDir: join(dir.path, 'one'), adminToken: 'tok', compactEvery: 40, historyInterval: 100 })
  t.after(() => server.close())
  const auth = ['--server', server.httpUrl, '--token', 'tok']
  const roomOf = ['alpha', 'beta', 'alpha', 'beta', 'beta']
  const clients: Client[] = []
  const received: Uint8Array[][] = []
  for (const [i, room] of roomOf.entries()) {
    const c = connect(server.url, room)
    clients.push(c)
    t.after(() => c.destroy())
    received.push([])
    // What the server sent this client: stored before it was sent (persist before relay).
    c.doc.on('update', (update: Uint8Array, origin: unknown) => {
      if (origin === c.provider) received[i]!.push(update)
    })
  }
  await Promise.all(clients.map((c) => synced(c)))
  // A room nobody edits during the backup.
  const still = new Y.Doc()
  still.getText('text').insert(0, 'quiet room')
  assert.equal((await cli(['import', 'gamma', '-', '--format', 'update', ...auth], { stdin: Y.encodeStateAsUpdate(still) })).code, 0)

  let editing = true
  const loops = clients.map(async (c, i) => {
    let n = 0
    while (editing) {
      const len = c.text.length
      if (len > 20 && random() < 0.3) c.text.delete(Math.floor(random() * (len - 5)), 3)
      else c.text.insert(Math.floor(random() * (len + 1)), `${i}:${n++} `)
      await new Promise((r) => setTimeout(r, 2 + Math.floor(random() * 8)))
    }
  })
  await wait(() => received.every((r) => r.length >= 10), { timeout: 20_000, message: 'clients exchanging edits' })

  const seenBefore = received.map((r) => r.slice())
  const file = join(dir.path, 'backup.coedit')
  const res = await cli(['backup', '--out', file, '--json', ...auth])
  assert.equal(res.code, 0, res.stderr)
  const afterBackup = received.map((r) => r.length)
  // Editing went on during the backup and after it.
  await wait(() => received.every((r, i) => r.length > afterBackup[i]!), { timeout: 20_000, message: 'edits after the backup' })
  editing = false
  await Promise.all(loops)
  assert.equal((JSON.parse(res.out) as { rooms: number }).rooms, 3)

  const rooms = await readBackup(file)
  assert.deepEqual(rooms.map((r) => r.name), ['alpha', 'beta', 'gamma'])
  for (const room of rooms) {
    // Internally consistent: the state applies with nothing missing.
    const doc = docFromUpdates(room.updates)
    assert.equal(doc.store.pendingStructs, null, `${room.name}: no structs waiting for missing ones`)
    assert.equal(doc.store.pendingDs, null, `${room.name}: no pending deletions`)
    doc.destroy()
  }
  for (const [i, room] of roomOf.entries()) {
    const state = rooms.find((r) => r.name === room)!.updates[0]!
    assert.ok(holdsAll(state, seenBefore[i]!), `client ${i} (${room}): every update it had received before the backup is in it (seed ${seed})`)
  }

  // Restore into a fresh directory and serve it.
  const two = join(dir.path, 'two')
  const restored = await cli(['restore-backup', file, '--data', two, '--json'])
  assert.equal(restored.code, 0, restored.stderr)
  assert.deepEqual(JSON.parse(restored.out), { file, rooms: 3, verified: 3, unreadable: [], tombstones: 0 })
  const second = await startServer({ dataDir: two })
  t.after(() => second.close())
  for (const [i, room] of roomOf.entries()) {
    const reader = connect(second.url, room)
    t.after(() => reader.destroy())
    await synced(reader)
    const backupState = rooms.find((r) => r.name === room)!.updates[0]!
    await wait(() => holdsAll(Y.encodeStateAsUpdate(reader.doc), [backupState]), { message: `${room} served from the restored server` })
    assert.ok(holdsAll(Y.encodeStateAsUpdate(reader.doc), seenBefore[i]!), `client ${i}: restored server holds what it had received`)
    assert.equal(reader.text.toString(), docFromUpdates([backupState]).getText('text').toString())
  }
})

test('restore-backup: refuses a used directory without --force, a bad file changes nothing, verifies what it wrote', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const src = join(dir.path, 'src')
  const store = await LevelStore.open(src)
  for (const name of ['a', 'b', 'c/d']) {
    const doc = new Y.Doc()
    doc.getText('text').insert(0, `room ${name}`)
    await store.append(name, [Y.encodeStateAsUpdate(doc)])
    await store.putVersion(name, { at: Date.now() - 60_000, seq: 1, state: Y.encodeStateAsUpdate(doc) })
  }
  await store.close()
  const file = join(dir.path, 'b.coedit')
  const b = await cli(['backup', '--out', file, '--data', src])
  assert.equal(b.code, 0, b.stderr)
  assert.match(b.stderr, /backed up 3 rooms/)
  const bytes = await readFile(file)

  // Corrupt, truncated and foreign files: exit 1 and the target directory is not even created.
  const bad: Array<[string, Uint8Array]> = [
    ['truncated', bytes.subarray(0, bytes.length - 10)],
    ['cut-in-half', bytes.subarray(0, Math.floor(bytes.length / 2))],
    ['flipped', (() => { const c = Buffer.from(bytes); c[Math.floor(c.length / 2)]! ^= 0x40; return c })()],
    ['trailing', Buffer.concat([bytes, Buffer.from('x')])],
    ['not-a-backup', Buffer.from('hello, I am a text file\n')],
    ['empty', Buffer.alloc(0)],
  ]
  for (const [name, content] of bad) {
    const f = join(dir.path, name)
    await writeFile(f, content)
    const target = join(dir.path, `restore-${name}`)
    const res = await cli(['restore-backup', f, '--data', target])
    assert.equal(res.code, 1, `${name}: ${res.stderr}`)
    assert.match(res.stderr, /not a valid coedit backup/, name)
    await assert.rejects(readdir(target), { code: 'ENOENT' }, `${name}: nothing written`)
  }

  const into = join(dir.path, 'into')
  assert.equal((await cli(['restore-backup', file, '--data', into])).code, 0)
  const again = await cli(['restore-backup', file, '--data', into])
  assert.equal(again.code, 1)
  assert.match(again.stderr, /already holds rooms.*--force/)
  const forced = await cli(['restore-backup', file, '--data', into, '--force', '--json'])
  assert.equal(forced.code, 0, forced.stderr)
  assert.equal((JSON.parse(forced.out) as { verified: number }).verified, 3)

  const check = await LevelStore.open(into)
  t.after(() => check.close())
  assert.deepEqual((await check.listRooms()).map((r) => r.name), ['a', 'b', 'c/d'])
  assert.equal(docFromUpdates([mergeUpdates((await check.load('c/d')).updates)]).getText('text').toString(), 'room c/d')
  assert.equal((await check.listVersions('a')).length, 1, 'history comes along')
  const missing = await cli(['restore-backup', join(dir.path, 'nope.coedit'), '--data', join(dir.path, 'x')])
  assert.equal(missing.code, 1)
  assert.match(missing.stderr, /no file/)
})

test('restore-backup through the admin API: refuses a server with rooms unless --force, then merges live', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const src = await startServer({ dataDir: join(dir.path, 'src'), adminToken: 't1' })
  t.after(() => src.close())
  const writer = connect(src.url, 'shared')
  t.after(() => writer.destroy())
  await synced(writer)
  writer.text.insert(0, 'from the backup')
  await wait(async () => (await src.store.load('shared')).lastSeq >= 1)
  const file = join(dir.path, 'x.coedit')
  assert.equal((await cli(['backup', '--out', file, '--server', src.httpUrl, '--token', 't1'])).code, 0)

  const dst = await startServer({ dataDir: join(dir.path, 'dst'), adminToken: 't2' })
  t.after(() => dst.close())
  const viewer = connect(dst.url, 'other')
  t.after(() => viewer.destroy())
  await synced(viewer)
  viewer.text.insert(0, 'already here')
  await wait(async () => (await dst.store.listRooms()).length === 1)
  const refused = await cli(['restore-backup', file, '--server', dst.httpUrl, '--token', 't2'])
  assert.equal(refused.code, 1)
  assert.match(refused.stderr, /already has rooms.*--force/)

  const watcher = connect(dst.url, 'shared')
  t.after(() => watcher.destroy())
  await synced(watcher)
  const ok = await cli(['restore-backup', file, '--force', '--server', dst.httpUrl, '--token', 't2', '--json'])
  assert.equal(ok.code, 0, ok.stderr)
  await wait(() => watcher.text.toString() === 'from the backup', { message: 'a connected client sees the restored room' })
  const bad = join(dir.path, 'bad.coedit')
  await writeFile(bad, (await readFile(file)).subarray(0, 20))
  assert.equal((await cli(['restore-backup', bad, '--force', '--server', dst.httpUrl, '--token', 't2'])).code, 1)
})

/** 17 bytes: one struct of client 7 at clock 2^25, a gap no update fills (inside --max-clock-advance). */
function gapUpdate(): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 1) // one client
  encoding.writeVarUint(e, 1) // one struct
  encoding.writeVarUint(e, GAP_CLIENT)
  encoding.writeVarUint(e, GAP_CLOCK)
  encoding.writeUint8(e, 4) // an Item with string content, parent given by name
  encoding.writeVarUint(e, 1)
  encoding.writeVarString(e, 'text')
  encoding.writeVarString(e, 'x')
  encoding.writeVarUint(e, 0) // empty delete set
  return encoding.toUint8Array(e)
}
const GAP_CLIENT = 7
const GAP_CLOCK = 2 ** 25

/** The state holds the struct beyond the gap (as a document holds it: pending). */
function holdsGap(state: Uint8Array): boolean {
  return Y.decodeUpdate(state).structs.some((s) => s.id.client === GAP_CLIENT && s.id.clock === GAP_CLOCK && !(s instanceof Y.Skip))
}

function textUpdate(content: string): Uint8Array {
  const doc = new Y.Doc()
  doc.getText('text').insert(0, content)
  return Y.encodeStateAsUpdate(doc)
}

test('a stored update with a clock gap: live and offline backups succeed and restore puts the pending struct back', async (t) => {
  assert.equal(gapUpdate().length, 17)
  const dir = await tempDir()
  t.after(() => dir.remove())
  const one = join(dir.path, 'one')
  const server = await startServer({ dataDir: one, adminToken: 'tok' })
  let closed = false
  t.after(() => (closed ? undefined : server.close()))
  const writer = connect(server.url, 'gap-room')
  t.after(() => writer.destroy())
  await synced(writer)
  writer.text.insert(0, 'before the gap')
  await wait(async () => (await server.store.listRooms()).find((r) => r.name === 'gap-room' && r.lastSeq >= 1), { message: 'the text stored' })
  const attacker = await RawClient.open(`${server.url}/gap-room`)
  t.after(() => attacker.close())
  attacker.send(encodeSyncUpdate(gapUpdate()))
  await wait(async () => (await server.store.listRooms()).find((r) => r.name === 'gap-room' && r.lastSeq >= 2), { message: 'the gap update stored' })
  assert.equal(attacker.closeInfo, undefined, 'a gap is what legit clients send too: not refused')

  const live = join(dir.path, 'live.coedit')
  const res = await cli(['backup', '--out', live, '--json', '--server', server.httpUrl, '--token', 'tok'])
  assert.equal(res.code, 0, res.stderr)
  const liveRooms = await readBackup(live)
  assert.ok(holdsGap(liveRooms.find((r) => r.name === 'gap-room')!.updates[0]!), 'the live backup carries the struct beyond the gap')
  const exported = await cli(['export', 'gap-room', '--server', server.httpUrl, '--token', 'tok'])
  assert.equal(exported.code, 0, exported.stderr)
  assert.equal(exported.out, 'before the gap')

  writer.destroy()
  attacker.close()
  closed = true
  await server.close()
  const offline = join(dir.path, 'offline.coedit')
  const off = await cli(['backup', '--out', offline, '--data', one])
  assert.equal(off.code, 0, off.stderr)
  const offRoom = (await readBackup(offline)).find((r) => r.name === 'gap-room')!
  assert.ok(holdsGap(offRoom.updates[0]!), 'the offline backup carries it too')
  assert.equal(docFromUpdates(offRoom.updates).getText('text').toString(), 'before the gap')

  // Offline restore: the room is stored with the struct, and loads with it pending again.
  const two = join(dir.path, 'two')
  const restored = await cli(['restore-backup', offline, '--data', two, '--json'])
  assert.equal(restored.code, 0, restored.stderr)
  const store = await LevelStore.open(two)
  const stored = mergeUpdates((await store.load('gap-room')).updates)
  await store.close()
  assert.ok(holdsGap(stored), 'restored offline with the pending struct')
  const doc = docFromUpdates([stored])
  assert.ok(doc.store.pendingStructs !== null, 'pending in a document, as on the original server')
  assert.equal(doc.getText('text').toString(), 'before the gap')

  // Live restore into an empty server.
  const three = await startServer({ dataDir: join(dir.path, 'three'), adminToken: 'tok' })
  t.after(() => three.close())
  const liveRestore = await cli(['restore-backup', live, '--json', '--server', three.httpUrl, '--token', 'tok'])
  assert.equal(liveRestore.code, 0, liveRestore.stderr)
  assert.ok(holdsGap(mergeUpdates((await three.store.load('gap-room')).updates)), 'restored live with the pending struct')
})

test('backup and export of a store holding one unreadable room: every other room succeeds, the bad one is named (exit 3)', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const data = join(dir.path, 'data')
  const store = await LevelStore.open(data)
  await store.append('good', [textUpdate('good text')])
  await store.append('zz-good', [textUpdate('more good text')])
  const valid = textUpdate('bad room')
  // A stored update that does not decode (as a disk fault or an old bug would leave it).
  await store.append('bad', [valid, valid.slice(0, Math.floor(valid.length / 2))])
  await store.close()

  const check = async (args: string[], file: string): Promise<void> => {
    const res = await cli(['backup', '--out', file, '--json', ...args])
    assert.equal(res.code, 3, res.stderr)
    assert.match(res.stderr, /room "bad" could not be read/)
    const out = JSON.parse(res.out) as { rooms: number; unreadable: Array<{ name: string; reason: string }> }
    assert.equal(out.rooms, 2)
    assert.deepEqual(out.unreadable.map((u) => u.name), ['bad'])
    const rooms = await readBackup(file)
    assert.deepEqual(rooms.map((r) => r.name), ['good', 'zz-good'])
    assert.equal(docFromUpdates(rooms[0]!.updates).getText('text').toString(), 'good text')
  }
  const exportOf = async (room: string, args: string[]): Promise<{ code: number; out: string; stderr: string }> => cli(['export', room, ...args])

  // Offline.
  await check(['--data', data], join(dir.path, 'offline.coedit'))
  assert.equal((await exportOf('good', ['--data', data])).out, 'good text')
  const badOffline = await exportOf('bad', ['--data', data])
  assert.equal(badOffline.code, 1)
  assert.match(badOffline.stderr, /room "bad" could not be read/)

  // Live.
  const server = await startServer({ dataDir: data, adminToken: 'tok' })
  t.after(() => server.close())
  const auth = ['--server', server.httpUrl, '--token', 'tok']
  await check(auth, join(dir.path, 'live.coedit'))
  assert.equal((await exportOf('good', auth)).out, 'good text')
  const badLive = await exportOf('bad', auth)
  assert.equal(badLive.code, 1)
  assert.match(badLive.stderr, /room "bad" could not be read/)

  // The partial backup restores every room it holds, and says which one it lacks.
  const restored = await cli(['restore-backup', join(dir.path, 'live.coedit'), '--data', join(dir.path, 'restored'), '--json'])
  assert.equal(restored.code, 0, restored.stderr)
  assert.match(restored.stderr, /room "bad" was unreadable/)
  const result = JSON.parse(restored.out) as { rooms: number; verified: number }
  assert.equal(result.rooms, 2)
  assert.equal(result.verified, 2)
})

test('tombstones survive backup and restore-backup: a deleted room restored into a fresh directory still refuses its old content (format 3; without tombstones format 2)', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const src = join(dir.path, 'src')
  const store = await LevelStore.open(src)
  const made = (text: string): Uint8Array => {
    const doc = new Y.Doc()
    doc.getText('text').insert(0, text)
    return Y.encodeStateAsUpdate(doc)
  }
  const oldGone = made('secret that was deleted')
  const oldBack = made('old words of back')
  await store.append('gone', [oldGone])
  await store.delete('gone', { tombstone: true })
  await store.append('back', [oldBack])
  await store.delete('back', { tombstone: true })
  await store.append('back', [made('new words of back')])
  await store.append('plain', [made('plain room')])
  const tombstones = { gone: (await store.load('gone')).tombstone, back: (await store.load('back')).tombstone }
  assert.ok(tombstones.gone && tombstones.back)
  await store.close()

  const file = join(dir.path, 'with-tombstones.coedit')
  const b = await cli(['backup', '--out', file, '--data', src])
  assert.equal(b.code, 0, b.stderr)
  assert.equal((await readFile(file))[8], 3, 'format 3: it carries tombstones')
  const into = join(dir.path, 'into')
  const r = await cli(['restore-backup', file, '--data', into, '--json'])
  assert.equal(r.code, 0, r.stderr)
  assert.equal((JSON.parse(r.out) as { tombstones: number }).tombstones, 2)

  const check = await LevelStore.open(into)
  assert.deepEqual((await check.listRooms()).map((x) => x.name), ['back', 'plain'], 'a deleted room is not listed')
  assert.deepEqual((await check.load('gone')).tombstone, tombstones.gone)
  assert.deepEqual((await check.load('back')).tombstone, tombstones.back)
  await check.close()

  // Served from the restored directory: the old content is refused, the new content is there.
  const server = await startServer({ dataDir: into })
  t.after(() => server.close())
  for (const [room, old, now] of [['gone', oldGone, ''], ['back', oldBack, 'new words of back']] as const) {
    const res = await fetch(`${server.httpUrl}/api/rooms/${room}/update`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: old })
    assert.equal(res.status, 409, room)
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'DELETED_CONTENT', room)
    assert.equal((await server.documents.get(room)).getText('text').toString(), now, `${room}: nothing old came back`)
  }

  // A store without tombstones still writes format 2 (coedit before tombstones reads it), and it restores.
  const plainSrc = join(dir.path, 'plain-src')
  const plain = await LevelStore.open(plainSrc)
  await plain.append('p', [made('p')])
  await plain.close()
  const file2 = join(dir.path, 'plain.coedit')
  assert.equal((await cli(['backup', '--out', file2, '--data', plainSrc])).code, 0)
  assert.equal((await readFile(file2))[8], 2)
  assert.equal((await cli(['restore-backup', file2, '--data', join(dir.path, 'into2')])).code, 0)
})

test('a backup with a malformed tombstone record is refused as BAD_BACKUP', async () => {
  const snapshotOf = (tombstones: Array<[string, Uint8Array]>): StoreSnapshot => ({
    rooms: [],
    tombstones: new Map(tombstones),
    read: async () => { throw new Error('no rooms') },
    close: async () => {},
  })
  const good = encodeTombstone(new Map([[7, 3]]))
  const cases: Array<[string, StoreSnapshot]> = [
    ['no client', snapshotOf([['a', encodeTombstone(new Map())]])],
    ['truncated', snapshotOf([['a', good.subarray(0, good.length - 1)]])],
    ['trailing', snapshotOf([['a', new Uint8Array([...good, 1])]])],
    ['garbage', snapshotOf([['a', new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])]])],
  ]
  for (const [what, snapshot] of cases) {
    const chunks: Uint8Array[] = []
    for await (const c of encodeBackup(snapshot, 1)) chunks.push(c)
    await assert.rejects(verifyBackup((async function* () { yield* chunks })()), (err: { code?: string }) => err.code === 'BAD_BACKUP', what)
  }
  const chunks: Uint8Array[] = []
  for await (const c of encodeBackup(snapshotOf([['a', good]]), 1)) chunks.push(c)
  await verifyBackup((async function* () { yield* chunks })())
})
