/**
 * coedit export / import / rooms: round trips in every format, offline and through the
 * admin API, and the bad-input paths (unknown room, corrupt files, locked directory,
 * wrong token, admin API off).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { join } from 'node:path'
import * as Y from 'yjs'
import { startServer } from '../server/index.js'
import { LevelStore } from '../server/persistence/leveldb.js'
import { docToJson } from '../server/operator/doc-ops.js'
import { docFromUpdates, mergeUpdates } from '../server/room/yjs-log.js'
import { connect, synced, tempDir, waitFor } from './helpers/index.js'
import { cli } from './helpers/cli.js'
import { captureLog } from './helpers/log-capture.js'
import { createLogger } from '../server/log.js'
/** waitFor with a generous default timeout: the CPU is shared with other test runs. */
const wait = <T>(check: () => T | Promise<T>, options: Parameters<typeof waitFor>[1] = {}): Promise<T> => waitFor(check, { timeout: 15_000, ...options })

/** A document using every root kind, nested values and formatting. */
function richDoc(): Y.Doc {
  const doc = new Y.Doc()
  doc.getText('text').insert(0, 'Hello, wörld 👋\nsecond line')
  doc.getText('text').format(0, 5, { bold: true })
  doc.getText('notes').insert(0, 'notes')
  const map = doc.getMap('meta')
  map.set('title', 'A title')
  map.set('count', 3)
  map.set('nested', { a: [1, 2, { b: null }] })
  doc.getArray('list').insert(0, ['x', 1, true, { y: 'z' }])
  return doc
}

async function seedRoom(dir: string, room: string, doc: Y.Doc): Promise<void> {
  const store = await LevelStore.open(dir)
  await store.append(room, [Y.encodeStateAsUpdate(doc)])
  await store.close()
}

async function storedJson(dir: string, room: string): Promise<unknown> {
  const store = await LevelStore.open(dir)
  try {
    const doc = docFromUpdates((await store.load(room)).updates)
    return docToJson(doc)
  } finally {
    await store.close()
  }
}

test('offline: export → import into a fresh room gives an equal document (update, json, text)', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const data = join(dir.path, 'data')
  const source = richDoc()
  await seedRoom(data, 'source room/1', source)

  // update: lossless, the two states are the same document
  const upd = join(dir.path, 'room.ydoc')
  const e1 = await cli(['export', 'source room/1', '--format', 'update', '--out', upd, '--data', data])
  assert.equal(e1.code, 0, e1.stderr)
  const i1 = await cli(['import', 'copy-update', upd, '--data', data])
  assert.equal(i1.code, 0, i1.stderr)
  const store = await LevelStore.open(data)
  const a = mergeUpdates((await store.load('source room/1')).updates)
  const b = mergeUpdates((await store.load('copy-update')).updates)
  await store.close()
  assert.deepEqual(Y.encodeStateVector(docFromUpdates([b])), Y.encodeStateVector(docFromUpdates([a])))
  assert.deepEqual(docToJson(docFromUpdates([b])), docToJson(source))

  // json: equal JSON
  const json = join(dir.path, 'room.json')
  assert.equal((await cli(['export', 'source room/1', '--format', 'json', '--out', json, '--data', data])).code, 0)
  assert.deepEqual(JSON.parse(await readFile(json, 'utf8')), docToJson(source))
  const i2 = await cli(['import', 'copy-json', json, '--data', data])
  assert.equal(i2.code, 0, i2.stderr)
  assert.deepEqual(await storedJson(data, 'copy-json'), docToJson(source))

  // text: the shared text, through stdout and stdin
  const e3 = await cli(['export', 'source room/1', '--data', data])
  assert.equal(e3.code, 0, e3.stderr)
  assert.equal(e3.out, 'Hello, wörld 👋\nsecond line')
  const i3 = await cli(['import', 'copy-text', '-', '--format', 'text', '--data', data], { stdin: e3.stdout })
  assert.equal(i3.code, 0, i3.stderr)
  assert.equal((await cli(['export', 'copy-text', '--data', data])).out, e3.out)

  // rooms lists all four, as JSON for scripts
  const r = await cli(['rooms', '--data', data, '--json'])
  assert.equal(r.code, 0, r.stderr)
  const rooms = JSON.parse(r.out) as Array<{ name: string; bytes: number; updates: number; updatedAt: number }>
  assert.deepEqual(rooms.map((x) => x.name), ['copy-json', 'copy-text', 'copy-update', 'source room/1'])
  assert.ok(rooms.every((x) => x.bytes > 0 && x.updates >= 1 && typeof x.updatedAt === 'number'))
})

