/**
 * Issue 18, a downgrade then an upgrade: an older coedit (storage format 1) writes into a
 * format-2 data directory. It appends updates without the marks that say when they were
 * stored, and its compaction deletes updates the history log kept. Afterwards "the room at
 * T" must be exact or honestly not exact (a version, or no answer), never a wrong document
 * claimed exact: a revert to it would undo everything since.
 *
 * The older coedit is played by writing its keys as its LevelStore did (main before issue
 * 18, 18f3fc3: append = u: keys and m:, compact = s: then clear u: <= upTo).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Level } from 'level'
import * as Y from 'yjs'
import { LevelStore } from '../server/persistence/leveldb.js'
import { encodeState, metaKey, prefixEnd, stateKey, updateKey, updatePrefix } from '../server/persistence/keys.js'
import { encodeMark, markKey } from '../server/persistence/log-keys.js'
import { Operations } from '../server/operator/operations.js'
import { stateAt } from '../server/operator/history-log.js'
import { tempDir } from './helpers/index.js'
import { captureLog } from './helpers/log-capture.js'
import { cli } from './helpers/cli.js'
import { startServer } from '../server/index.js'
import { createLogger } from '../server/log.js'
import pg from 'pg'
import { PostgresStore } from '../server/persistence/postgres.js'
import { POSTGRES_URL, clusterServicesMissing, dropSchema, uniqueNames } from './helpers/services.js'

const ROOM = 'doc'
const T0 = Date.UTC(2026, 5, 1, 12)
const iso = (ms: number): string => new Date(ms).toISOString()

/** The room's updates with the instants they were really stored at, the older coedit's too. */
class Model {
  readonly doc = new Y.Doc()
  readonly stored: Array<{ at: number; update: Uint8Array }> = []
  private pending: Uint8Array[] = []

  constructor() {
    this.doc.clientID = 7
    this.doc.on('update', (u: Uint8Array) => this.pending.push(u))
  }

  /** Types `text` at the end; returns the update it made. */
  type(text: string, at: number): Uint8Array {
    const t = this.doc.getText('text')
    t.insert(t.length, text)
    const update = Y.mergeUpdates(this.pending.splice(0))
    this.stored.push({ at, update })
    return update
  }

  textAt(at: number): string {
    const doc = new Y.Doc()
    for (const s of this.stored) if (s.at <= at) Y.applyUpdate(doc, s.update)
    return doc.getText('text').toString()
  }
}

/** What main before issue 18 did to the directory, key by key. */
async function olderCoedit(dir: string, run: (old: { append(update: Uint8Array, at: number): Promise<number>; compact(state: Uint8Array): Promise<void> }) => Promise<void>): Promise<void> {
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  let last = 0
  for await (const key of db.keys({ gt: updatePrefix(ROOM), lt: prefixEnd(updatePrefix(ROOM)), reverse: true, limit: 1 })) last = parseInt(key.slice(key.lastIndexOf(':') + 1), 16)
  try {
    await run({
      async append(update, at) {
        last++
        await db.batch([
          { type: 'put', key: updateKey(ROOM, last), value: update },
          { type: 'put', key: metaKey(ROOM), value: new TextEncoder().encode(JSON.stringify({ updatedAt: at })) },
        ])
        return last
      },
      async compact(state) {
        await db.put(stateKey(ROOM), encodeState(last, state))
        await db.clear({ gt: updatePrefix(ROOM), lte: updateKey(ROOM, last) })
      },
    })
  } finally {
    await db.close()
  }
}

/**
 * For every instant from before the room to after the last write, each second: an exact
 * answer must be the model's document at that instant; otherwise it must say it is not
 * exact (a version) or that there is none. Returns how many were exact.
 */
async function neverWrong(store: LevelStore, model: Model, until: number): Promise<{ exact: number; inexact: number[] }> {
  const ops = new Operations(store)
  let exact = 0
  const inexact: number[] = []
  for (let at = T0 - 1000; at <= until; at += 500) {
    let found: Awaited<ReturnType<Operations['stateAt']>>
    try {
      found = await ops.stateAt(ROOM, iso(at), until)
    } catch (err) {
      assert.equal((err as { code?: string }).code, 'VERSION_NOT_FOUND', `${iso(at)}: ${(err as Error).message}`)
      inexact.push(at)
      continue
    }
    const doc = new Y.Doc()
    Y.applyUpdate(doc, found.state)
    if (found.exact) {
      exact++
      assert.equal(doc.getText('text').toString(), model.textAt(at), `${iso(at)} was answered "exact" with another document`)
    } else {
      assert.notEqual(found.version.id, 0, 'an inexact answer names the version it is')
      inexact.push(at)
    }
  }
  return { exact, inexact }
}

