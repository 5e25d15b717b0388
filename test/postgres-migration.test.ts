/**
 * Issue 18: a PostgreSQL schema as migration 2 left it (before the history log), with
 * rooms, compacted states, updates and versions in it, opens with today's code: migration
 * 3 gives each room a log (base = its compacted state, entries = the updates after it,
 * stamped with the migration's time), nothing is lost, the store serves and appends with
 * times and users, and reopening does not migrate again.
 *
 * The old layout is written out here as migrations 1 and 2 created it: a fixture, like
 * test/fixtures/format1-data for LevelDB, that must not follow later changes.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import * as Y from 'yjs'
import { PostgresStore } from '../server/persistence/postgres.js'
import { Operations } from '../server/operator/operations.js'
import { stateAt } from '../server/operator/history-log.js'
import { docFromUpdates } from '../server/room/yjs-log.js'
import { startServer } from '../server/index.js'
import { POSTGRES_URL, REDIS_URL, clusterServicesMissing, deleteKeys, dropSchema, uniqueNames } from './helpers/services.js'
import { connect, synced, waitFor } from './helpers/index.js'

const missing = await clusterServicesMissing()
if (missing) console.log(`# skipping the PostgreSQL migration test: ${missing}`)

/** Migrations 1 and 2 as coedit shipped them before the history log. */
const MIGRATION_2_LAYOUT = (s: string): string => `
  CREATE SCHEMA ${s};
  CREATE TABLE ${s}.migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
  CREATE TABLE ${s}.rooms (name text PRIMARY KEY, last_seq bigint NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL DEFAULT now());
  CREATE TABLE ${s}.updates (room text NOT NULL, seq bigint NOT NULL, data bytea NOT NULL, PRIMARY KEY (room, seq));
  CREATE TABLE ${s}.states (room text PRIMARY KEY, up_to bigint NOT NULL, data bytea NOT NULL);
  CREATE TABLE ${s}.versions (room text NOT NULL, id bigint NOT NULL, at bigint NOT NULL, seq bigint NOT NULL, data bytea NOT NULL, PRIMARY KEY (room, id));
  CREATE TABLE ${s}.health (id int PRIMARY KEY, at bigint NOT NULL);
  INSERT INTO ${s}.migrations (version) VALUES (1), (2);`

const textOf = (updates: readonly Uint8Array[]): string => {
  const doc = docFromUpdates(updates)
  try {
    return doc.getText('text').toString()
  } finally {
    doc.destroy()
  }
}

/** Updates of a text written in steps. */
function steps(...parts: string[]): Uint8Array[] {
  const doc = new Y.Doc()
  const out: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => out.push(u))
  for (const part of parts) doc.getText('text').insert(doc.getText('text').length, part)
  doc.destroy()
  return out
}

