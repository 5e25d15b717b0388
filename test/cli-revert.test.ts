/**
 * coedit revert: live through the admin API with connected clients, without resurrection
 * by a client that was offline with the pre-revert state; offline on a data directory;
 * by version id and by time; and its bad-input paths.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { startServer, type CoeditServer } from '../server/index.js'
import { LevelStore } from '../server/persistence/leveldb.js'
import { docFromUpdates, mergeUpdates } from '../server/room/yjs-log.js'
import { connect, synced, tempDir, waitFor, type Client } from './helpers/index.js'
import { cli } from './helpers/cli.js'
/** waitFor with a generous default timeout: the CPU is shared with other test runs. */
const wait = <T>(check: () => T | Promise<T>, options: Parameters<typeof waitFor>[1] = {}): Promise<T> => waitFor(check, { timeout: 15_000, ...options })

interface Version { id: number; at: number; seq: number }

/** Waits until the server recorded a version holding everything the room has stored. */
async function versionOfNow(server: CoeditServer, room: string, auth: string[]): Promise<Version> {
  const seq = (await server.store.load(room)).lastSeq
  return wait(async () => {
    const res = await cli(['history', room, '--json', ...auth])
    const versions = JSON.parse(res.out) as Version[]
    const last = versions[versions.length - 1]
    return last && last.seq >= seq ? last : undefined
  }, { timeout: 15_000, message: `a version of ${room} through seq ${seq}` }) as Promise<Version>
}

const textOf = (c: Client): string => c.text.toString()

test('revert live: connected clients show the old content; an offline client reconnecting brings back nothing reverted, keeps its own edits', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const server = await startServer({ dataDir: dir.path, adminToken: 'admin-tok', historyInterval: 50 })
  t.after(() => server.close())
  const auth = ['--server', server.httpUrl, '--token', 'admin-tok']
  const a = connect(server.url, 'doc')
  const b = connect(server.url, 'doc')
  const c = connect(server.url, 'doc')
  for (const x of [a, b, c]) t.after(() => x.destroy())
  await Promise.all([synced(a), synced(b), synced(c)])

  a.text.insert(0, 'The quick brown fox')
  a.doc.getMap('meta').set('title', 'Fox')
  await wait(() => textOf(b) === 'The quick brown fox' && textOf(c) === 'The quick brown fox')
  const good = await versionOfNow(server, 'doc', auth)

  // The damage, seen by everyone including c.
  a.text.delete(4, 6) // "quick "
  a.text.insert(4, 'slow ')
  b.text.insert(b.text.length, ' jumps')
  b.doc.getMap('meta').set('title', 'DAMAGED')
  const damaged = 'The slow brown fox jumps'
  await wait(() => [a, b, c].every((x) => textOf(x) === damaged && x.doc.getMap('meta').get('title') === 'DAMAGED'), { message: 'damage everywhere' })
  await wait(async () => (await server.store.load('doc')).lastSeq >= good.seq + 4, { message: 'damage stored' })

  // c goes offline holding the damaged (pre-revert) state and keeps editing.
  c.provider.disconnect()
  await wait(() => !c.provider.wsconnected)
  c.text.insert(0, '[offline] ')
  c.text.insert(c.text.length, ' [c end]')

  // Look before reverting: the version's content, while the room still holds the damage.
  const peek = await cli(['export', 'doc', '--at', String(good.id), ...auth])
  assert.equal(peek.code, 0, peek.stderr)
  assert.equal(peek.out, 'The quick brown fox')
  assert.equal((await cli(['export', 'doc', ...auth])).out, damaged)

  const res = await cli(['revert', 'doc', '--to', String(good.id), '--json', ...auth])
  assert.equal(res.code, 0, res.stderr)
  assert.equal((JSON.parse(res.out) as { version: Version }).version.id, good.id)
  await wait(() => textOf(a) === 'The quick brown fox' && textOf(b) === 'The quick brown fox', { message: 'connected clients show the old content' })
  assert.equal(a.doc.getMap('meta').get('title'), 'Fox')

  c.provider.connect()
  await synced(c)
  const expected = '[offline] The quick brown fox [c end]'
  await wait(() => [a, b, c].every((x) => textOf(x) === expected), { timeout: 10_000, message: `all converge to ${expected}` })
  for (const x of [a, b, c]) {
    assert.doesNotMatch(textOf(x), /slow|jumps/, 'reverted-away content stays away')
    assert.equal(x.doc.getMap('meta').get('title'), 'Fox')
  }
  // And the server stored the same: a fresh client loads it.
  const fresh = connect(server.url, 'doc')
  t.after(() => fresh.destroy())
  await synced(fresh)
  await wait(() => textOf(fresh) === expected)

  // The pre-revert state is a version too: the revert itself can be reverted.
  const versions = JSON.parse((await cli(['history', 'doc', '--json', ...auth])).out) as Version[]
  assert.ok(versions.some((v) => v.id > good.id), 'pre-revert state recorded')
})