/** Three updates 2 s apart by this coedit (and a version after the first); returns the model. */
async function written(dir: string): Promise<Model> {
  const model = new Model()
  let now = T0
  const store = await LevelStore.open(dir, { now: () => now })
  for (const [i, text] of ['one', ' two', ' three'].entries()) {
    now = T0 + i * 2000
    await store.append(ROOM, [model.type(text, now)])
    if (i === 0) await store.putVersion(ROOM, { at: now + 500, seq: 1, state: Y.encodeStateAsUpdate(model.doc) })
  }
  await store.close()
  return model
}

for (const compacts of [false, true]) {
  test(`an older coedit ${compacts ? 'appends and compacts' : 'appends'}: the log restarts at the next open (and says so); every instant is exact or honestly not`, async (t) => {
    const dir = await tempDir()
    t.after(() => dir.remove())
    const model = await written(dir.path)
    await olderCoedit(dir.path, async (old) => {
      await old.append(model.type(' four', T0 + 6000), T0 + 6000)
      await old.append(model.type(' five', T0 + 8000), T0 + 8000)
      if (compacts) await old.compact(Y.encodeStateAsUpdate(model.doc))
    })
    const opened = T0 + 10_000
    let now = opened
    const store = await LevelStore.open(dir.path, { now: () => now })
    t.after(() => store.close())
    assert.deepEqual(store.repairedLogs, [{ room: ROOM, from: compacts ? 1 : 4, at: opened }])
    now = T0 + 12_000
    await store.append(ROOM, [model.type(' six', now)])
    // The room itself is whole.
    const loaded = new Y.Doc()
    for (const u of (await store.load(ROOM)).updates) Y.applyUpdate(loaded, u)
    assert.equal(loaded.getText('text').toString(), 'one two three four five six')

    const { exact, inexact } = await neverWrong(store, model, T0 + 13_000)
    // Exact from the open on (the six instants from 10 s to 12.5 s, and 13 s), earlier from the version.
    assert.equal(exact, 7)
    assert.ok(inexact.every((at) => at < opened), `not exact after the open: ${inexact.filter((at) => at >= opened).map(iso).join(', ')}`)
    // The window's start is the open: the listing says so.
    assert.equal((await new Operations(store).activity(ROOM, 60_000)).exactSince, opened)
    // A second open finds nothing to repair.
    await store.close()
    const again = await LevelStore.open(dir.path, { now: () => now })
    assert.deepEqual(again.repairedLogs, [])
    assert.equal((await neverWrong(again, model, T0 + 13_000)).exact, 7)
    await again.close()
  })
}

test('an unmarked stretch the open does not catch (marked updates after it): the log stops there and the instants after it are not claimed exact', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const model = await written(dir.path)
  await olderCoedit(dir.path, async (old) => {
    await old.append(model.type(' four', T0 + 6000), T0 + 6000)
  })
  // What a format-2 coedit from before the open's check then wrote: a marked update after the stretch.
  const db = new Level<string, Uint8Array>(dir.path, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.batch([
    { type: 'put', key: updateKey(ROOM, 5), value: model.type(' five', T0 + 8000) },
    { type: 'put', key: markKey(ROOM, 5), value: encodeMark(T0 + 8000, [{ count: 1, user: undefined }]) },
  ])
  await db.close()
  const store = await LevelStore.open(dir.path, { now: () => T0 + 10_000 })
  t.after(() => store.close())
  assert.deepEqual(store.repairedLogs, [])
  const log = await store.readLog(ROOM)
  assert.equal(log.unmarked, 4)
  assert.deepEqual(log.entries.map((e) => e.seq), [1, 2, 3])
  // Before the stretch's neighbour was stored: exact (the log stops at an instant past T first).
  assert.equal((await stateAt(store, ROOM, T0 + 3000))?.seq, 2)
  // From the last marked update before the stretch on, nobody knows: no exact answer.
  assert.equal(await stateAt(store, ROOM, T0 + 4000), undefined)
  assert.equal(await stateAt(store, ROOM, T0 + 9000), undefined)
  const { exact, inexact } = await neverWrong(store, model, T0 + 10_000)
  assert.equal(exact, 8) // T0 - 1 s and T0 - 0.5 s (empty room) ... T0 + 3.5 s
  assert.ok(inexact.includes(T0 + 9000))
  // A backup leaves the cut log out (its restore starts a new one) instead of carrying half of it.
  const snapshot = await store.snapshot()
  try {
    assert.equal((await snapshot.read(ROOM)).log, undefined)
  } finally {
    await snapshot.close()
  }
})

