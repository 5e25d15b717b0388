/**
 * Bad input never hurts anyone else: each malformed frame closes only its own
 * connection with the right close code, is logged once, and leaves the room's
 * document and storage exactly as they were; clients of the same room and of
 * another room keep syncing.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import { startServer } from '../server/index.js'
import { createLogger } from '../server/log.js'
import {
  encodeAwareness, encodeSyncStep1, encodeSyncStep2, encodeSyncUpdate,
} from '../server/room/protocol.js'
import { connect, synced, tempDir, waitFor, type Client } from './helpers/index.js'
import { RawClient } from './helpers/raw-client.js'

const MAX = 64 * 1024

function awarenessWithState(json: string): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 1)
  encoding.writeVarUint(e, 424242)
  encoding.writeVarUint(e, 1)
  encoding.writeVarString(e, json)
  return encodeAwareness(encoding.toUint8Array(e))
}

/**
 * Decodes as an update (Y.decodeUpdate accepts it) but is not one: a zero-length
 * item that breaks the transaction applying it and would poison the document.
 */
const POISON_UPDATE = new Uint8Array([1, 1, 0, 0, 1, 1, 0, 0, 0, 0])

/**
 * Client 5 written twice: "abc" at the start of the text, then "de" after it. Applied, Yjs
 * keeps only the second section (so "de" waits for a 5:2 it never gets); merged, it shows
 * "abcde". The room would serve one and relay or back up the other.
 */
const TWICE_WRITTEN_CLIENT = (() => {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 2)
  for (const [clock, text] of [[0, 'abc'], [3, 'de']] as const) {
    encoding.writeVarUint(e, 1)
    encoding.writeVarUint(e, 5)
    encoding.writeVarUint(e, clock)
    if (clock === 0) {
      encoding.writeUint8(e, 0x04) // a string, its parent named
      encoding.writeVarUint(e, 1)
      encoding.writeVarString(e, 'text')
    } else {
      encoding.writeUint8(e, 0x84) // a string after its origin
      encoding.writeVarUint(e, 5)
      encoding.writeVarUint(e, clock - 1)
    }
    encoding.writeVarString(e, text)
  }
  encoding.writeVarUint(e, 0)
  return encoding.toUint8Array(e)
})()

const CASES: Array<{ name: string; frame: Uint8Array | string; code: number }> = [
  { name: 'garbage bytes', frame: new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0x00, 0x13, 0x37]), code: 4400 },
  { name: 'truncated varint', frame: new Uint8Array([0x80]), code: 4400 },
  { name: 'truncated length', frame: new Uint8Array([0, 2, 50, 1, 2, 3]), code: 4400 },
  { name: 'unknown message type', frame: new Uint8Array([42]), code: 4400 },
  { name: 'unknown sync type', frame: new Uint8Array([0, 9, 0]), code: 4400 },
  { name: 'sync update that is not a Yjs update', frame: encodeSyncUpdate(new Uint8Array([1, 2, 3, 4, 5])), code: 4400 },
  { name: 'sync step 2 that is not a Yjs update', frame: encodeSyncStep2(new Uint8Array([0xff, 0xff, 0xff])), code: 4400 },
  { name: 'sync update that decodes but cannot be applied', frame: encodeSyncUpdate(POISON_UPDATE), code: 4400 },
  { name: 'sync update writing one client twice', frame: encodeSyncUpdate(TWICE_WRITTEN_CLIENT), code: 4400 },
  { name: 'sync step 1 with a malformed state vector', frame: encodeSyncStep1(new Uint8Array([5, 1])), code: 4400 },
  { name: 'text frame', frame: 'hello', code: 1003 },
  { name: 'oversized frame', frame: new Uint8Array(MAX + 1), code: 1009 },
  { name: 'invalid awareness JSON', frame: awarenessWithState('{"user": '), code: 4400 },
  { name: 'awareness that is not UTF-8', frame: new Uint8Array([1, 6, 1, 1, 1, 2, 0xff, 0xfe]), code: 4400 },
]

