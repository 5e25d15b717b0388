/**
 * Updates that arrive while earlier ones are still being stored. The room stores only
 * what it lacks of an overlapping update, counting what is in flight as present; a span
 * in flight that does not connect to the document (a provider's sync step 2 carrying
 * structs it holds as pending, or typing that overtakes a reconnect's step 2) must not
 * count, or the structs that fill the gap are dropped for good. Found by the cluster
 * SIGKILL test (issue 8).
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { startServer, type CoeditServer } from '../server/index.js'
import { LevelStore } from '../server/persistence/leveldb.js'
import { encodeQueryAwareness, encodeSyncStep1, encodeSyncStep2, encodeSyncUpdate } from '../server/room/protocol.js'
import { InflightUpdates, decodeUpdateChecked } from '../server/room/update-checks.js'
import { prng, tempDir, testSeed, waitFor } from './helpers/index.js'
import { RawClient } from './helpers/raw-client.js'
import { ControlledStore, gate } from './helpers/controlled-store.js'

/** One author's edits, each captured as the update Yjs emitted for it. */
function author(clientID: number, edits: number, rand: () => number): { doc: Y.Doc; updates: Uint8Array[] } {
  const doc = new Y.Doc()
  doc.clientID = clientID
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  const text = doc.getText('text')
  for (let i = 0; i < edits; i++) {
    if (text.length > 2 && rand() < 0.25) text.delete(Math.floor(rand() * (text.length - 1)), 1)
    else text.insert(Math.floor(rand() * (text.length + 1)), String.fromCharCode(97 + Math.floor(rand() * 26)))
  }
  return { doc, updates }
}

async function gatedServer(t: TestContext): Promise<{ server: CoeditServer; store: ControlledStore }> {
  const dir = await tempDir()
  const store = new ControlledStore(await LevelStore.open(dir.path))
  const server = await startServer({ port: 0, storage: store, compactEvery: 1_000_000 })
  t.after(async () => {
    store.beforeAppend = undefined
    await server.close()
    await store.close()
    await dir.remove()
  })
  return { server, store }
}

/** Sends a query and waits for its answer: every frame sent before it has been handled. */
async function barrier(client: RawClient): Promise<void> {
  const seen = client.messages.filter((m) => m.type === 'awareness').length
  client.send(encodeQueryAwareness())
  await waitFor(() => client.messages.filter((m) => m.type === 'awareness').length > seen, { message: 'answer to query-awareness' })
}

/** The document the server serves for `room` to a fresh client. */
async function served(url: string, room: string): Promise<Y.Doc> {
  const client = await RawClient.open(`${url}/${room}`)
  try {
    client.send(encodeSyncStep1(new Uint8Array([0])))
    const step2 = await client.waitForMessage('sync-step2')
    const doc = new Y.Doc()
    Y.applyUpdate(doc, step2.update)
    return doc
  } finally {
    client.close()
  }
}

function persistedCount(client: RawClient): number {
  return Math.max(0, ...client.messages.map((m) => (m.type === 'coedit-persisted' ? m.count : 0)))
}

test('a gapped update in flight does not hide the structs that fill its gap', async (t) => {
  const { server, store } = await gatedServer(t)
  const { doc, updates } = author(7, 3, prng(1))
  const [u1, u2, u3] = updates as [Uint8Array, Uint8Array, Uint8Array]
  const client = await RawClient.open(`${server.url}/gap?coedit=1`)
  t.after(() => client.close())
  client.send(encodeSyncUpdate(u1))
  await waitFor(() => persistedCount(client) === 1, { message: 'first update stored' })

  const held = gate()
  store.beforeAppend = () => held.promise
  // The provider typed u3 before its step 2 (u2 + u3) went out: u3 is in flight, with a gap.
  client.send(encodeSyncUpdate(u3))
  client.send(encodeSyncStep2(Y.mergeUpdates([u2, u3])))
  await barrier(client)
  held.open()
  await waitFor(() => persistedCount(client) === 3, { message: 'both stored' })

  const copy = await served(server.url, 'gap')
  assert.equal(copy.getText('text').toString(), doc.getText('text').toString())
  assert.deepEqual(Y.encodeStateVector(copy), Y.encodeStateVector(doc))
})

