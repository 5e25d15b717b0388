/**
 * Structs a room holds pending (they wait for an item the room does not have) and an update
 * that carries other structs at the same IDs, as only a forgery does. Live, Yjs integrates
 * whichever is complete first; a compaction encodes the pending structs merged with the
 * document, and Y.mergeUpdates picks between the two copies by position, not arrival. So
 * the room stores each ID once, first come: what clients saw must come back after a
 * restart. Found by the fuzz suite (SEED=1090654619 FUZZ_RUNS=600), minimised to three updates.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import { startServer, type CoeditServer } from '../server/index.js'
import { encodeSyncStep1, encodeSyncUpdate } from '../server/room/protocol.js'
import { tempDir, waitFor } from './helpers/index.js'
import { RawClient } from './helpers/raw-client.js'

/** The three updates the fuzz suite's failing case shrank to, as it sent them. */
const FOUND = [
  // 4294967288:5..13 "Ah'6TE*r" after its own 4294967288:4: pending (the room lacks 0..5).
  'AQH4////DwWE+P///w8ECEFoJzZURSpyAA==',
  // 4294967285:0..3 ")[`" after 4294959093:1, which never comes: pending.
  'AQH1////DwCE9b///w8BAylbYAA=',
  // 4294967285:0..5 "|{`i\\" at the start of the text: the same IDs, other content, complete.
  'AQH1////DwAEAQR0ZXh0BXx7YGlcAA==',
].map((b) => new Uint8Array(Buffer.from(b, 'base64')))

/** An update of one text item by hand: `client`:`clock`, after `origin` (or at the start of 'text'). */
function item(client: number, clock: number, text: string, origin?: { client: number; clock: number }): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 1) // one client
  encoding.writeVarUint(e, 1) // one struct
  encoding.writeVarUint(e, client)
  encoding.writeVarUint(e, clock)
  if (origin) {
    encoding.writeUint8(e, 0x84) // ContentString, origin given
    encoding.writeVarUint(e, origin.client)
    encoding.writeVarUint(e, origin.clock)
  } else {
    encoding.writeUint8(e, 0x04) // ContentString, parent named
    encoding.writeVarUint(e, 1)
    encoding.writeVarString(e, 'text')
  }
  encoding.writeVarString(e, text)
  encoding.writeVarUint(e, 0) // no deletions
  return encoding.toUint8Array(e)
}

interface Seen { text: string; state: Map<number, number>; pending: boolean }

function seen(doc: Y.Doc): Seen {
  return { text: doc.getText('text').toString(), state: Y.decodeStateVector(Y.encodeStateVector(doc)), pending: doc.store.pendingStructs !== null }
}

async function servedDoc(server: CoeditServer, room: string): Promise<Y.Doc> {
  const client = await RawClient.open(`${server.url}/${room}`)
  try {
    client.send(encodeSyncStep1(new Uint8Array([0])))
    await client.waitForMessage('sync-step2')
    return client.docFromMessages()
  } finally {
    client.close()
  }
}

/**
 * Sends `updates` one by one to `room` (each stored before the next), while a watcher
 * records what it is relayed; then restarts the server on the same data. Returns what the
 * watcher saw, what the room served before and after the restart, and what was stored.
 */
async function sendAndRestart(t: TestContext, room: string, updates: readonly Uint8Array[]): Promise<{ watcher: Seen; before: Seen; after: Seen; stored: Seen }> {
  const dir = await tempDir()
  t.after(() => dir.remove())
  let server = await startServer({ dataDir: dir.path })
  t.after(() => server.close())
  const watcher = await RawClient.open(`${server.url}/${room}`)
  t.after(() => watcher.close())
  await watcher.waitForMessage('sync-step1')
  const writer = await RawClient.open(`${server.url}/${room}?coedit=1`)
  t.after(() => writer.close())
  for (const [i, u] of updates.entries()) {
    writer.send(encodeSyncUpdate(u))
    await waitFor(() => writer.messages.some((m) => m.type === 'coedit-persisted' && m.count === i + 1), { message: `update ${i} stored` })
    assert.equal(writer.closeInfo, undefined, `update ${i} accepted`)
  }
  await waitFor(() => watcher.messages.filter((m) => m.type === 'sync-update').length === updates.length, { message: 'the watcher got every relay' })
  const watched = seen(watcher.docFromMessages())
  // A fresh joiner gets the document encoded whole, pending structs merged in, as a compaction stores it.
  const before = seen(await servedDoc(server, room))
  watcher.close()
  writer.close()
  // Closing compacts the room: its document, pending structs included, becomes the stored state.
  await server.close()
  server = await startServer({ dataDir: dir.path })
  const loaded = await server.store.load(room)
  const replay = new Y.Doc()
  for (const u of loaded.updates) Y.applyUpdate(replay, u)
  return { watcher: watched, before, after: seen(await servedDoc(server, room)), stored: seen(replay) }
}

test('the fuzz finding: a complete struct at IDs the room holds pending comes back after a restart as clients saw it', async (t) => {
  const r = await sendAndRestart(t, 'found', FOUND)
  assert.deepEqual(r.before, r.watcher, 'a joiner is served what the room relayed')
  assert.deepEqual(r.stored, r.before, 'the compacted state replays to the same document')
  assert.deepEqual(r.after, r.before, 'after the restart the room serves the same document')
})

test('an update overlapping pending structs from before their start: the pending ones keep waiting, before and after a restart', async (t) => {
  const A = 7001
  const X = 7002
  const r = await sendAndRestart(t, 'straddle', [
    // A:3..8 after X:0, which never comes: pending.
    item(A, 3, 'PPPPP', { client: X, clock: 0 }),
    // A:0..5 at the start: complete, and reaching into the pending IDs 3..5.
    item(A, 0, 'uuuuu'),
  ])
  assert.deepEqual(r.before, r.watcher, 'a joiner is served what the room relayed')
  assert.deepEqual(r.stored, r.before, 'the compacted state replays to the same document')
  assert.deepEqual(r.after, r.before, 'after the restart the room serves the same document')
  assert.equal(r.after.text, 'uuu', 'the IDs the pending struct holds were not taken by the later one')
  assert.ok(r.after.pending)
})
