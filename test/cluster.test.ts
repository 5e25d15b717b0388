/**
 * Cluster mode: several coedit processes sharing rooms through PostgreSQL (store)
 * and Redis (bus), behind a load balancer without sticky sessions.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import { Redis } from 'ioredis'
import { PostgresStore } from '../server/persistence/postgres.js'
import { startServer, type CoeditServer } from '../server/index.js'
import { connect, prng, testSeed, waitFor, type Client } from './helpers/index.js'
import { runCli, startChildServer, type ChildServer } from './helpers/child-server.js'
import { storeConformance } from './helpers/store-conformance.js'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  Balancer, POSTGRES_URL, REDIS_URL, clusterServicesMissing, deleteKeys, dropSchema, freePort, startRedis, uniqueNames,
} from './helpers/services.js'

// Thirty providers each add a process 'exit' listener.
process.setMaxListeners(100)

const missing = await clusterServicesMissing()
if (missing) console.log(`# skipping cluster tests: ${missing}`)
const ctest = (name: string, fn: (t: TestContext) => Promise<void>): void => {
  test(name, { skip: missing }, fn)
}

if (!missing) {
  storeConformance('PostgresStore', async () => {
    const { schema } = uniqueNames('conf')
    let current = await PostgresStore.open({ connectionString: POSTGRES_URL, schema })
    return {
      store: current,
      reopen: async () => {
        await current.close()
        current = await PostgresStore.open({ connectionString: POSTGRES_URL, schema })
        return current
      },
      cleanup: async () => {
        await current.close()
        await dropSchema(schema)
      },
    }
  })
}

function clusterArgs(schema: string, prefix: string, redisUrl = REDIS_URL): string[] {
  return ['--postgres', POSTGRES_URL, '--postgres-schema', schema, '--redis', redisUrl, '--redis-prefix', prefix,
    '--heal-interval', '300ms', '--liveness-ttl', '1500ms', '--log-level', 'info']
}

/** The document PostgreSQL holds for `room`. */
async function storedDoc(schema: string, room: string): Promise<Y.Doc> {
  const store = await PostgresStore.open({ connectionString: POSTGRES_URL, schema })
  try {
    const doc = new Y.Doc()
    const { updates } = await store.load(room)
    if (updates.length > 0) Y.applyUpdate(doc, Y.mergeUpdates(updates))
    return doc
  } finally {
    await store.close()
  }
}

/** True if everything `update` inserts or deletes is in `doc`. */
function contains(doc: Y.Doc, update: Uint8Array): boolean {
  const { structs, ds } = Y.decodeUpdate(update)
  for (const s of structs) {
    if (s.constructor.name === 'Skip') continue
    if (Y.getState(doc.store, s.id.client) < s.id.clock + s.length) return false
  }
  const deleted = Y.createDeleteSetFromStructStore(doc.store)
  for (const [client, items] of ds.clients) {
    for (const item of items) {
      if (!Y.isDeleted(deleted, Y.createID(client, item.clock)) || !Y.isDeleted(deleted, Y.createID(client, item.clock + item.len - 1))) return false
    }
  }
  return true
}

/** Every update a client received from a server, in order. */
function recordReceived(client: Client): Uint8Array[] {
  const received: Uint8Array[] = []
  client.doc.on('update', (update: Uint8Array, origin: unknown) => {
    if (origin === client.provider) received.push(update)
  })
  return received
}

/** A provider's state vector and what it waits for, for a failure report. */
function describeClient(c: Client): string {
  // Yjs keeps structs it cannot integrate yet in store.pendingStructs (typed, undocumented; the server reads it too).
  const pending = c.doc.store.pendingStructs
  const sv = [...Y.decodeStateVector(Y.encodeStateVector(c.doc))].map(([client, clock]) => `${client}:${clock}`).join(' ')
  return `client ${c.doc.clientID}: length ${c.text.length}, state ${sv}, waiting for ${pending ? [...pending.missing].map(([client, clock]) => `${client}:${clock}`).join(' ') : 'nothing'}`
}

function randomEdit(client: Client, rand: () => number): void {
  const text = client.text
  if (text.length > 0 && rand() < 0.3) {
    const at = Math.floor(rand() * text.length)
    text.delete(at, Math.min(text.length - at, 1 + Math.floor(rand() * 3)))
  } else {
    text.insert(Math.floor(rand() * (text.length + 1)), String.fromCharCode(97 + Math.floor(rand() * 26)))
  }
}