test('a server opening such a directory logs which rooms\' history restarts, and export --at through it is exact only from then on', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const model = await written(dir.path)
  await olderCoedit(dir.path, async (old) => {
    await old.append(model.type(' four', T0 + 6000), T0 + 6000)
    await old.compact(Y.encodeStateAsUpdate(model.doc))
  })
  const out = captureLog()
  const opened = T0 + 10_000
  const server = await startServer({ dataDir: dir.path, adminToken: 'tok', clock: () => opened, logger: createLogger('info', out.stream) })
  t.after(() => server.close())
  const [line] = out.events('history_log_restarted')
  assert.equal(line?.level, 40)
  assert.deepEqual(line?.rooms, [ROOM])
  assert.equal(line?.at, opened)
  const auth = ['--server', server.httpUrl, '--admin-token', 'tok']
  // Before the downgrade's writes: from the version (not exact), never "one two three" claimed exact.
  const before = await cli(['revert', ROOM, '--to', iso(T0 + 5000), '--json', ...auth])
  assert.equal(before.code, 0, before.stderr)
  assert.equal((JSON.parse(before.out) as { exact: boolean }).exact, false)
  assert.equal((await cli(['export', ROOM, ...auth])).out, 'one')
  // From the open on: exact (the revert above is a change stored at the open's instant too).
  const now = await cli(['export', ROOM, '--at', iso(opened), ...auth])
  assert.equal(now.out, 'one')
})

test('PostgreSQL: updates an older coedit stored (counted, not logged) stop the log there; instants after are not claimed exact, a backup leaves the cut log out', async (t) => {
  const missing = await clusterServicesMissing()
  if (missing) {
    t.skip(missing)
    return
  }
  const { schema } = uniqueNames('downgrade')
  t.after(() => dropSchema(schema))
  let now = T0
  const store = await PostgresStore.open({ connectionString: POSTGRES_URL, schema, now: () => now })
  t.after(() => store.close())
  const model = new Model()
  for (const [i, text] of ['one', ' two', ' three'].entries()) {
    now = T0 + i * 2000
    await store.append(ROOM, [model.type(text, now)])
  }
  // What coedit before the history log did: an update row and the room's counter, no log row.
  const pool = new pg.Pool({ connectionString: POSTGRES_URL })
  t.after(() => pool.end())
  await pool.query(`INSERT INTO ${schema}.updates (room, seq, data) VALUES ($1, 4, $2)`, [ROOM, Buffer.from(model.type(' four', T0 + 6000))])
  await pool.query(`UPDATE ${schema}.rooms SET last_seq = 4 WHERE name = $1`, [ROOM])
  now = T0 + 10_000
  await store.append(ROOM, [model.type(' five', now)])
  const log = await store.readLog(ROOM)
  assert.equal(log.unmarked, 4)
  assert.deepEqual(log.entries.map((e) => e.seq), [1, 2, 3])
  // Before the last logged update before the gap: exact; from it on: no exact answer.
  assert.equal((await stateAt(store, ROOM, T0 + 3000))?.seq, 2)
  assert.equal(await stateAt(store, ROOM, T0 + 4000), undefined)
  assert.equal(await stateAt(store, ROOM, T0 + 11_000), undefined)
  // A healthy room of the same store reads whole, paged or to an instant.
  await store.append('fine', [new Uint8Array([0, 0])])
  assert.equal((await store.readLog('fine')).unmarked, undefined)
  assert.equal((await store.readLog('fine', { untilAt: T0 })).unmarked, undefined)
  assert.equal((await store.readLog(ROOM, { limit: 2 })).unmarked, undefined)
  const snapshot = await store.snapshot()
  try {
    assert.equal((await snapshot.read(ROOM)).log, undefined)
    assert.ok((await snapshot.read('fine')).log)
  } finally {
    await snapshot.close()
  }
})
