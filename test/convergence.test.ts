/**
 * Convergence: several stock providers make seeded random concurrent edits (with
 * random disconnects); afterwards every replica, a fresh client, and the document
 * rebuilt from storage are equal. SEED=<n> replays a run.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { startServer } from '../server/index.js'
import { connect, prng, synced, tempDir, testSeed, waitFor, type Client } from './helpers/index.js'

const PROVIDERS = 4
const OPS = 600

test(`${PROVIDERS} providers × ${OPS} random concurrent edits converge`, async (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed} (replay with SEED=${seed})`)
  const fail = (message: string): string => `${message} (replay with SEED=${seed})`
  const dir = await tempDir()
  // Small compactEvery: compaction runs many times while edits stream in.
  const server = await startServer({ dataDir: dir.path, compactEvery: 97 })
  const clients: Client[] = []
  t.after(async () => {
    for (const c of clients) c.destroy()
    await server.close()
    await dir.remove()
  })
  for (let i = 0; i < PROVIDERS; i++) clients.push(connect(server.url, 'converge'))
  await Promise.all(clients.map((c) => synced(c, 10_000)))

  const random = prng(seed)
  const int = (n: number): number => Math.floor(random() * n)
  const alphabet = 'abcdefghijklmnopqrstuvwxyz 0123456789'
  // Every provider's operation list is drawn up front so scheduling cannot change what is edited.
  const plans = clients.map(() => Array.from({ length: OPS }, () => ({
    kind: random() < 0.65 ? 'insert' : random() < 0.97 ? 'delete' : 'reconnect',
    at: random(),
    len: 1 + int(4),
    text: Array.from({ length: 1 + int(5) }, () => alphabet[int(alphabet.length)]).join(''),
    pause: random() < 0.2,
  })))

  await Promise.all(clients.map(async (client, ci) => {
    const { text, provider, doc } = client
    for (const op of plans[ci]!) {
      if (op.kind === 'insert') {
        text.insert(Math.floor(op.at * (text.length + 1)), op.text)
      } else if (op.kind === 'delete' && text.length > 0) {
        const at = Math.floor(op.at * text.length)
        text.delete(at, Math.min(op.len, text.length - at))
      } else if (op.kind === 'reconnect') {
        // Edits made while offline must reach everyone after the reconnect.
        provider.disconnect()
        doc.getText('text').insert(0, `<${ci}>`)
        provider.connect()
      }
      // Yield now and then so the providers' edits interleave on the wire.
      if (op.pause) await new Promise((r) => setImmediate(r))
    }
  }))

  const equal = (): boolean => clients.every((c) => c.text.toString() === clients[0]!.text.toString())
  await waitFor(() => clients.every((c) => c.provider.wsconnected && c.provider.synced) && equal(),
    { timeout: 60_000, message: fail('all providers to converge') })
  // Same content is not enough: the state vectors must match too.
  const sv0 = Buffer.from(Y.encodeStateVector(clients[0]!.doc))
  for (const c of clients) assert.deepEqual(Buffer.from(Y.encodeStateVector(c.doc)), sv0, fail('state vectors equal'))

  const expected = clients[0]!.text.toString()
  assert.ok(expected.length > 0, fail('some text survived'))

  const fresh = connect(server.url, 'converge')
  clients.push(fresh)
  await waitFor(() => fresh.provider.synced && fresh.text.toString() === expected, { timeout: 20_000, message: fail('a fresh client to match') })

  await server.registry.flushAll()
  const stored = await server.store.load('converge')
  const rebuilt = new Y.Doc()
  for (const u of stored.updates) Y.applyUpdate(rebuilt, u)
  assert.equal(rebuilt.getText('text').toString(), expected, fail('the stored updates rebuild the same document'))
  assert.deepEqual(Buffer.from(Y.encodeStateVector(rebuilt)), sv0, fail('the stored document has the same state vector'))
  assert.ok(stored.pendingUpdates < PROVIDERS * OPS, fail(`compaction folded the log (${stored.pendingUpdates} updates left)`))
})
