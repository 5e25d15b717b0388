/**
 * Providers keep editing while the server is down, reconnect by themselves when it is
 * back (same port, same data directory) and converge, offline edits included.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { startServer, type CoeditServer } from '../server/index.js'
import { connect, prng, synced, tempDir, testSeed, waitFor, type Client } from './helpers/index.js'

test('providers edit through a server restart and converge', async (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed} (replay with SEED=${seed})`)
  const random = prng(seed)
  const dir = await tempDir()
  let server: CoeditServer = await startServer({ dataDir: dir.path })
  const port = server.port
  const clients: Client[] = []
  t.after(async () => {
    for (const c of clients) c.destroy()
    await server.close()
    await dir.remove()
  })
  for (let i = 0; i < 3; i++) clients.push(connect(server.url, 'offline'))
  await Promise.all(clients.map((c) => synced(c)))
  const edit = (c: Client, tag: string): void => {
    if (c.text.length > 3 && random() < 0.3) c.text.delete(Math.floor(random() * (c.text.length - 1)), 1)
    else c.text.insert(Math.floor(random() * (c.text.length + 1)), tag)
  }
  for (let i = 0; i < 60; i++) edit(clients[i % 3]!, 'a')
  await waitFor(() => clients.every((c) => c.text.toString() === clients[0]!.text.toString()), { message: 'first convergence' })

  await server.close()
  await waitFor(() => clients.every((c) => !c.provider.wsconnected), { message: 'providers notice the server is gone' })
  // Each provider edits alone: its edits exist nowhere else yet.
  const marks = clients.map((_, i) => `<offline-${i}>`)
  clients.forEach((c, i) => {
    for (let j = 0; j < 20; j++) edit(c, String(i))
    c.text.insert(0, marks[i]!)
  })
  assert.ok(clients.some((c) => c.text.toString() !== clients[0]!.text.toString()), 'replicas diverged while offline')

  server = await startServer({ dataDir: dir.path, port })
  await waitFor(() => clients.every((c) => c.provider.wsconnected && c.provider.synced), { timeout: 30_000, message: 'providers reconnect by themselves' })
  await waitFor(() => clients.every((c) => c.text.toString() === clients[0]!.text.toString()), { timeout: 20_000, message: 'convergence after reconnect' })
  for (const m of marks) assert.ok(clients[0]!.text.toString().includes(m), `offline edit ${m} survived`)
  const sv = Buffer.from(Y.encodeStateVector(clients[0]!.doc))
  for (const c of clients) assert.deepEqual(Buffer.from(Y.encodeStateVector(c.doc)), sv)

  // The offline edits were stored, not only relayed: a restart keeps them.
  await server.close()
  server = await startServer({ dataDir: dir.path })
  const fresh = connect(server.url, 'offline')
  clients.push(fresh)
  await synced(fresh)
  assert.equal(fresh.text.toString(), clients[0]!.text.toString())
})