test('import text into an existing room replaces only what differs, as a change on top', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const doc = new Y.Doc()
  doc.getText('text').insert(0, 'one two three')
  await seedRoom(dir.path, 'r', doc)
  const file = join(dir.path, 'new.txt')
  await writeFile(file, 'one 2 three')
  const res = await cli(['import', 'r', file, '--data', dir.path, '--json'])
  assert.equal(res.code, 0, res.stderr)
  assert.equal((JSON.parse(res.out) as { format: string }).format, 'text')
  const store = await LevelStore.open(dir.path)
  const stored = await store.load('r')
  await store.close()
  assert.equal(stored.updates.length, 2, 'the import is one new update, the old one is untouched')
  // A client holding the old state merges the import like any edit.
  Y.applyUpdate(doc, stored.updates[1]!)
  assert.equal(doc.getText('text').toString(), 'one 2 three')
})

test('through the admin API: export → import round trips, and connected clients see the import live', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const server = await startServer({ dataDir: dir.path, adminToken: 'tok-123' })
  t.after(() => server.close())
  const auth = ['--server', server.httpUrl, '--token', 'tok-123']
  const writer = connect(server.url, 'live')
  t.after(() => writer.destroy())
  await synced(writer)
  writer.text.insert(0, 'typed live')
  writer.doc.getMap('meta').set('k', 'v')
  await wait(async () => (await server.store.load('live')).lastSeq >= 2, { message: 'edits stored' })

  for (const [format, file] of [['update', 'x.bin'], ['json', 'x.json'], ['text', 'x.txt']] as const) {
    const out = join(dir.path, file)
    const e = await cli(['export', 'live', '--format', format, '--out', out, ...auth])
    assert.equal(e.code, 0, e.stderr)
    const target = `copy-${format}`
    const watcher = connect(server.url, target)
    t.after(() => watcher.destroy())
    await synced(watcher)
    const i = await cli(['import', target, out, '--format', format, ...auth])
    assert.equal(i.code, 0, i.stderr)
    const expected = format === 'text' ? { text: 'typed live' } : { meta: { k: 'v' }, text: 'typed live' }
    await wait(() => JSON.stringify(docToJson(watcher.doc)) === JSON.stringify(expected), { timeout: 10_000, message: `${format} import seen by a connected client` })
  }
  const rooms = JSON.parse((await cli(['rooms', '--json', ...auth])).out) as Array<{ name: string }>
  assert.deepEqual(rooms.map((r) => r.name), ['copy-json', 'copy-text', 'copy-update', 'live'])
})

test('bad input: unknown room, corrupt files, missing files and bad usage change nothing', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const data = join(dir.path, 'data')
  const doc = new Y.Doc()
  doc.getText('text').insert(0, 'keep me')
  await seedRoom(data, 'r', doc)

  const unknown = await cli(['export', 'nope', '--data', data])
  assert.equal(unknown.code, 1)
  assert.match(unknown.stderr, /no room "nope"/)
  const missingDir = await cli(['rooms', '--data', join(dir.path, 'missing')])
  assert.equal(missingDir.code, 1)
  assert.match(missingDir.stderr, /no data directory/)

  const update = Y.encodeStateAsUpdate(richDoc())
  const cases: Array<[string, Uint8Array, string]> = [
    ['truncated.bin', update.subarray(0, Math.floor(update.length / 2)), 'update'],
    ['garbage.bin', new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x01, 0x02]), 'update'],
    ['bad.json', new TextEncoder().encode('{"text": "unterminated'), 'json'],
    ['wrongshape.json', new TextEncoder().encode('[1,2,3]'), 'json'],
    ['latin1.txt', new Uint8Array([0x66, 0xe9, 0xff]), 'text'],
  ]
  for (const [name, bytes, format] of cases) {
    const file = join(dir.path, name)
    await writeFile(file, bytes)
    const res = await cli(['import', 'r', file, '--format', format, '--data', data])
    assert.equal(res.code, 1, `${name}: ${res.stderr}`)
    assert.match(res.stderr, /not|must/, name)
  }
  const store = await LevelStore.open(data)
  const after = await store.load('r')
  await store.close()
  assert.equal(after.lastSeq, 1, 'no bad import was stored')

  const usage: string[][] = [
    ['export'],
    ['export', 'r', '--format', 'pdf', '--data', data],
    ['import', 'r', '--data', data],
    ['rooms', '--data', data, '--server', 'http://127.0.0.1:1'],
    ['rooms', '--server', 'http://127.0.0.1:1'],
    ['rooms', '--frobnicate'],
  ]
  for (const args of usage) assert.equal((await cli(args)).code, 2, args.join(' '))
  // A missing file is a failure like a bad one (exit 1), as for restore-backup.
  const gone = await cli(['import', 'r', join(dir.path, 'does-not-exist.bin'), '--data', data])
  assert.equal(gone.code, 1)
  assert.match(gone.stderr, /no file .*does-not-exist\.bin/)
})

