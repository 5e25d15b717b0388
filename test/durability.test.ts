/**
 * Durability: after a clean restart every document is exactly what it was; after a
 * `kill -9` nothing any client received from the server, and nothing the server
 * acknowledged as stored, is missing.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { startServer } from '../server/index.js'
import { encodeSyncStep1, encodeSyncStep2, encodeSyncUpdate } from '../server/room/protocol.js'
import { connect, prng, synced, tempDir, testSeed, waitFor, type Client } from './helpers/index.js'
import { RawClient } from './helpers/raw-client.js'
import { startChildServer, type ChildServer } from './helpers/child-server.js'

test('a clean restart restores content and state vector exactly', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  let server = await startServer({ dataDir: dir.path, compactEvery: 20 })
  const a = connect(server.url, 'doc')
  const b = connect(server.url, 'doc')
  await Promise.all([synced(a), synced(b)])
  for (let i = 0; i < 50; i++) {
    ;(i % 2 ? a : b).text.insert(0, String(i % 10))
    if (i % 7 === 0 && a.text.length > 0) a.text.delete(0, 1)
  }
  a.doc.getMap('meta').set('title', 'restart')
  await waitFor(() => a.text.toString() === b.text.toString() && b.doc.getMap('meta').get('title') === 'restart', { message: 'sync' })
  const expected = a.text.toString()
  const expectedSv = Buffer.from(Y.encodeStateVector(a.doc))
  a.destroy()
  b.destroy()
  await server.close()

  server = await startServer({ dataDir: dir.path })
  const c = connect(server.url, 'doc')
  t.after(async () => {
    c.destroy()
    await server.close()
  })
  await synced(c)
  // The first sync step 2 already carries everything: no waiting for a late load.
  assert.equal(c.text.toString(), expected)
  assert.equal(c.doc.getMap('meta').get('title'), 'restart')
  assert.deepEqual(Buffer.from(Y.encodeStateVector(c.doc)), expectedSv)
})

/**
 * A writer streams updates with `?coedit=1` acks; a reader records every update the
 * server relays. The server is killed with SIGKILL from inside the reader's message
 * handler right after it saw update k. After a restart a fresh client must hold every
 * update the reader saw and every update the writer had an ack for.
 */
