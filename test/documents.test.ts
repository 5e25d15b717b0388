/**
 * Server-side documents (`server.documents`): a change made in the server process takes
 * the path of a client's update (checked, stored, then relayed), survives a `kill -9` once
 * its promise resolved, works on rooms not loaded (which unload again) and across cluster
 * processes; a throwing callback or a refused update stores nothing.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { startServer, type CoeditServer } from '../server/index.js'
import { CoeditError } from '../server/errors.js'
import { isHistoryLogStore } from '../server/persistence/store.js'
import { connect, serverWithClients, prng, synced, tempDir, testSeed, waitFor, type Client } from './helpers/index.js'
import { ControlledStore, gate } from './helpers/controlled-store.js'
import { MemoryStore } from '../server/persistence/memory.js'
import { runScript, startChildServer, type ChildServer } from './helpers/child-server.js'
import { POSTGRES_URL, REDIS_URL, clusterServicesMissing, deleteKeys, dropSchema, uniqueNames } from './helpers/services.js'


/** Users the history log recorded for `room`'s updates, in order. */
async function loggedUsers(server: CoeditServer, room: string): Promise<Array<string | undefined>> {
  assert.ok(isHistoryLogStore(server.store))
  return (await server.store.readLog(room)).entries.map((e) => e.user)
}

test('transact: two stock providers see the change, stored with its user; the server writes as one client ID', async (t) => {
  const { server, clients } = await serverWithClients(t)
  const a = connect(server.url, 'notes')
  const b = connect(server.url, 'notes')
  clients.push(a, b)
  await Promise.all([synced(a), synced(b)])
  a.text.insert(0, 'typed by a. ')
  await waitFor(() => b.text.toString() === 'typed by a. ', { message: "a's edit reaches b" })

  await server.documents.transact('notes', (doc) => {
    const text = doc.getText('text')
    text.insert(text.length, 'written by the server.')
    doc.getMap('meta').set('summary', 'one line')
  }, { user: { id: 'assistant', name: 'AI' } })
  // Resolved means stored and applied: a client joining now gets it in its first sync.
  const late = connect(server.url, 'notes')
  clients.push(late)
  await synced(late)
  assert.equal(late.text.toString(), 'typed by a. written by the server.')
  for (const c of [a, b]) {
    await waitFor(() => c.text.toString() === 'typed by a. written by the server.' && c.doc.getMap('meta').get('summary') === 'one line', { message: 'the change reaches a provider' })
  }
  assert.equal((await loggedUsers(server, 'notes')).at(-1), 'assistant')

  // Sequential transacts reuse one client ID: the state vector does not grow by one each.
  const clientsBefore = Y.decodeStateVector(Y.encodeStateVector(a.doc)).size
  for (let i = 0; i < 20; i++) await server.documents.transact('notes', (doc) => { doc.getText('text').insert(0, '.') })
  await waitFor(() => a.text.toString().startsWith('....................typed'), { message: 'twenty server edits' })
  assert.equal(Y.decodeStateVector(Y.encodeStateVector(a.doc)).size, clientsBefore)
})

