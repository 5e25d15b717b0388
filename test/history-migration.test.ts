/**
 * Issue 18: a data directory written before the history log (storage format 1, the
 * committed fixture test/fixtures/format1-data, built from main's code by
 * test/fixtures/make-format1-data.ts) opens, is migrated, serves and backs up; backups
 * carry the history log and restore it; a backup with a broken log is refused whole.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cp, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as Y from 'yjs'
import { startServer } from '../server/index.js'
import { LevelStore } from '../server/persistence/leveldb.js'
import { encodeBackup } from '../server/operator/backup-format.js'
import type { RoomRecord, StoreSnapshot } from '../server/persistence/store.js'
import { connect, synced, tempDir, waitFor } from './helpers/index.js'
import { cli } from './helpers/cli.js'

const FIXTURE = new URL('./fixtures/format1-data', import.meta.url).pathname
const iso = (ms: number): string => new Date(ms).toISOString()

test('a format-1 data directory is migrated at open, serves, keeps its versions, backs up, and is exact from the migration on', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const data = join(dir.path, 'data')
  await cp(FIXTURE, data, { recursive: true })
  const migratedAt = Date.now()
  const server = await startServer({ dataDir: data, adminToken: 'tok' })
  let closed = false
  t.after(async () => { if (!closed) await server.close() })
  const auth = ['--server', server.httpUrl, '--token', 'tok']
  const client = connect(server.url, 'legacy')
  t.after(() => client.destroy())
  await synced(client)
  assert.equal(client.text.toString(), 'written by format 1. compacted. then logged.')
  const beforeEdit = Date.now()
  client.text.insert(0, '> ')
  await waitFor(async () => (await server.store.load('legacy')).lastSeq >= 5, { timeout: 20_000, message: 'edit stored' })
  // The version format 1 recorded is still listed; a time before the migration falls back to it.
  const versions = JSON.parse((await cli(['history', 'legacy', '--json', ...auth])).out) as Array<{ id: number; at: number }>
  assert.equal(versions[0]!.at, Date.UTC(2026, 0, 1))
  assert.equal((await cli(['export', 'legacy', '--at', '2026-06-01T00:00:00Z', ...auth])).out, 'written by format 1. compacted. ')
  // From the migration on, exact: before the edit, the content format 1 stored.
  assert.equal((await cli(['export', 'legacy', '--at', iso(beforeEdit), ...auth])).out, 'written by format 1. compacted. then logged.')
  const notes = connect(server.url, 'notes')
  t.after(() => notes.destroy())
  await synced(notes)
  assert.deepEqual(notes.doc.getMap('meta').toJSON(), { title: 'Notes', owner: 'format 1' })
  client.destroy()
  notes.destroy()
  await server.close()
  closed = true

  // Offline: the migration left a base and entries stamped with its time.
  const store = await LevelStore.open(data)
  const legacyLog = await store.readLog('legacy')
  assert.equal(legacyLog.base?.upTo, 2)
  assert.ok(legacyLog.base!.at >= migratedAt - 1000)
  assert.deepEqual(legacyLog.entries.map((e) => e.seq), [3, 4, 5])
  const notesLog = await store.readLog('notes')
  assert.equal(notesLog.base?.upTo, 0)
  assert.deepEqual(notesLog.entries.map((e) => e.seq), [1, 2])
  await store.close()

  const file = join(dir.path, 'backup')
  const backup = await cli(['backup', '--out', file, '--data', data])
  assert.equal(backup.code, 0, backup.stderr)
  const restored = join(dir.path, 'restored')
  const restore = await cli(['restore-backup', file, '--data', restored])
  assert.equal(restore.code, 0, restore.stderr)
  assert.equal((await cli(['export', 'legacy', '--data', restored])).out, '> written by format 1. compacted. then logged.')
  assert.equal((await cli(['export', 'legacy', '--at', iso(beforeEdit), '--data', restored])).out, 'written by format 1. compacted. then logged.')
})

test('backups carry the history log: a restored room answers export --at T as the original did', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  let now = Math.floor(Date.now() / 1000) * 1000 - 60_000
  const src = join(dir.path, 'src')
  const store = await LevelStore.open(src, { now: () => now })
  const doc = new Y.Doc()
  const times: number[] = []
  for (const word of ['alpha', ' beta', ' gamma']) {
    const before = Y.encodeStateVector(doc)
    doc.getText('text').insert(doc.getText('text').length, word)
    times.push(now)
    await store.append('r', [Y.encodeStateAsUpdate(doc, before)], { user: 'u1' })
    now += 2000
  }
  // Compaction between backups does not matter: the log is separate.
  await store.compact('r', Y.encodeStateAsUpdate(doc), 3)
  await store.close()
  const file = join(dir.path, 'b')
  assert.equal((await cli(['backup', '--out', file, '--data', src])).code, 0)
  const dst = join(dir.path, 'dst')
  const res = await cli(['restore-backup', file, '--data', dst])
  assert.equal(res.code, 0, res.stderr)
  for (const [i, expected] of ['alpha', 'alpha beta', 'alpha beta gamma'].entries()) {
    assert.equal((await cli(['export', 'r', '--at', iso(times[i]! + 1000), '--data', dst])).out, expected)
  }
  const activity = JSON.parse((await cli(['history', 'r', '--activity', '--bucket', '1h', '--json', '--data', dst])).out) as Array<{ updates: number; users: string[] }>
  assert.deepEqual(activity.map((b) => b.users), activity.map(() => ['u1']))
  assert.equal(activity.reduce((n, b) => n + b.updates, 0), 3)
})

test('a backup whose history log has a gap or goes back in time is refused before anything is restored', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const doc = new Y.Doc()
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  for (const ch of 'abc') doc.getText('text').insert(0, ch)
  const record = (entries: Array<{ seq: number; at: number }>): RoomRecord => ({
    name: 'r', updatedAt: 1, lastSeq: 3, updates: [Y.encodeStateAsUpdate(doc)], versions: [],
    log: { base: undefined, entries: entries.map((e, i) => ({ ...e, user: undefined, update: updates[i]! })) },
  })
  const cases = {
    gap: record([{ seq: 1, at: 10 }, { seq: 3, at: 11 }]),
    backwards: record([{ seq: 1, at: 10 }, { seq: 2, at: 5 }, { seq: 3, at: 12 }]),
    beyond: { ...record([{ seq: 1, at: 10 }, { seq: 2, at: 11 }, { seq: 3, at: 12 }]), lastSeq: 2 },
    // Entries in the wrong order: they do not apply cleanly from the start.
    missing: { ...record([{ seq: 1, at: 10 }, { seq: 2, at: 11 }]), log: { base: undefined, entries: [{ seq: 1, at: 10, user: undefined, update: updates[2]! }] } },
  }
  for (const [name, rec] of Object.entries(cases)) {
    const snapshot: StoreSnapshot = { rooms: ['r'], read: async () => rec, close: async () => {} }
    const chunks: Uint8Array[] = []
    for await (const c of encodeBackup(snapshot, Date.now())) chunks.push(c)
    const file = join(dir.path, name)
    await writeFile(file, Buffer.concat(chunks))
    const res = await cli(['restore-backup', file, '--data', join(dir.path, `${name}-data`)])
    assert.equal(res.code, 1, `${name}: ${res.stderr}`)
    assert.match(res.stderr, /BAD_BACKUP|not a valid coedit backup/, name)
  }
})

test('a format-2 data directory opens as format 3 with its history log untouched (2 -> 3 rewrites nothing)', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const doc = new Y.Doc()
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  doc.getText('t').insert(0, 'ab')
  doc.getText('t').insert(2, 'c')
  let store = await LevelStore.open(dir.path)
  await store.append('r', updates, { user: 'ana' })
  const before = await store.readLog('r')
  await store.close()
  // What a format-2 coedit leaves: the same keys, marked 2.
  const { Level } = await import('level')
  const raw = new Level<string, string>(dir.path)
  await raw.put('!format', '2')
  await raw.close()
  store = await LevelStore.open(dir.path)
  try {
    const after = await store.readLog('r')
    assert.equal(after.base, undefined, 'no base made up by a rerun of 1 -> 2')
    assert.deepEqual(after.entries.map((e) => [e.seq, e.at, e.user]), before.entries.map((e) => [e.seq, e.at, e.user]))
  } finally {
    await store.close()
  }
  const check = new Level<string, string>(dir.path)
  assert.equal(await check.get('!format'), '3')
  await check.close()
})