test('revert offline by time (ISO and relative), and a no-op revert', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const store = await LevelStore.open(dir.path)
  const doc = new Y.Doc()
  // Versions three and two hours ago, on whole minutes so ISO times print exactly.
  const t0 = Math.floor(Date.now() / 60_000) * 60_000 - 3 * 3_600_000
  doc.getText('text').insert(0, 'nine o\'clock')
  await store.append('r', [Y.encodeStateAsUpdate(doc)])
  await store.putVersion('r', { at: t0, seq: 1, state: Y.encodeStateAsUpdate(doc) })
  const before = Y.encodeStateVector(doc)
  doc.getText('text').delete(0, doc.getText('text').length)
  doc.getText('text').insert(0, 'ten o\'clock')
  await store.append('r', [Y.encodeStateAsUpdate(doc, before)])
  await store.putVersion('r', { at: t0 + 3_600_000, seq: 2, state: Y.encodeStateAsUpdate(doc) })
  doc.getText('text').insert(0, 'later: ')
  await store.append('r', [Y.encodeStateAsUpdate(doc, Y.encodeStateVector(docFromUpdates([mergeUpdates((await store.load('r')).updates)])))])
  await store.close()
  const text = async (): Promise<string> => (await cli(['export', 'r', '--data', dir.path])).out

  assert.equal(await text(), 'later: ten o\'clock')
  assert.equal((await cli(['export', 'r', '--at', '150m', '--data', dir.path])).out, 'nine o\'clock')
  assert.equal((await cli(['export', 'r', '--at', '2', '--data', dir.path])).out, 'ten o\'clock')
  const iso = await cli(['revert', 'r', '--to', new Date(t0 + 1_800_000).toISOString(), '--data', dir.path])
  assert.equal(iso.code, 0, iso.stderr)
  assert.match(iso.stderr, /reverted to version 1/)
  assert.equal(await text(), 'nine o\'clock')
  const noop = await cli(['revert', 'r', '--to', '1', '--data', dir.path])
  assert.equal(noop.code, 0, noop.stderr)
  assert.match(noop.stderr, /nothing changed/)

  // Relative: 90m ago picks the newest version at or before then: the one of two hours ago.
  const rel = await cli(['revert', 'r', '--to', '90m', '--data', dir.path, '--json'])
  assert.equal(rel.code, 0, rel.stderr)
  assert.equal((JSON.parse(rel.out) as { version: Version }).version.id, 2)
  assert.equal(await text(), 'ten o\'clock')
  const older = await cli(['revert', 'r', '--to', '150m', '--data', dir.path, '--json'])
  assert.equal((JSON.parse(older.out) as { version: Version }).version.id, 1)
  assert.equal(await text(), 'nine o\'clock')
  const h = await cli(['history', 'r', '--data', dir.path])
  assert.equal(h.code, 0)
  assert.ok(h.out.startsWith('VERSION'), h.out)
  assert.match(h.out, new RegExp(`\\n1\\s+${new Date(t0).toISOString().replace('.000Z', 'Z')}`))
})

test('revert: bad input', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const store = await LevelStore.open(dir.path)
  const doc = new Y.Doc()
  doc.getText('text').insert(0, 'x')
  await store.append('r', [Y.encodeStateAsUpdate(doc)])
  await store.putVersion('r', { at: Date.parse('2026-11-22T10:00:00Z'), seq: 1, state: Y.encodeStateAsUpdate(doc) })
  await store.close()
  const d = ['--data', dir.path]
  const cases: Array<[string[], number, RegExp]> = [
    [['revert', 'r', ...d], 2, /needs --to/],
    [['revert', 'r', '--to', 'yesterday-ish', ...d], 2, /not a time/],
    [['revert', 'r', '--to', '2026-13-45T99:00:00Z', ...d], 2, /not a time/],
    [['revert', 'r', '--to', '99', ...d], 1, /no version 99/],
    [['revert', 'r', '--to', '2020-01-01T00:00:00Z', ...d], 1, /no version was recorded at or before 2020-01-01/],
    [['revert', 'nope', '--to', '1', ...d], 1, /no room "nope"/],
    [['history', 'nope', ...d], 1, /no room "nope"/],
    [['history', ...d], 2, /expected 1 argument/],
    [['export', 'r', '--at', 'noonish', ...d], 2, /not a time/],
    [['export', 'r', '--at', '42', ...d], 1, /no version 42/],
  ]
  for (const [args, code, message] of cases) {
    const res = await cli(args)
    assert.equal(res.code, code, `${args.join(' ')}: ${res.stderr}`)
    assert.match(res.stderr, message, args.join(' '))
  }
})