test('transact: concurrent calls and concurrent client typing all land and converge', async (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed} (replay with SEED=${seed})`)
  const random = prng(seed)
  const { server, clients } = await serverWithClients(t)
  const a = connect(server.url, 'busy')
  const b = connect(server.url, 'busy')
  clients.push(a, b)
  await Promise.all([synced(a), synced(b)])
  const calls: Array<Promise<void>> = []
  for (let i = 0; i < 40; i++) {
    calls.push(server.documents.transact('busy', (doc) => { doc.getMap('server').set(`k${i}`, i) }))
    const c = random() < 0.5 ? a : b
    c.text.insert(Math.floor(random() * (c.text.length + 1)), String.fromCharCode(97 + (i % 26)))
    if (random() < 0.3) await new Promise((r) => setImmediate(r))
  }
  await Promise.all(calls)
  const stored = await server.documents.get('busy')
  assert.equal(stored.getMap('server').size, 40)
  await waitFor(() => a.text.toString() === b.text.toString() && a.text.length === 40 && a.doc.getMap('server').size === 40 && b.doc.getMap('server').size === 40, { message: 'convergence' })
  await waitFor(async () => (await server.documents.get('busy')).getText('text').toString() === a.text.toString(), { message: 'the room holds what the clients hold' })
})

test('transact and get on a room that is not loaded: it is loaded for the call and unloaded after the grace period', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const { server, clients } = await serverWithClients(t, { dataDir: dir.path, roomGrace: 200 })
  assert.equal(server.registry.loadedCount, 0)
  await server.documents.transact('cold', (doc) => { doc.getText('text').insert(0, 'from a job') })
  assert.equal(server.registry.loadedCount, 1)
  await waitFor(() => server.registry.loadedCount === 0, { message: 'the room unloads after the grace period' })
  const copy = await server.documents.get('cold')
  assert.equal(copy.getText('text').toString(), 'from a job')
  // A copy: changing it changes nothing.
  copy.getText('text').insert(0, 'not saved ')
  await waitFor(() => server.registry.loadedCount === 0, { message: 'unloaded again after get' })
  const c = connect(server.url, 'cold')
  clients.push(c)
  await synced(c)
  assert.equal(c.text.toString(), 'from a job')
  // With a connection, the room stays as long as it does.
  await server.documents.transact('cold', (doc) => { doc.getText('text').insert(0, '> ') })
  await waitFor(() => c.text.toString() === '> from a job', { message: 'the change reaches the provider' })
})

test('an async callback is awaited and all its changes are captured; its room is neither evicted nor unloaded meanwhile', async (t) => {
  const { server, clients } = await serverWithClients(t, { roomGrace: 0, maxRooms: 2 })
  const c = connect(server.url, 'slow')
  clients.push(c)
  await synced(c)
  const held = gate()
  let entered = false
  const call = server.documents.transact('slow', async (doc) => {
    entered = true
    doc.getText('text').insert(0, 'before ')
    await held.promise
    doc.getText('text').insert(7, 'after')
  })
  await waitFor(() => entered, { message: 'the callback runs' })
  // The last connection leaves: its grace (0 ms) passes while the callback waits.
  c.destroy()
  clients.length = 0
  await waitFor(() => server.registry.rooms.every((r) => r.size === 0), { message: 'the connection is gone' })
  await server.documents.get('probe')
  await waitFor(() => !server.registry.rooms.some((r) => r.name === 'probe'), { message: 'a room with the same grace unloaded' })
  // With room for two, a third room needs an idle one to evict: 'other' has a connection, 'slow' is in use.
  const other = connect(server.url, 'other')
  clients.push(other)
  await synced(other)
  await assert.rejects(server.documents.get('third'), (err) => err instanceof CoeditError && err.code === 'TOO_MANY_ROOMS')
  assert.ok(server.registry.rooms.some((r) => r.name === 'slow' && !r.isDestroyed), 'the room in use is still loaded')
  held.open()
  await call
  assert.equal((await server.documents.get('slow')).getText('text').toString(), 'before after')
  await waitFor(() => !server.registry.rooms.some((r) => r.name === 'slow'), { message: 'the room unloads once unused' })
})

test('a write the store refuses rejects with STORE_FAILED and stores nothing; the next call stores', async (t) => {
  const store = new ControlledStore(new MemoryStore())
  const { server } = await serverWithClients(t, { storage: store })
  store.beforeAppend = () => { throw new Error('disk full') }
  await assert.rejects(server.documents.transact('flaky', (doc) => { doc.getText('text').insert(0, 'lost?') }), (err) => err instanceof CoeditError && err.code === 'STORE_FAILED')
  assert.equal((await store.inner.load('flaky')).lastSeq, 0)
  store.beforeAppend = undefined
  await server.documents.transact('flaky', (doc) => { doc.getText('text').insert(0, 'stored') })
  assert.equal((await server.documents.get('flaky')).getText('text').toString(), 'stored')
  assert.equal((await store.inner.load('flaky')).lastSeq, 1)
})

test('a callback that throws stores nothing and rejects with its error; the room keeps working', async (t) => {
  const { server, clients } = await serverWithClients(t)
  const a = connect(server.url, 'oops')
  clients.push(a)
  await synced(a)
  a.text.insert(0, 'kept')
  await waitFor(async () => (await server.store.load('oops')).lastSeq === 1, { message: 'the client edit stored' })
  const received: Uint8Array[] = []
  a.doc.on('update', (u: Uint8Array, origin: unknown) => { if (origin === a.provider) received.push(u) })
  const boom = new Error('the job failed halfway')
  await assert.rejects(server.documents.transact('oops', (doc) => {
    doc.getText('text').insert(0, 'half ')
    throw boom
  }), (err) => err === boom)
  await assert.rejects(server.documents.transact('oops', async (doc) => {
    doc.getText('text').insert(0, 'half ')
    await Promise.resolve()
    throw boom
  }), (err) => err === boom)
  assert.equal((await server.store.load('oops')).lastSeq, 1)
  await server.documents.transact('oops', (doc) => { doc.getText('text').insert(0, 'then ') })
  await waitFor(() => a.text.toString() === 'then kept', { message: 'the next transact arrives' })
  assert.equal((await server.store.load('oops')).lastSeq, 2)
  assert.equal(received.length, 1, 'the client received only the change that was stored')
})

test('updates refused by the limits reject with their code and store nothing', async (t) => {
  const { server } = await serverWithClients(t, { maxNestingDepth: 8, maxDocumentSize: 4096 })
  await server.documents.transact('limits', (doc) => { doc.getText('text').insert(0, 'base') })
  const before = (await server.store.load('limits')).lastSeq
  const code = (expected: string) => (err: unknown): boolean => err instanceof CoeditError && err.code === expected
  await assert.rejects(server.documents.transact('limits', (doc) => {
    let map = doc.getMap('nest')
    for (let i = 0; i < 20; i++) {
      const child = new Y.Map<unknown>()
      map.set('k', child)
      map = child
    }
  }), code('TOO_DEEP'))
  await assert.rejects(server.documents.transact('limits', (doc) => { doc.getText('text').insert(0, 'x'.repeat(10_000)) }), code('DOCUMENT_TOO_LARGE'))
  await assert.rejects(server.documents.transact('bad\u0000name', () => {}), code('BAD_ROOM_NAME'))
  await assert.rejects(server.documents.transact('limits', () => {}, { user: { id: '' } }), code('BAD_USER'))
  await assert.rejects(server.documents.transact('limits', () => {}, { user: { id: 'a\nb' } }), code('BAD_USER'))
  await assert.rejects(server.documents.get(''), code('BAD_ROOM_NAME'))
  assert.equal((await server.store.load('limits')).lastSeq, before)
  assert.equal((await server.documents.get('limits')).getText('text').toString(), 'base')
  // Nothing changed: resolves without storing.
  await server.documents.transact('limits', () => {})
  assert.equal((await server.store.load('limits')).lastSeq, before)
})

test('transact after close is refused with SHUTTING_DOWN', async () => {
  const server = await startServer({ port: 0 })
  await server.close()
  await assert.rejects(server.documents.transact('late', (doc) => { doc.getText('text').insert(0, 'x') }), (err) => err instanceof CoeditError && err.code === 'SHUTTING_DOWN')
})

test('kill -9 right after transact resolved loses nothing that resolved', { timeout: 120_000 }, async (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed} (replay with SEED=${seed})`)
  const random = prng(seed)
  const dir = await tempDir()
  let server: CoeditServer | undefined
  t.after(async () => {
    await server?.close()
    await dir.remove()
  })
  const count = 60
  const killAfter = 1 + Math.floor(random() * 40)
  const run = await runScript('test/fixtures/transact-child.ts', [dir.path, String(count), String(killAfter)], {}, 90_000)
  assert.equal(run.code, null, `the child was killed (stderr: ${run.stderr})`)
  const resolved = [...run.stdout.matchAll(/^resolved (\d+)$/gm)].map((m) => Number(m[1]))
  assert.equal(resolved.length, killAfter, run.stdout)
  assert.doesNotMatch(run.stdout, /rejected/)
  server = await startServer({ port: 0, dataDir: dir.path })
  const doc = await server.documents.get('crash')
  const missing = resolved.filter((i) => doc.getMap('m').get(`k${i}`) !== i)
  assert.deepEqual(missing, [], `resolved before the kill but lost: ${missing.join(', ')}`)
  t.diagnostic(`${resolved.length} resolved before the kill, ${doc.getMap('m').size} stored`)
})