test('seeded: any split, order and overlap of two authors\' updates, stored in bursts, leaves the room with everything', async (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed} (replay with SEED=${seed})`)
  const rand = prng(seed)
  const { server, store } = await gatedServer(t)
  for (let round = 0; round < 12; round++) {
    const room = `r${round}`
    const authors = [author(100 + round, 12, rand), author(200 + round, 12, rand)]
    const clients = await Promise.all(authors.map(() => RawClient.open(`${server.url}/${room}?coedit=1`)))
    const sent = clients.map(() => 0)
    // Messages: single updates, or merges of a random subset (a step 2 with pending structs).
    const messages: Array<{ from: number; update: Uint8Array }> = []
    for (let i = 0; i < 16; i++) {
      const from = Math.floor(rand() * clients.length)
      const pool = authors[Math.floor(rand() * authors.length)]!.updates
      const pick = pool.filter(() => rand() < 0.3)
      messages.push({ from, update: pick.length > 1 ? Y.mergeUpdates(pick) : pool[Math.floor(rand() * pool.length)]! })
    }
    // Then every update once, in a random order, so the room was offered everything.
    for (const a of authors) for (const u of a.updates) messages.push({ from: Math.floor(rand() * clients.length), update: u })
    messages.sort(() => rand() - 0.5)
    while (messages.length > 0) {
      const held = gate()
      store.beforeAppend = () => held.promise
      const burst = messages.splice(0, 1 + Math.floor(rand() * 6))
      for (const m of burst) {
        clients[m.from]!.send(encodeSyncUpdate(m.update))
        sent[m.from]!++
      }
      await Promise.all(clients.map((c) => barrier(c)))
      held.open()
      store.beforeAppend = undefined
      await waitFor(() => clients.every((c, i) => persistedCount(c) === sent[i]), { message: `burst stored (seed ${seed})` })
    }
    const want = new Y.Doc()
    for (const a of authors) Y.applyUpdate(want, Y.encodeStateAsUpdate(a.doc))
    const copy = await served(server.url, room)
    assert.equal(copy.getText('text').toString(), want.getText('text').toString(), `room ${room} (seed ${seed})`)
    assert.deepEqual(Y.encodeStateVector(copy), Y.encodeStateVector(want), `room ${room} state vector (seed ${seed})`)
    for (const c of clients) c.close()
  }
})

test('InflightUpdates: only spans contiguous with the document count as present', () => {
  const { updates } = author(9, 4, prng(2))
  const doc = new Y.Doc()
  Y.applyUpdate(doc, updates[0]!)
  const inflight = new InflightUpdates()
  const base = Y.getState(doc.store, 9)
  const add = (u: Uint8Array): void => inflight.add(u, decodeUpdateChecked(u))
  const end = (i: number): number => Y.parseUpdateMeta(updates[i]!).to.get(9)!

  add(updates[2]!)
  assert.equal(inflight.stateOf(doc, 9), base, 'a span after a gap does not count')
  add(updates[3]!)
  assert.equal(inflight.stateOf(doc, 9), base)
  add(updates[1]!)
  assert.equal(inflight.stateOf(doc, 9), end(3), 'filling the gap connects everything, whatever the order')
  assert.deepEqual(Y.decodeStateVector(inflight.stateVector(doc)), new Map([[9, end(3)]]))
  inflight.delete(updates[1]!)
  assert.equal(inflight.stateOf(doc, 9), base, 'a span removed (stored and applied, or failed) stops counting')
  assert.equal([...inflight.updates].length, 2)
})