test('a data directory held by a running server: a clear error saying to use --server', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const server = await startServer({ dataDir: dir.path })
  t.after(() => server.close())
  for (const args of [['rooms'], ['export', 'r'], ['import', 'r', '-', '--format', 'text'], ['history', 'r'], ['revert', 'r', '--to', '1'], ['backup', '--out', join(dir.path, 'b')]]) {
    const res = await cli([...args, '--data', dir.path], { stdin: new TextEncoder().encode('x') })
    assert.equal(res.code, 1, args.join(' '))
    assert.match(res.stderr, /in use by a running server: use --server URL --admin-token TOKEN/, args.join(' '))
  }
})

test('token guessing: 10 wrong tokens from one address lock it out (429, Retry-After), right token or not; other addresses are served', async (t) => {
  const log = captureLog()
  const server = await startServer({ adminToken: 'right-token', metricsToken: 'metrics-token', logger: createLogger('info', log.stream) })
  t.after(() => server.close())
  // A second loopback address, so the lockout of the first one can be seen not to spread.
  const from = (localAddress: string, path: string, token: string): Promise<{ status: number; retryAfter: string | undefined; body: string }> =>
    new Promise((resolve, reject) => {
      const req = request(`${server.httpUrl}${path}`, { localAddress, headers: { Authorization: `Bearer ${token}` } }, (res) => {
        let body = ''
        res.on('data', (c: Buffer) => { body += c.toString() })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body }))
      })
      req.on('error', reject)
      req.end()
    })
  // Wrong guesses spread over the three token-protected endpoints count together.
  for (let i = 0; i < 10; i++) {
    const path = ['/admin/rooms', '/metrics', '/status.json'][i % 3]!
    assert.equal((await from('127.0.0.1', path, `guess-${i}`)).status, 401, `guess ${i}`)
  }
  const locked = await from('127.0.0.1', '/admin/rooms', 'right-token')
  assert.equal(locked.status, 429)
  assert.ok(Number(locked.retryAfter) >= 1 && Number(locked.retryAfter) <= 60, `Retry-After ${locked.retryAfter}`)
  assert.match(locked.body, /TOO_MANY_ATTEMPTS/)
  assert.equal((await from('127.0.0.1', '/metrics', 'metrics-token')).status, 429)
  const cliLocked = await cli(['rooms', '--server', server.httpUrl, '--token', 'right-token'])
  assert.equal(cliLocked.code, 1)
  assert.match(cliLocked.stderr, /too many wrong admin tokens.*try again in \d+ s/)
  assert.equal((await from('127.0.0.2', '/admin/rooms', 'right-token')).status, 200)
  assert.equal((await from('127.0.0.2', '/metrics', 'metrics-token')).status, 200)
  // Told once, as the token.lockout event's log line.
  assert.deepEqual(log.events('token_lockout').map((l) => l.address), ['127.0.0.1'])
})

test('admin API: wrong or missing token is refused (401) and changes nothing; off without --admin-token', async (t) => {
  const server = await startServer({ adminToken: 'right-token' })
  t.after(() => server.close())
  const wrong = await cli(['import', 'r', '-', '--format', 'text', '--server', server.httpUrl, '--token', 'wrong-token'], { stdin: new TextEncoder().encode('x') })
  assert.equal(wrong.code, 1)
  assert.match(wrong.stderr, /refused the admin token/)
  assert.equal((await server.store.listRooms()).length, 0)
  for (const headers of [{}, { Authorization: 'Bearer right-token-but-longer' }, { Authorization: 'Basic right-token' }] as Array<Record<string, string>>) {
    const res = await fetch(`${server.httpUrl}/admin/rooms`, { headers })
    assert.equal(res.status, 401)
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED')
  }
  const ok = await fetch(`${server.httpUrl}/admin/rooms`, { headers: { Authorization: 'Bearer right-token' } })
  assert.equal(ok.status, 200)
  const unknown = await cli(['history', 'nope', '--server', server.httpUrl, '--token', 'right-token'])
  assert.equal(unknown.code, 1)
  assert.match(unknown.stderr, /no room "nope"/)

  const plain = await startServer({})
  t.after(() => plain.close())
  const off = await cli(['rooms', '--server', plain.httpUrl, '--token', 'anything'])
  assert.equal(off.code, 1)
  assert.match(off.stderr, /no admin API.*--admin-token/)
  const down = await cli(['rooms', '--server', 'http://127.0.0.1:9', '--token', 'x'])
  assert.equal(down.code, 1)
  assert.match(down.stderr, /cannot reach/)
})