const missingServices = await clusterServicesMissing()
if (missingServices) console.log(`# skipping the cluster test: ${missingServices}`)

test('cluster: a transact on process A reaches a provider on process B, on a room A had not loaded', { skip: missingServices, timeout: 120_000 }, async (t) => {
  const { schema, prefix } = uniqueNames('docs')
  let b: ChildServer | undefined
  let a: CoeditServer | undefined
  const clients: Client[] = []
  t.after(async () => {
    for (const c of clients) c.destroy()
    await a?.close()
    await b?.kill('SIGKILL')
    await dropSchema(schema)
    await deleteKeys(prefix)
  })
  b = await startChildServer(['--postgres', POSTGRES_URL, '--postgres-schema', schema, '--redis', REDIS_URL, '--redis-prefix', prefix,
    '--heal-interval', '300ms', '--liveness-ttl', '1500ms', '--log-level', 'info'])
  a = await startServer({ port: 0, postgres: POSTGRES_URL, postgresSchema: schema, redis: REDIS_URL, redisPrefix: prefix, healInterval: 300, livenessTtl: 1500, roomGrace: 200 })
  const onB = connect(b.url, 'shared')
  clients.push(onB)
  await synced(onB)
  onB.text.insert(0, 'typed on B. ')
  // A reads B's edit through the store when it loads the room.
  const seen = await waitFor(async () => {
    const doc = await a!.documents.get('shared')
    return doc.getText('text').toString() === 'typed on B. ' && doc
  }, { message: "A sees B's edit" })
  assert.ok(seen)
  await a.documents.transact('shared', (doc) => {
    const text = doc.getText('text')
    text.insert(text.length, 'written on A.')
  }, { user: { id: 'job' } })
  await waitFor(() => onB.text.toString() === 'typed on B. written on A.', { message: "A's transact reaches B's provider" })
  await waitFor(() => a!.registry.loadedCount === 0, { message: 'A unloads the room it loaded only for the call' })
})