test('each malformed input closes only its connection and changes nothing', async (t) => {
  const dir = await tempDir()
  const logLines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) logLines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    },
  })
  const server = await startServer({ dataDir: dir.path, maxMessageSize: MAX, logger: createLogger('info', sink) })
  const clients: Client[] = []
  t.after(async () => {
    for (const c of clients) c.destroy()
    await server.close()
    await dir.remove()
  })
  const a1 = connect(server.url, 'room-a')
  const a2 = connect(server.url, 'room-a')
  const b1 = connect(server.url, 'room-b')
  const b2 = connect(server.url, 'room-b')
  clients.push(a1, a2, b1, b2)
  await Promise.all(clients.map((c) => synced(c)))
  a1.text.insert(0, 'a')
  b1.text.insert(0, 'b')
  await waitFor(() => a2.text.toString() === 'a' && b2.text.toString() === 'b', { message: 'initial sync' })

  let round = 0
  for (const c of CASES) {
    round++
    await server.registry.flushAll()
    const storedBefore = await server.store.load('room-a')
    const room = server.registry.rooms.find((r) => r.name === 'room-a')
    assert.ok(room, 'room-a is loaded')
    const docBefore = Y.encodeStateAsUpdate(room.doc)
    const awarenessBefore = [...room.awareness.getStates().keys()].sort()
    const linesBefore = logLines.length

    const raw = await RawClient.open(`${server.url}/room-a`)
    // The server greets once the room is loaded: the bad frame then reaches the room itself.
    await raw.waitForMessage('sync-step1')
    raw.send(c.frame)
    const closed = await raw.waitClosed()
    assert.equal(closed.code, c.code, `${c.name}: close code (reason: ${closed.reason})`)
    if (c.code === 4400) assert.ok(closed.reason.length > 0, `${c.name}: a close reason`)

    await server.registry.flushAll()
    const storedAfter = await server.store.load('room-a')
    assert.equal(storedAfter.lastSeq, storedBefore.lastSeq, `${c.name}: nothing stored`)
    assert.deepEqual(storedAfter.updates.map((u) => Buffer.from(u)), storedBefore.updates.map((u) => Buffer.from(u)), `${c.name}: storage unchanged`)
    assert.deepEqual(Buffer.from(Y.encodeStateAsUpdate(room.doc)), Buffer.from(docBefore), `${c.name}: document unchanged`)
    assert.deepEqual([...room.awareness.getStates().keys()].sort(), awarenessBefore, `${c.name}: awareness unchanged`)
    assert.ok(server.registry.rooms.includes(room), `${c.name}: the room was not reloaded`)

    // Logged once: one warning for the bad frame (plus the ordinary open/close info lines).
    const problems = await waitFor(() => {
      const lines = logLines.slice(linesBefore).filter((l) => (l.level as number) >= 40)
      return lines.length > 0 ? lines : undefined
    }, { message: `${c.name}: a warning in the log` })
    assert.equal(problems?.length, 1, `${c.name}: logged once, got ${JSON.stringify(problems)}`)

    a2.text.insert(a2.text.length, String(round % 10))
    b2.text.insert(b2.text.length, String(round % 10))
    await waitFor(() => a1.text.toString() === a2.text.toString() && b1.text.toString() === b2.text.toString(),
      { message: `${c.name}: other clients keep syncing` })
    assert.equal(a1.text.length, round + 1)
    assert.equal(b1.text.length, round + 1)
  }
  assert.ok(clients.every((c) => c.provider.wsconnected), 'no good client was disconnected')
})

test('a bad frame sent before the room finished loading is handled the same way', async (t) => {
  const server = await startServer({ storage: 'memory' })
  const good = connect(server.url, 'early')
  t.after(async () => {
    good.destroy()
    await server.close()
  })
  await synced(good)
  good.text.insert(0, 'kept')
  const raw = await RawClient.open(`${server.url}/early-other`)
  raw.send(new Uint8Array([0x80]))
  assert.equal((await raw.waitClosed()).code, 4400)
  const raw2 = new RawClient(`${server.url}/early`)
  raw2.ws.once('open', () => raw2.send(encodeSyncUpdate(POISON_UPDATE)))
  assert.equal((await raw2.waitClosed()).code, 4400)
  const check = connect(server.url, 'early')
  t.after(() => check.destroy())
  await waitFor(() => check.text.toString() === 'kept', { message: 'the room still serves its content' })
})