ctest('3 processes, 30 providers in 3 rooms, one process SIGKILLed mid-run: all converge, nothing received is lost', async (t) => {
  const seed = testSeed()
  const rand = prng(seed)
  t.diagnostic(`seed ${seed} (replay with SEED=${seed})`)
  const { schema, prefix } = uniqueNames('kill')
  const servers: ChildServer[] = []
  const clients: Client[] = []
  const balancer = new Balancer([])
  t.after(async () => {
    for (const c of clients) c.destroy()
    await balancer.close()
    await Promise.all(servers.map((s) => s.kill('SIGKILL')))
    await dropSchema(schema)
    await deleteKeys(prefix)
  })
  for (let i = 0; i < 3; i++) servers.push(await startChildServer(clusterArgs(schema, prefix)))
  balancer.backends = servers.map((s) => s.port)
  const lb = `ws://127.0.0.1:${await balancer.listen()}`
  const rooms = ['alpha', 'beta', 'gamma']
  const received = new Map<Client, Uint8Array[]>()
  for (let i = 0; i < 30; i++) {
    const c = connect(lb, rooms[i % 3]!)
    received.set(c, recordReceived(c))
    clients.push(c)
  }
  await waitFor(() => clients.every((c) => c.provider.synced), { timeout: 20_000, message: 'all providers synced' })

  let roundsDone = 0
  const edit = async (rounds: number): Promise<void> => {
    for (let r = 0; r < rounds; r++) {
      for (const c of clients) if (rand() < 0.5) randomEdit(c, rand)
      roundsDone++
      // Paces the load only: 30 providers' edits spread over time rather than in one burst.
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }
  await edit(30)
  // Kill a process while edits are in flight; its clients come back through the balancer.
  const victim = servers[1]!
  balancer.backends = [servers[0]!.port, servers[2]!.port]
  const editing = edit(30)
  await waitFor(() => roundsDone >= 40, { message: 'a third of the next rounds of edits sent' })
  await victim.kill('SIGKILL')
  // What every client had received before the kill must be in PostgreSQL.
  const seenBeforeKill = new Map([...received].map(([c, list]) => [c, list.slice()]))
  await editing
  await edit(20)

  for (const room of rooms) {
    const members = clients.filter((_, i) => rooms[i % 3] === room)
    try {
      await waitFor(() => members.every((c) => c.provider.synced && c.text.toString() === members[0]!.text.toString()), {
        timeout: 30_000, message: `room ${room} converged (seed ${seed})`,
      })
    } catch (err) {
      for (const c of members) t.diagnostic(describeClient(c))
      throw err
    }
  }
  for (const room of rooms) {
    const members = clients.filter((_, i) => rooms[i % 3] === room)
    const stored = await waitFor(async () => {
      const doc = await storedDoc(schema, room)
      return doc.getText('text').toString() === members[0]!.text.toString() ? doc : undefined
    }, { timeout: 10_000, message: `PostgreSQL holds room ${room}` }) as Y.Doc
    for (const c of members) {
      for (const update of seenBeforeKill.get(c)!) assert.ok(contains(stored, update), `an update a client received is missing from PostgreSQL (seed ${seed})`)
    }
  }
})

ctest('Redis stopped for 5 s during edits: processes heal from PostgreSQL, everything converges, nothing lost', async (t) => {
  const { schema, prefix } = uniqueNames('redis')
  const port = await freePort()
  let redis = await startRedis(port)
  const redisUrl = `redis://127.0.0.1:${port}`
  const servers: ChildServer[] = []
  const clients: Client[] = []
  t.after(async () => {
    for (const c of clients) c.destroy()
    await Promise.all(servers.map((s) => s.kill('SIGKILL')))
    redis.kill('SIGKILL')
    await dropSchema(schema)
  })
  for (let i = 0; i < 2; i++) servers.push(await startChildServer(clusterArgs(schema, prefix, redisUrl)))
  const a = connect(servers[0]!.url, 'doc')
  const b = connect(servers[1]!.url, 'doc')
  clients.push(a, b)
  await waitFor(() => a.provider.synced && b.provider.synced, { timeout: 10_000 })
  a.text.insert(0, 'A0 ')
  await waitFor(() => b.text.toString().includes('A0'), { timeout: 20_000, message: 'bus works before the outage' })

  redis.kill('SIGTERM')
  await new Promise((resolve) => redis.once('exit', resolve))
  const outageStart = Date.now()
  let n = 0
  while (Date.now() - outageStart < 5000) {
    a.text.insert(a.text.length, `a${n} `)
    b.text.insert(0, `b${n} `)
    n++
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  // Healing from the store works while Redis is still down.
  await waitFor(() => a.text.toString() === b.text.toString(), { timeout: 10_000, message: 'converged during the outage' })
  redis = await startRedis(port)
  a.text.insert(0, 'after ')
  await waitFor(() => a.text.toString() === b.text.toString() && b.text.toString().startsWith('after'), { timeout: 15_000, message: 'converged after Redis came back' })
  for (let i = 0; i < n; i++) {
    assert.ok(a.text.toString().includes(`a${i} `) && a.text.toString().includes(`b${i} `), `edit ${i} lost`)
  }
  const stored = await storedDoc(schema, 'doc')
  assert.equal(stored.getText('text').toString(), a.text.toString())
})

ctest('a process started late serves the rooms correctly at once; presence crosses processes and leaves with a killed process', async (t) => {
  const { schema, prefix } = uniqueNames('late')
  const servers: ChildServer[] = []
  const clients: Client[] = []
  t.after(async () => {
    for (const c of clients) c.destroy()
    await Promise.all(servers.map((s) => s.kill('SIGKILL')))
    await dropSchema(schema)
    await deleteKeys(prefix)
  })
  servers.push(await startChildServer(clusterArgs(schema, prefix)))
  servers.push(await startChildServer(clusterArgs(schema, prefix)))
  const a = connect(servers[0]!.url, 'room')
  const b = connect(servers[1]!.url, 'room')
  clients.push(a, b)
  await waitFor(() => a.provider.synced && b.provider.synced, { timeout: 10_000 })
  for (let i = 0; i < 50; i++) (i % 2 ? a : b).text.insert(0, `${i},`)
  await waitFor(() => a.text.toString() === b.text.toString() && a.text.length > 0, { timeout: 10_000 })

  // Presence: B's user appears on A's client.
  b.provider.awareness.setLocalStateField('user', { name: 'Bea' })
  const seesBea = (): boolean => [...a.provider.awareness.getStates().values()].some((s) => (s as { user?: { name?: string } }).user?.name === 'Bea')
  await waitFor(seesBea, { timeout: 20_000, message: "A's client sees B's user" })

  const late = await startChildServer(clusterArgs(schema, prefix))
  servers.push(late)
  const c = connect(late.url, 'room')
  clients.push(c)
  await waitFor(() => c.provider.synced, { timeout: 10_000 })
  assert.equal(c.text.toString(), a.text.toString(), 'the late process served the full document at first sync')

  // B's process dies: B's user disappears from A's client (liveness TTL 1.5 s here).
  const killedAt = Date.now()
  await servers[1]!.kill('SIGKILL')
  await waitFor(() => !seesBea(), { timeout: 10_000, message: "B's presence removed after its process died" })
  t.diagnostic(`presence of the killed process's client removed after ${Date.now() - killedAt} ms`)
})

ctest('PostgresStore: versions, a consistent snapshot while writes go on, whole-room writes, health probe', async (t) => {
  const { schema } = uniqueNames('ver')
  const store = await PostgresStore.open({ connectionString: POSTGRES_URL, schema })
  t.after(async () => {
    await store.close()
    await dropSchema(schema)
  })
  const doc = new Y.Doc()
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  doc.getText('text').insert(0, 'one ')
  await store.append('r', [updates[0]!])
  const v1 = await store.putVersion('r', { at: 1000, seq: 1, state: Y.encodeStateAsUpdate(doc) })
  const v2 = await store.putVersion('r', { at: 2000, seq: 1, state: Y.encodeStateAsUpdate(doc) })
  assert.deepEqual([v1.id, v2.id], [1, 2])
  assert.deepEqual((await store.listVersions('r')).map((v) => [v.id, v.at]), [[1, 1000], [2, 2000]])
  assert.equal((await store.getVersion('r', 2))?.at, 2000)
  await store.deleteVersions('r', [1])
  assert.deepEqual((await store.listVersions('r')).map((v) => v.id), [2])

  const snapshot = await store.snapshot()
  doc.getText('text').insert(4, 'two ')
  await store.append('r', [updates[1]!])
  await store.append('other', [updates[0]!])
  assert.deepEqual(snapshot.rooms, ['r'], 'a room written after the snapshot is not in it')
  const record = await snapshot.read('r')
  await snapshot.close()
  assert.equal(record.lastSeq, 1)
  const seen = new Y.Doc()
  for (const u of record.updates) Y.applyUpdate(seen, u)
  assert.equal(seen.getText('text').toString(), 'one ', 'the snapshot does not see the later write')
  assert.equal(record.versions.length, 1)

  await store.putRoom({ ...record, name: 'copy' })
  const copy = await store.load('copy')
  assert.equal(copy.lastSeq, 1)
  const copied = new Y.Doc()
  for (const u of copy.updates) Y.applyUpdate(copied, u)
  assert.equal(copied.getText('text').toString(), 'one ')
  assert.equal(await store.append('copy', [updates[1]!]), 2, 'appends continue after the restored sequence')
  await store.ping()
})

ctest('cluster: an import and a live backup through the admin API of one process reach the clients of another', async (t) => {
  const { schema, prefix } = uniqueNames('admin')
  const dir = await mkdtemp(join(tmpdir(), 'coedit-cluster-admin-'))
  const servers: ChildServer[] = []
  const clients: Client[] = []
  t.after(async () => {
    for (const c of clients) c.destroy()
    await Promise.all(servers.map((s) => s.kill('SIGKILL')))
    await dropSchema(schema)
    await deleteKeys(prefix)
    await rm(dir, { recursive: true, force: true })
  })
  const token = 'cluster-admin-token-0123456789'
  for (let i = 0; i < 2; i++) servers.push(await startChildServer([...clusterArgs(schema, prefix), '--admin-token', token]))
  const onB = connect(servers[1]!.url, 'notes')
  clients.push(onB)
  await waitFor(() => onB.provider.synced, { timeout: 10_000 })
  onB.text.insert(0, 'typed on B. ')
  const file = join(dir, 'import.txt')
  await writeFile(file, 'imported through A')
  const imported = await runCli(['import', 'notes', file, '--format', 'text', '--server', `http://127.0.0.1:${servers[0]!.port}`, '--token', token])
  assert.equal(imported.code, 0, imported.stderr)
  await waitFor(() => onB.text.toString().includes('imported through A'), { timeout: 10_000, message: "the import reached B's client" })

  const backupFile = join(dir, 'cluster.backup')
  const backup = await runCli(['backup', '--out', backupFile, '--server', `http://127.0.0.1:${servers[0]!.port}`, '--token', token])
  assert.equal(backup.code, 0, backup.stderr)
  const restored = join(dir, 'restored')
  const restore = await runCli(['restore-backup', backupFile, '--data', restored])
  assert.equal(restore.code, 0, restore.stderr)
  const exported = await runCli(['export', 'notes', '--format', 'text', '--data', restored])
  assert.equal(exported.code, 0, exported.stderr)
  assert.equal(exported.stdout.trim(), onB.text.toString().trim(), 'the backup taken through A holds what B\'s client has')
})

ctest('cluster: a delete on one process closes the room on the others, which drop their copy and store nothing of it', async (t) => {
  const { schema, prefix } = uniqueNames('delete')
  const servers: CoeditServer[] = []
  const clients: Client[] = []
  t.after(async () => {
    for (const c of clients) c.destroy()
    await Promise.all(servers.map((s) => s.close()))
    await dropSchema(schema)
    await deleteKeys(prefix)
  })
  // A short room grace: a copy that was not ended would unload, compact and store itself again.
  // B heals only once a minute: what it learns within the test, it learns from the bus or the store's refusal.
  for (const healInterval of [300, 60_000]) {
    servers.push(await startServer({ postgres: POSTGRES_URL, postgresSchema: schema, redis: REDIS_URL, redisPrefix: prefix, healInterval, roomGrace: 100, historyInterval: 100 }))
  }
  const [a, b] = servers as [CoeditServer, CoeditServer]
  const join = (server: CoeditServer, room: string): Client => {
    const c = connect(server.url, room)
    clients.push(c)
    return c
  }
  const stops = (c: Client): Promise<number> => new Promise((resolve) => c.provider.once('closed', (e: { code: number }) => resolve(e.code)))
  const onA = join(a, 'shared')
  const onB = join(b, 'shared')
  await waitFor(() => onA.provider.synced && onB.provider.synced, { timeout: 10_000, message: 'synced' })
  onA.text.insert(0, 'from A. ')
  onB.text.insert(0, 'from B. ')
  await waitFor(() => onA.text.length === 16 && onA.text.toString() === onB.text.toString(), { timeout: 10_000, message: 'converged' })
  const store = a.store as PostgresStore
  await waitFor(async () => (await store.listVersions('shared')).length > 0, { timeout: 10_000, message: 'a version' })

  // Over the bus: B hears the notice and ends its copy at once.
  const closedA = stops(onA)
  const closedB = stops(onB)
  assert.equal((await a.rooms.delete('shared')).existed, true)
  assert.deepEqual(await Promise.all([closedA, closedB]), [4410, 4410])
  await waitFor(() => b.registry.loaded('shared') === undefined, { timeout: 10_000, message: 'B dropped its copy' })
  assert.deepEqual((await store.load('shared')).updates, [])
  const fresh = join(b, 'shared')
  await waitFor(() => fresh.provider.synced, { timeout: 10_000, message: 'fresh synced' })
  assert.equal(fresh.text.toString(), '', 'the room starts empty on B')
  fresh.text.insert(0, 'again')
  const onA2 = join(a, 'shared')
  await waitFor(() => onA2.text.toString() === 'again', { timeout: 10_000, message: 'the new room crosses processes' })
  await waitFor(async () => (await store.listVersions('shared')).length > 0, { timeout: 10_000, message: 'a version of the new room' })
  // By now both processes have run heals, history ticks and B's grace: nothing of the old
  // room was written back, neither in the room nor in its versions.
  const stored = (await store.load('shared')).updates
  const doc = new Y.Doc()
  for (const u of stored) Y.applyUpdate(doc, u)
  assert.equal(doc.getText('text').toString(), 'again')
  for (const v of await store.listVersions('shared')) {
    const version = new Y.Doc()
    Y.applyUpdate(version, (await store.getVersion('shared', v.id))!.state)
    assert.doesNotMatch(version.getText('text').toString(), /from/, `version ${v.id}`)
  }

  // Without the bus (deleted in the store behind both): A's next heal finds the generation
  // grown; B, which heals rarely, learns it when the store refuses its client's next edit.
  const closedA2 = stops(onA2)
  const closedB2 = stops(fresh)
  const outside = await PostgresStore.open({ connectionString: POSTGRES_URL, schema })
  t.after(() => outside.close())
  await outside.delete('shared')
  assert.equal(await closedA2, 4410)
  await waitFor(() => a.registry.loaded('shared') === undefined, { timeout: 10_000, message: 'A dropped its copy' })
  assert.ok(b.registry.loaded('shared'), 'B has not heard yet')
  fresh.text.insert(0, 'stale edit ')
  assert.equal(await closedB2, 4410)
  await waitFor(() => b.registry.loaded('shared') === undefined, { timeout: 10_000, message: 'B dropped its copy' })
  assert.deepEqual((await store.load('shared')).updates, [], 'the stale edit was not stored')
})

ctest('cluster: a room deleted on another process while not loaded here: documents.transact here uses no client ID of the deleted copy', async (t) => {
  const { schema, prefix } = uniqueNames('delpool')
  const servers: CoeditServer[] = []
  t.after(async () => {
    await Promise.all(servers.map((s) => s.close()))
    await dropSchema(schema)
    await deleteKeys(prefix)
  })
  for (let i = 0; i < 2; i++) {
    servers.push(await startServer({ postgres: POSTGRES_URL, postgresSchema: schema, redis: REDIS_URL, redisPrefix: prefix, healInterval: 300, roomGrace: 50 }))
  }
  const [a, b] = servers as [CoeditServer, CoeditServer]
  const write = (text: string): Promise<void> => a.documents.transact('pool', (doc) => { doc.getText('text').insert(0, text) })
  const clientsOf = async (): Promise<number[]> => [...(await storedDoc(schema, 'pool')).store.clients.keys()]
  const unloadedOnA = async (): Promise<void> => { await waitFor(() => a.registry.loaded('pool') === undefined, { timeout: 10_000, message: 'A unloaded the room' }) }

  // A writes (its client ID goes back to its pool), unloads the room, and so never hears B's delete.
  await write('old ')
  const old = await clientsOf()
  await unloadedOnA()
  await b.rooms.delete('pool', { tombstone: true })
  // The old ID is tombstoned: reusing it would refuse every change for good.
  await write('new ')
  assert.equal((await storedDoc(schema, 'pool')).getText('text').toString(), 'new ')
  const afterTombstone = await clientsOf()
  assert.equal(afterTombstone.filter((c) => old.includes(c)).length, 0, 'no ID of the tombstoned copy')

  // A plain delete: the old ID would write new items under the IDs an offline copy holds.
  await unloadedOnA()
  await b.rooms.delete('pool')
  await write('newer ')
  const doc = await storedDoc(schema, 'pool')
  assert.equal(doc.getText('text').toString(), 'newer ')
  assert.equal([...doc.store.clients.keys()].filter((c) => afterTombstone.includes(c) || old.includes(c)).length, 0, 'no ID of a deleted copy')
})

ctest('cluster: rooms.disconnect on one process closes the room\'s connections on every process; a malformed notice closes nothing', async (t) => {
  const { schema, prefix } = uniqueNames('disconnect')
  const servers: CoeditServer[] = []
  const clients: Client[] = []
  const redis = new Redis(REDIS_URL)
  t.after(async () => {
    for (const c of clients) c.destroy()
    redis.disconnect()
    await Promise.all(servers.map((s) => s.close()))
    await dropSchema(schema)
    await deleteKeys(prefix)
  })
  // B heals only once a minute: the notice must come over the bus.
  for (const healInterval of [300, 60_000]) {
    servers.push(await startServer({ postgres: POSTGRES_URL, postgresSchema: schema, redis: REDIS_URL, redisPrefix: prefix, healInterval }))
  }
  const [a, b] = servers as [CoeditServer, CoeditServer]
  const join = (server: CoeditServer, room: string): Client => {
    const c = connect(server.url, room)
    clients.push(c)
    return c
  }
  const closes: Array<{ client: string; code: number; reason: string }> = []
  const watch = (name: string, c: Client): void => {
    c.provider.on('connection-close', (e: { code: number; reason: string } | null) => { if (e) closes.push({ client: name, code: e.code, reason: e.reason }) })
  }
  const onA = join(a, 'talk')
  const onB = join(b, 'talk')
  const otherRoom = join(b, 'other')
  watch('A', onA)
  watch('B', onB)
  watch('other', otherRoom)
  await waitFor(() => onA.provider.synced && onB.provider.synced && otherRoom.provider.synced, { timeout: 10_000, message: 'synced' })
  onA.text.insert(0, 'x')
  await waitFor(() => onB.text.toString() === 'x', { timeout: 10_000, message: 'B has A\'s edit' })

  // Hostile or broken notices on the room's channel (a code ws cannot send, a truncated payload): nothing closes.
  const notice = (payload: Uint8Array): Buffer => {
    const e = encoding.createEncoder()
    encoding.writeVarString(e, 'intruder')
    encoding.writeVarUint(e, 3)
    encoding.writeUint8Array(e, payload)
    return Buffer.from(encoding.toUint8Array(e))
  }
  const bad = encoding.createEncoder()
  encoding.writeVarUint(bad, 1005)
  encoding.writeVarString(bad, 'no')
  await redis.publish(`${prefix}{talk}:a`, notice(encoding.toUint8Array(bad)))
  await redis.publish(`${prefix}{talk}:a`, notice(new Uint8Array([0xc8])))

  assert.equal(await a.rooms.disconnect('talk', { code: 4000, reason: 'maintenance' }), 1, 'A closes its own one')
  await waitFor(() => closes.some((c) => c.client === 'B'), { timeout: 10_000, message: 'B\'s connection closed' })
  assert.deepEqual(closes.filter((c) => c.client !== 'other').map((c) => [c.client, c.code, c.reason]).sort(), [['A', 4000, 'maintenance'], ['B', 4000, 'maintenance']])
  assert.equal(closes.filter((c) => c.client === 'other').length, 0, 'another room is left alone')
  // The room stays: the providers (4000 is not "don't reconnect") come back and still share it.
  await waitFor(() => onA.provider.synced && onB.provider.synced, { timeout: 10_000, message: 'reconnected' })
  onB.text.insert(1, 'y')
  await waitFor(() => onA.text.toString() === 'xy', { timeout: 10_000, message: 'still one room' })
})