test('kill -9 loses nothing a client received or the server acknowledged', async (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed} (replay with SEED=${seed})`)
  const random = prng(seed)
  const dir = await tempDir()
  let server: ChildServer | undefined
  const cleanup: Array<{ destroy(): void } | { close(): void }> = []
  t.after(async () => {
    for (const c of cleanup) 'destroy' in c ? c.destroy() : c.close()
    await server?.kill('SIGKILL')
    await dir.remove()
  })
  const args = ['--data', dir.path, '--compact-every', '40', '--log-level', 'info']
  const writerDoc = new Y.Doc()
  /** Every update the writer sent, in order (ack n covers sent[0..n-1] of one connection). */
  const everAcked: Uint8Array[] = []

  for (let round = 0; round < 2; round++) {
    server = await startChildServer(args)
    // Relayed messages, not updates: everything applied in one tick goes out as one message.
    const k = 3 + Math.floor(random() * 25)
    const reader = await RawClient.open(`${server.url}/crash`)
    const writer = await RawClient.open(`${server.url}/crash?coedit=1`)
    cleanup.push(reader, writer)
    const seen: Uint8Array[] = []
    const child = server.child
    reader.ws.on('message', (data: Buffer) => {
      const m = reader.messages.at(-1)
      if (m?.type !== 'sync-update' || data.length === 0) return
      seen.push(m.update)
      // Synchronously, before anything else can run: the server dies right after update k.
      if (seen.length === k) child.kill('SIGKILL')
    })
    // Sync like a provider: answer the server's step 1 (resending what a crash may have
    // lost) and take in what survived earlier rounds.
    const serverStep1 = await writer.waitForMessage('sync-step1')
    const sentThisConnection: Uint8Array[] = [Y.encodeStateAsUpdate(writerDoc, serverStep1.stateVector)]
    writer.send(encodeSyncStep2(sentThisConnection[0]!))
    writer.send(encodeSyncStep1(Y.encodeStateVector(writerDoc)))
    Y.applyUpdate(writerDoc, (await writer.waitForMessage('sync-step2')).update)
    const text = writerDoc.getText('t')
    while (writer.closeInfo === undefined && writer.ws.readyState === writer.ws.OPEN) {
      let update: Uint8Array | undefined
      writerDoc.once('update', (u: Uint8Array) => { update = u })
      if (text.length > 5 && random() < 0.2) text.delete(Math.floor(random() * (text.length - 1)), 1)
      else text.insert(Math.floor(random() * (text.length + 1)), String.fromCharCode(97 + Math.floor(random() * 26)))
      sentThisConnection.push(update!)
      writer.send(encodeSyncUpdate(update!))
      await new Promise((r) => setImmediate(r))
    }
    await server.exited
    assert.ok(seen.length >= k, `round ${round}: the reader saw ${seen.length} messages before the kill`)
    const acks = writer.messages.filter((m): m is { type: 'coedit-persisted'; count: number } => m.type === 'coedit-persisted')
    const acked = acks.at(-1)?.count ?? 0
    everAcked.push(...sentThisConnection.slice(0, acked))
    reader.close()
    writer.close()

    server = await startChildServer(args)
    const fresh = connect(server.url, 'crash')
    cleanup.push(fresh)
    await synced(fresh, 20_000).catch((err: unknown) => {
      throw new Error(`round ${round}: ${String(err)}; server log: ${JSON.stringify(server?.logs.slice(-5))}`)
    })
    const freshSv = Y.encodeStateVector(fresh.doc)
    const missing = (updates: Uint8Array[]): Uint8Array => {
      // What `updates` hold that the restarted server's document lacks.
      const probe = new Y.Doc()
      for (const u of updates) Y.applyUpdate(probe, u)
      return Y.encodeStateAsUpdate(probe, freshSv)
    }
    const emptyDiff = (u: Uint8Array): boolean => {
      const d = Y.decodeUpdate(u)
      return d.structs.length === 0
    }
    assert.ok(emptyDiff(missing(seen)), `round ${round}: an update the reader saw is missing after kill -9 (k=${k}, seed ${seed})`)
    assert.ok(emptyDiff(missing(everAcked)), `round ${round}: an acknowledged update is missing after kill -9 (acked ${acked}, seed ${seed})`)
    // Deletions count too: the reader's view, applied to the restored doc, changes nothing.
    const before = fresh.doc.getText('t').toString()
    for (const u of seen) Y.applyUpdate(fresh.doc, u)
    assert.equal(fresh.doc.getText('t').toString(), before, `round ${round}: a deletion the reader saw was lost`)
    fresh.destroy()
    await server.kill('SIGKILL')
  }
})

test('edits of many clients survive kill -9 while they are streaming', async (t) => {
  const dir = await tempDir()
  let server = await startChildServer(['--data', dir.path, '--log-level', 'info'])
  const clients: Client[] = []
  t.after(async () => {
    for (const c of clients) c.destroy()
    await server.kill('SIGKILL')
    await dir.remove()
  })
  for (let i = 0; i < 3; i++) clients.push(connect(server.url, 'many'))
  await Promise.all(clients.map((c) => synced(c, 20_000)))
  const observer = clients[0]!
  for (let i = 0; i < 100; i++) clients[1 + (i % 2)]!.text.insert(0, 'x')
  await waitFor(() => observer.text.length >= 100, { timeout: 20_000, message: 'the observer sees the edits' })
  const observed = observer.text.toString()
  await server.kill('SIGKILL')
  for (const c of clients) c.provider.disconnect()
  server = await startChildServer(['--data', dir.path, '--log-level', 'info'])
  const fresh = connect(server.url, 'many')
  clients.push(fresh)
  await synced(fresh, 20_000)
  assert.ok(fresh.text.length >= observed.length, `restored ${fresh.text.length} of the ${observed.length} characters a client had seen`)
})

test('an update reaches no one, its sender included, before the store has it', async (t) => {
  const { MemoryStore } = await import('../server/index.js')
  const { ControlledStore, gate } = await import('./helpers/controlled-store.js')
  const store = new ControlledStore(new MemoryStore())
  const server = await startServer({ storage: store })
  const writing = gate()
  t.after(async () => {
    writing.open()
    await server.close()
  })
  const writer = await RawClient.open(`${server.url}/order`)
  const reader = await RawClient.open(`${server.url}/order`)
  const joiner = new Y.Doc()
  await Promise.all([writer.waitForMessage('sync-step1'), reader.waitForMessage('sync-step1')])
  store.beforeAppend = () => writing.promise
  const doc = new Y.Doc()
  let update: Uint8Array | undefined
  doc.once('update', (u: Uint8Array) => { update = u })
  doc.getText('text').insert(0, 'durable first')
  writer.send(encodeSyncUpdate(update!))
  await waitFor(() => store.calls.append === 1, { message: 'the write reached the store' })
  // While the write is pending: no relay, no echo, and a joiner is served without it.
  const late = await RawClient.open(`${server.url}/order`)
  late.send(encodeSyncStep1(new Uint8Array([0])))
  Y.applyUpdate(joiner, (await late.waitForMessage('sync-step2')).update)
  assert.equal(joiner.getText('text').toString(), '', 'a joiner is not served an unstored update')
  assert.ok(!reader.messages.some((m) => m.type === 'sync-update'), 'not relayed before it is stored')
  assert.ok(!writer.messages.some((m) => m.type === 'sync-update'), 'not echoed before it is stored')
  writing.open()
  await reader.waitForMessage('sync-update')
  await writer.waitForMessage('sync-update')
  assert.equal(reader.docFromMessages().getText('text').toString(), 'durable first')
  for (const c of [writer, reader, late]) c.close()
})