test('a schema at migration 2 with data opens with today\'s code: migration 3 gives every room a log, loses nothing, serves and appends', { skip: missing }, async (t) => {
  const { schema, prefix } = uniqueNames('mig3')
  t.after(async () => {
    await dropSchema(schema)
    await deleteKeys(prefix)
  })
  const legacy = steps('written by migration 2. ', 'compacted. ', 'then logged. ', 'and more.')
  const plain = steps('never ', 'compacted.')
  const client = new pg.Client({ connectionString: POSTGRES_URL })
  await client.connect()
  try {
    await client.query(MIGRATION_2_LAYOUT(schema))
    await client.query(`INSERT INTO ${schema}.rooms (name, last_seq) VALUES ('legacy', 4), ('plain', 2), ('state-only', 3)`)
    // 'legacy': updates 1-2 folded into its state (and deleted, as compaction does), 3-4 after it.
    await client.query(`INSERT INTO ${schema}.states (room, up_to, data) VALUES ('legacy', 2, $1), ('state-only', 3, $2)`,
      [Buffer.from(Y.mergeUpdates(legacy.slice(0, 2))), Buffer.from(Y.mergeUpdates(plain))])
    for (const [i, u] of legacy.entries()) if (i >= 2) await client.query(`INSERT INTO ${schema}.updates (room, seq, data) VALUES ('legacy', $1, $2)`, [i + 1, Buffer.from(u)])
    for (const [i, u] of plain.entries()) await client.query(`INSERT INTO ${schema}.updates (room, seq, data) VALUES ('plain', $1, $2)`, [i + 1, Buffer.from(u)])
    await client.query(`INSERT INTO ${schema}.versions (room, id, at, seq, data) VALUES ('legacy', 1, $1, 2, $2)`, [Date.UTC(2026, 0, 1), Buffer.from(Y.mergeUpdates(legacy.slice(0, 2)))])
  } finally {
    await client.end()
  }

  const before = Date.now()
  let store = await PostgresStore.open({ connectionString: POSTGRES_URL, schema })
  t.after(() => store.close())
  const after = Date.now()
  assert.equal(textOf((await store.load('legacy')).updates), 'written by migration 2. compacted. then logged. and more.')
  assert.equal(textOf((await store.load('plain')).updates), 'never compacted.')
  assert.equal(textOf((await store.load('state-only')).updates), 'never compacted.')

  const log = await store.readLog('legacy')
  assert.equal(log.base?.upTo, 2, 'the base is the compacted state')
  assert.equal(textOf([log.base!.state]), 'written by migration 2. compacted. ')
  assert.ok(log.base!.at >= before - 1000 && log.base!.at <= after + 1000, 'stamped with the migration\'s time')
  assert.deepEqual(log.entries.map((e) => [e.seq, e.user]), [[3, undefined], [4, undefined]])
  assert.ok(log.entries.every((e) => e.at === log.base!.at))
  const plainLog = await store.readLog('plain')
  assert.equal(plainLog.base?.upTo, 0, 'a room never compacted starts from an empty base')
  assert.equal(textOf([plainLog.base!.state]), '')
  assert.deepEqual(plainLog.entries.map((e) => e.seq), [1, 2])
  assert.deepEqual((await store.readLog('state-only')).entries, [])

  // Exact from the migration on; before it, the version migration 2 recorded.
  const now = await stateAt(store, 'legacy', Date.now() + 1000)
  assert.equal(textOf([now!.state]), 'written by migration 2. compacted. then logged. and more.')
  const versions = await store.listVersions('legacy')
  assert.deepEqual(versions.map((v) => [v.id, v.at, v.seq, v.pinned]), [[1, Date.UTC(2026, 0, 1), 2, undefined]])
  const ops = new Operations(store)
  const old = await ops.stateAt('legacy', '2026-06-01T00:00:00Z')
  assert.equal(old.exact, false)
  assert.equal(textOf([old.state]), 'written by migration 2. compacted. ')

  // Appends carry times and users; versions can be pinned.
  const more = steps('!')
  const seq = await store.append('plain', more, { user: 'ana' })
  assert.equal(seq, 3)
  const appended = (await store.readLog('plain')).entries.at(-1)!
  assert.deepEqual([appended.seq, appended.user], [3, 'ana'])
  assert.ok(appended.at >= log.base!.at)
  const pinned = await store.putVersion('legacy', { at: Date.now(), seq: 4, state: Y.mergeUpdates(legacy), pinned: true })
  assert.equal(pinned.id, 2)
  assert.equal(pinned.pinned, true)

  // Reopening runs no migration again: the log is not written twice.
  await store.close()
  store = await PostgresStore.open({ connectionString: POSTGRES_URL, schema })
  assert.deepEqual((await store.readLog('legacy')).entries.map((e) => e.seq), [3, 4])
  const check = new pg.Client({ connectionString: POSTGRES_URL })
  await check.connect()
  try {
    const { rows } = await check.query<{ version: number }>(`SELECT version FROM ${schema}.migrations ORDER BY version`)
    assert.deepEqual(rows.map((r) => r.version), [1, 2, 3, 4], 'each migration recorded once (4: room generations and tombstones)')
  } finally {
    await check.end()
  }
  await store.close()

  // And a cluster process serves the migrated rooms, history panel API included.
  // Its clock a minute on, so that the edit below is a moment apart from the migrated updates.
  const server = await startServer({ postgres: POSTGRES_URL, postgresSchema: schema, redis: REDIS_URL, redisPrefix: prefix, clock: () => Date.now() + 60_000, historyInterval: 3_600_000 })
  t.after(() => server.close())
  const reader = connect(server.url, 'legacy')
  t.after(() => reader.destroy())
  await synced(reader)
  assert.equal(reader.text.toString(), 'written by migration 2. compacted. then logged. and more.')
  reader.text.insert(0, '> ')
  await waitFor(async () => (await server.store.load('legacy')).lastSeq === 5, { timeout: 20_000, message: 'the edit stored' })
  const listing = await (await fetch(`${server.httpUrl}/api/rooms/legacy/history`)).json() as { moments: Array<{ kind: string; firstSeq?: number; lastSeq?: number; id?: number }> }
  assert.deepEqual(listing.moments.map((m) => m.kind === 'edits' ? `edits ${m.firstSeq}-${m.lastSeq}` : `version ${m.id}`).sort(),
    ['edits 3-4', 'edits 5-5', 'version 1', 'version 2'].sort())
})
