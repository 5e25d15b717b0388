/**
 * `coedit migrate`: a folder of update files comes over under the rooms its file names
 * encode, a document that cannot come over is named and the others still do (exit 3),
 * offline and through a running server; re-running changes nothing. (Migrations from data
 * written by y-websocket-server and Hocuspocus themselves: migrate-peers.test.ts.)
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as Y from 'yjs'
import { startServer } from '../server/index.js'
import { connect, synced, tempDir } from './helpers/index.js'
import { runCli } from './helpers/child-server.js'

interface LeveldbPersistence {
  storeUpdate(name: string, update: Uint8Array): Promise<unknown>
  destroy(): Promise<void>
}

test('migrate --from files: one room per file, a bad file is named and the others come over (exit 3), a live server takes them too', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const files = join(dir.path, 'files')
  await mkdir(files)
  const state = (text: string): Uint8Array => {
    const d = new Y.Doc()
    d.getText('text').insert(0, text)
    return Y.encodeStateAsUpdate(d)
  }
  await writeFile(join(files, 'team%2Fnotes.bin'), state('notes'))
  await writeFile(join(files, 'plain.yjs'), state('plain'))
  await writeFile(join(files, 'broken.bin'), new TextEncoder().encode('not a yjs update'))
  await writeFile(join(files, `bad${encodeURIComponent('\u202e')}name.bin`), state('bidi'))
  const data = join(dir.path, 'coedit')
  const run = await runCli(['migrate', '--from', 'files', files, '--data', data, '--json'])
  assert.equal(run.code, 3, run.stderr)
  const report = JSON.parse(run.stdout) as Array<{ source: string; room?: string; ok: boolean }>
  assert.deepEqual(report.filter((r) => r.ok).map((r) => r.room).sort(), ['plain', 'team/notes'])
  assert.deepEqual(report.filter((r) => !r.ok).map((r) => r.source).sort(), ['bad%E2%80%AEname.bin', 'broken.bin'])
  assert.equal(await exportText(data, 'team/notes'), 'notes')
  // A second run merges nothing: every room is already there.
  const again = await runCli(['migrate', '--from', 'files', files, '--data', data, '--json'])
  assert.equal(again.code, 3, again.stderr)
  assert.ok((JSON.parse(again.stdout) as Array<{ ok: boolean; imported: number }>).filter((r) => r.ok).every((r) => r.imported === 0))

  // Through a running server's admin API: merged into the live room.
  const server = await startServer({ adminToken: 'admin-token-for-the-migrate-test' })
  t.after(() => server.close())
  const live = await runCli(['migrate', '--from', 'files', files, '--server', server.httpUrl, '--admin-token', 'admin-token-for-the-migrate-test', '--quiet'])
  assert.equal(live.code, 3, live.stderr)
  const c = connect(server.url, 'team%2Fnotes')
  t.after(() => c.destroy())
  await synced(c)
  assert.equal(c.text.toString(), 'notes')
})

test('migrate --from y-leveldb: rooms stored the way y-websocket-server stores them (raw URL paths) come over under the names their URLs reach', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const ldb = join(dir.path, 'ywss')
  // y-websocket-server keys a room by its URL path as the client sent it, still encoded.
  const byUrlPath: Record<string, string> = { 'team/notes': 'team/notes', 'Q3%2050%%20plan': 'Q3 50% plan', 'caf%C3%A9': 'café', '100%': '100%' }
  const moduleName = 'y-leveldb'
  const { LeveldbPersistence } = await import(moduleName) as { LeveldbPersistence: new (dir: string) => LeveldbPersistence }
  const db = new LeveldbPersistence(ldb)
  for (const key of Object.keys(byUrlPath)) {
    const d = new Y.Doc()
    d.getText('text').insert(0, `content of ${key}`)
    // Two updates, as a server stores them one by one.
    d.getMap('meta').set('key', key)
    await db.storeUpdate(key, Y.encodeStateAsUpdate(d))
    d.getText('text').insert(0, '> ')
    await db.storeUpdate(key, Y.encodeStateAsUpdate(d))
  }
  await db.destroy()
  const data = join(dir.path, 'coedit')
  const dry = await runCli(['migrate', '--from', 'y-leveldb', ldb, '--data', data, '--dry-run', '--json'])
  assert.equal(dry.code, 0, dry.stderr)
  const listed = await runCli(['rooms', '--data', data, '--json'])
  assert.ok(listed.code !== 0 || listed.stdout.trim() === '[]', '--dry-run changed nothing')
  const run = await runCli(['migrate', '--from', 'y-leveldb', ldb, '--data', data, '--json'])
  assert.equal(run.code, 0, run.stderr)
  const report = JSON.parse(run.stdout) as Array<{ source: string; room: string; ok: boolean }>
  assert.deepEqual(Object.fromEntries(report.map((r) => [r.source, r.room])), byUrlPath)
  const server = await startServer({ dataDir: data })
  t.after(() => server.close())
  for (const key of Object.keys(byUrlPath)) {
    // The same URL path as before reaches the same content.
    const c = connect(server.url, key)
    t.after(() => c.destroy())
    await synced(c)
    assert.equal(c.text.toString(), `> content of ${key}`, key)
  }
})

test('migrate refuses a missing source with one line (exit 1) and a missing --from (exit 2)', async () => {
  const missing = await runCli(['migrate', '--from', 'y-leveldb', '/nonexistent/dir', '--data', '/tmp/never'])
  assert.equal(missing.code, 1)
  assert.match(missing.stderr, /does not exist/)
  assert.equal(missing.stderr.trim().split('\n').length, 1)
  const usage = await runCli(['migrate', '/tmp'])
  assert.equal(usage.code, 2)
  assert.match(usage.stderr, /--from/)
})

async function exportText(dataDir: string, room: string): Promise<string> {
  const res = await runCli(['export', room, '--data', dataDir])
  assert.equal(res.code, 0, res.stderr)
  return res.stdout
}
