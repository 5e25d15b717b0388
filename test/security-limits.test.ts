/**
 * Every limit hit from a raw `ws` client: message size (1009), document size (4413),
 * message and byte rates (4429), connections per address (HTTP 429), rooms loaded
 * (least recently used idle room unloaded first, else 1013), room names (closed 4400,
 * never an unescaped key), implausible clocks (4400), and the outbound buffer of a
 * client that stops reading (4408) while a normal client keeps its latency.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import { TokenBucket } from '../server/transport/limits.js'
import { encodeAwareness, encodeQueryAwareness, encodeSyncStep1, encodeSyncUpdate } from '../server/room/protocol.js'
import { connect, synced, tempDir, upgrade, waitFor } from './helpers/index.js'
import { serverWithLogs } from './helpers/log-capture.js'
import { RawClient } from './helpers/raw-client.js'

/** A Yjs update inserting `text` from a fresh client. */
function textUpdate(text: string): Uint8Array {
  const doc = new Y.Doc()
  doc.getText('text').insert(0, text)
  return Y.encodeStateAsUpdate(doc)
}

/** A v1 update made by hand: structs of one client, then a delete set. */
function handUpdate(structs: { client: number; clock: number; write: (e: encoding.Encoder) => void; count: number } | undefined, deletes: Array<{ client: number; clock: number; len: number }>): Uint8Array {
  const e = encoding.createEncoder()
  if (structs) {
    encoding.writeVarUint(e, 1)
    encoding.writeVarUint(e, structs.count)
    encoding.writeVarUint(e, structs.client)
    encoding.writeVarUint(e, structs.clock)
    structs.write(e)
  } else {
    encoding.writeVarUint(e, 0)
  }
  encoding.writeVarUint(e, deletes.length)
  for (const d of deletes) {
    encoding.writeVarUint(e, d.client)
    encoding.writeVarUint(e, 1)
    encoding.writeVarUint(e, d.clock)
    encoding.writeVarUint(e, d.len)
  }
  return encoding.toUint8Array(e)
}

test('token bucket: bursts up to capacity, then refills at the rate', () => {
  const b = new TokenBucket(10, 20, 0)
  for (let i = 0; i < 20; i++) assert.ok(b.take(1, 0))
  assert.ok(!b.take(1, 0))
  assert.ok(b.take(1, 100), '100 ms refills one token')
  assert.ok(!b.take(1, 100))
  assert.ok(b.take(20, 10_000), 'never more than capacity')
  assert.ok(!b.take(1, 10_000))
})

test('a message over --max-message-size closes with 1009', async (t) => {
  const { server } = await serverWithLogs(t, { maxMessageSize: 1024 })
  const raw = await RawClient.open(`${server.url}/r`)
  t.after(() => raw.close())
  raw.send(encodeSyncUpdate(textUpdate('x'.repeat(2000))))
  assert.equal((await raw.waitClosed()).code, 1009)
})

test('updates that would take a room past --max-document-size are refused with 4413; the room stays usable', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const { server } = await serverWithLogs(t, { storage: 'leveldb', dataDir: dir.path, maxDocumentSize: 8 * 1024 })
  const raw = await RawClient.open(`${server.url}/big`)
  t.after(() => raw.close())
  await raw.waitForMessage('sync-step1')
  raw.send(encodeSyncUpdate(textUpdate('a'.repeat(5000))))
  raw.send(encodeSyncUpdate(textUpdate('b'.repeat(5000))))
  const closed = await raw.waitClosed()
  assert.equal(closed.code, 4413)
  await server.registry.flushAll()
  const stored = await server.store.load('big')
  assert.equal(stored.lastSeq, 1, 'only the first update was stored')

  // Others can still join, read, and make edits that fit.
  const reader = connect(server.url, 'big')
  t.after(() => reader.destroy())
  await synced(reader)
  await waitFor(() => reader.text.length === 5000, { message: 'the room still serves its document' })
  reader.text.insert(0, 'small edit')
  await waitFor(async () => (await server.store.load('big')).lastSeq === 2, { message: 'a small edit is still stored' })
  assert.ok(reader.provider.wsconnected)
})

test('more messages per second than --max-messages-per-second closes with 4429; a paced client is fine', async (t) => {
  const { server, logs } = await serverWithLogs(t, { maxMessagesPerSecond: 10 })
  const paced = await RawClient.open(`${server.url}/r`)
  const flood = await RawClient.open(`${server.url}/r`)
  t.after(() => { paced.close(); flood.close() })
  for (let i = 0; i < 20; i++) paced.send(encodeQueryAwareness())
  // The bucket holds 10 s worth (100 messages): 300 at once cannot pass.
  for (let i = 0; i < 300; i++) flood.send(encodeQueryAwareness())
  const closed = await flood.waitClosed()
  assert.equal(closed.code, 4429)
  assert.ok(logs.some((l) => l.event === 'rate_limited' && l.code === 'MESSAGE_RATE'))
  await waitFor(() => paced.messages.filter((m) => m.type === 'awareness').length === 20, { message: 'paced client served' })
  assert.equal(paced.closeInfo, undefined)
})

test('more bytes per second than --max-bytes-per-second closes with 4429', async (t) => {
  const { server, logs } = await serverWithLogs(t, { maxBytesPerSecond: 1000 })
  const raw = await RawClient.open(`${server.url}/r`)
  t.after(() => raw.close())
  // 10 s worth is 10,000 bytes: the third 4 KB message is over.
  for (let i = 0; i < 3; i++) raw.send(encodeSyncUpdate(textUpdate(String(i).repeat(4000))))
  assert.equal((await raw.waitClosed()).code, 4429)
  assert.ok(logs.some((l) => l.event === 'rate_limited' && l.code === 'BYTE_RATE'))
})

test('--max-connections-per-ip refuses the next upgrade with 429 and frees the slot on close', async (t) => {
  // Behind a trusted proxy the address comes from X-Forwarded-For: several clients from one test process.
  const { server } = await serverWithLogs(t, { maxConnectionsPerIp: 3, trustProxy: true })
  const from = (ip: string): Record<string, string> => ({ 'X-Forwarded-For': `10.9.8.7, ${ip}` })
  const open: WebSocket[] = []
  t.after(() => { for (const ws of open) ws.terminate() })
  for (let i = 0; i < 3; i++) {
    const r = await upgrade(`${server.url}/r${i}`, from('203.0.113.5'))
    assert.equal(r.status, 101)
    open.push(r.ws!)
  }
  assert.equal((await upgrade(`${server.url}/r`, from('203.0.113.5'))).status, 429)
  const other = await upgrade(`${server.url}/r`, from('203.0.113.6'))
  assert.equal(other.status, 101, 'another address is not affected')
  open.push(other.ws!)
  open.shift()!.close()
  await waitFor(async () => {
    const r = await upgrade(`${server.url}/r`, from('203.0.113.5'))
    if (r.ws) open.push(r.ws)
    return r.status === 101
  }, { message: 'a slot is free again' })

  // Loopback (a local tool, or an untrusted proxy) is not limited.
  const { server: local } = await serverWithLogs(t, { maxConnectionsPerIp: 2 })
  for (let i = 0; i < 4; i++) {
    const r = await upgrade(`${local.url}/r`, from('203.0.113.5'))
    assert.equal(r.status, 101, 'X-Forwarded-For is ignored without --trust-proxy, and loopback is exempt')
    open.push(r.ws!)
  }
})

test('--max-rooms unloads the least recently used idle room first, and refuses with 1013 when none is idle', async (t) => {
  const { server } = await serverWithLogs(t, { maxRooms: 2, roomGrace: 60_000 })
  const names = (): string[] => server.registry.rooms.map((r) => r.name).sort()
  const visit = async (room: string): Promise<void> => {
    const raw = await RawClient.open(`${server.url}/${room}`)
    await raw.waitForMessage('sync-step1')
    raw.ws.close()
    await raw.waitClosed()
    await waitFor(() => server.registry.rooms.find((r) => r.name === room)?.size === 0, { message: `${room} idle` })
  }
  await visit('a')
  await visit('b')
  await visit('a') // a is now more recently used than b
  assert.deepEqual(names(), ['a', 'b'])
  const c = await RawClient.open(`${server.url}/c`)
  t.after(() => c.close())
  await c.waitForMessage('sync-step1')
  assert.deepEqual(names(), ['a', 'c'], 'b, the least recently used idle room, was unloaded')

  const a = await RawClient.open(`${server.url}/a`)
  t.after(() => a.close())
  await a.waitForMessage('sync-step1')
  const d = await RawClient.open(`${server.url}/d`)
  t.after(() => d.close())
  const closed = await d.waitClosed()
  assert.equal(closed.code, 1013, 'every loaded room is in use: try again later')
  assert.deepEqual(names(), ['a', 'c'])
})

/** The close a refused name gets: after the upgrade, so that the stock provider does not retry. */
async function refusedName(url: string): Promise<{ code: number; reason: string }> {
  const { status, ws } = await upgrade(url)
  assert.equal(status, 101, url)
  return new Promise((resolve) => ws!.once('close', (code, reason) => resolve({ code, reason: reason.toString() })))
}

test('room names: too long, control characters or outside --room-name-pattern get 4400; odd names stay apart in storage', async (t) => {
  const { server } = await serverWithLogs(t, { maxRoomNameLength: 16, roomNamePattern: '[a-z0-9/._:-]+' })
  assert.equal((await refusedName(`${server.url}/${'a'.repeat(17)}`)).code, 4400)
  assert.equal((await refusedName(`${server.url}/a%00b`)).code, 4400)
  assert.equal((await refusedName(`${server.url}/Upper`)).code, 4400)
  const ok = await upgrade(`${server.url}/${'a'.repeat(16)}`)
  assert.equal(ok.status, 101)
  ok.ws!.terminate()

  // Names that would be dangerous as keys or paths are stored escaped and stay separate.
  const dir = await tempDir()
  t.after(() => dir.remove())
  const { server: s2 } = await serverWithLogs(t, { storage: 'leveldb', dataDir: dir.path })
  const tricky = ['../x', 'u:a:0000000000000001', 'a/../../b', '%2e%2e']
  for (const [i, name] of tricky.entries()) {
    const raw = await RawClient.open(`${s2.url}/${encodeURIComponent(name)}`)
    await raw.waitForMessage('sync-step1')
    raw.send(encodeSyncUpdate(textUpdate(`doc${i}`)))
    await waitFor(async () => (await s2.store.load(name)).lastSeq === 1, { message: `${name} stored` })
    raw.close()
  }
  for (const [i, name] of tricky.entries()) {
    const doc = new Y.Doc()
    for (const u of (await s2.store.load(name)).updates) Y.applyUpdate(doc, u)
    assert.equal(doc.getText('text').toString(), `doc${i}`, `${name} holds only its own update`)
  }
  const listed = (await s2.store.listRooms()).map((r) => r.name).sort()
  assert.deepEqual(listed, [...tricky].sort())
})

test('updates claiming absurd clocks or deleted ranges are refused with 4400 before storage', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const { server } = await serverWithLogs(t, { storage: 'leveldb', dataDir: dir.path, maxClockAdvance: 1_000_000 })
  const absurd: Array<[string, Uint8Array]> = [
    ['a deleted range of 2^52 items', handUpdate(undefined, [{ client: 7, clock: 0, len: 2 ** 52 }])],
    ['an item at clock 2^50', handUpdate({ client: 7, clock: 2 ** 50, count: 1, write: (e) => { encoding.writeUint8(e, 0); encoding.writeVarUint(e, 1) } }, [])],
    ['a GC struct of length 2^45', handUpdate({ client: 9, clock: 0, count: 1, write: (e) => { encoding.writeUint8(e, 0); encoding.writeVarUint(e, 2 ** 45) } }, [])],
    ['a clock just past the allowed advance', handUpdate({ client: 11, clock: 1_000_000, count: 1, write: (e) => { encoding.writeUint8(e, 0); encoding.writeVarUint(e, 1) } }, [])],
  ]
  for (const [name, update] of absurd) {
    assert.doesNotThrow(() => Y.decodeUpdate(update), `${name}: a well-formed update`)
    const raw = await RawClient.open(`${server.url}/clocks`)
    await raw.waitForMessage('sync-step1')
    raw.send(encodeSyncUpdate(update))
    const closed = await raw.waitClosed()
    assert.equal(closed.code, 4400, name)
    assert.match(closed.reason, /IMPLAUSIBLE_CLOCK/, name)
  }
  // A large but real edit passes.
  const raw = await RawClient.open(`${server.url}/clocks`)
  t.after(() => raw.close())
  await raw.waitForMessage('sync-step1')
  raw.send(encodeSyncUpdate(textUpdate('z'.repeat(100_000))))
  await waitFor(async () => (await server.store.load('clocks')).lastSeq === 1, { message: 'the real edit stored' })
  await server.registry.flushAll()
  assert.equal((await server.store.load('clocks')).lastSeq, 1, 'none of the absurd updates was stored')
})

test('a client that stops reading is cut off with 4408 while a normal client keeps getting every edit', async (t) => {
  const { server, logs } = await serverWithLogs(t, { maxBufferedBytes: 256 * 1024 })
  const writer = connect(server.url, 'flood')
  const normal = connect(server.url, 'flood')
  t.after(() => { writer.destroy(); normal.destroy() })
  await Promise.all([synced(writer), synced(normal)])
  const slow = await RawClient.open(`${server.url}/flood`)
  t.after(() => slow.close())
  await slow.waitForMessage('sync-step1')
  // Stop reading: the kernel buffers fill, then the server's queue for this peer grows.
  slow.ws.pause()

  const chunk = 'x'.repeat(200 * 1024)
  let cut = false
  for (let i = 0; i < 200 && !cut; i++) {
    writer.text.insert(writer.text.length, chunk)
    await waitFor(() => normal.text.length === writer.text.length, { timeout: 15_000, message: 'normal client keeps up' })
    cut = logs.some((l) => l.event === 'slow_consumer')
  }
  assert.ok(cut, 'the slow reader was cut off')
  const closeLine = await waitFor(() => logs.find((l) => l.event === 'connection_close' && l.sent === 4408), { timeout: 10_000, message: 'its connection closed with 4408' })
  assert.ok(closeLine)

  // After the flood, small edits still reach the normal client (their latency is printed).
  const latencies: number[] = []
  for (let i = 0; i < 5; i++) {
    const started = performance.now()
    writer.text.insert(0, 'k')
    const expected = writer.text.length
    await waitFor(() => normal.text.length === expected, { interval: 1, message: 'small edit relayed' })
    latencies.push(performance.now() - started)
  }
  t.diagnostic(`small edits after the flood reached the normal client in ${latencies.map((ms) => ms.toFixed(1)).join(', ')} ms`)
  assert.ok(normal.provider.wsconnected && writer.provider.wsconnected)
})

test('forged updates Yjs would mishandle are refused or trimmed before storage (found by the fuzz suite)', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const { server, logs } = await serverWithLogs(t, { storage: 'leveldb', dataDir: dir.path })
  const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))
  const roomText = (): string => server.registry.rooms.find((r) => r.name === 'found')!.doc.getText('text').toString()

  // Client 1004's item at clock 3 whose origin is its own clock 5: Yjs does not treat it as missing and throws.
  const raw = await RawClient.open(`${server.url}/found`)
  await raw.waitForMessage('sync-step1')
  raw.send(encodeSyncUpdate(hex('0101ec0703c4ec0705ec0702016100')))
  const closed = await raw.waitClosed()
  assert.equal(closed.code, 4400)
  assert.match(closed.reason, /IMPLAUSIBLE_CLOCK/)

  // Sent back to back (the second arrives while the first is still being stored):
  // a garbage-collected range then content over it, which Yjs fails to integrate from an
  // offset; and a genuine edit then a longer forgery of the same IDs, which a merged
  // reload would prefer over what everyone has.
  const genuine = new Y.Doc()
  genuine.clientID = 2000
  genuine.getText('text').insert(0, 'abc')
  const forged = new Y.Doc()
  forged.clientID = 2000
  forged.getText('text').insert(0, 'FORGED-LONGER')
  const raw2 = await RawClient.open(`${server.url}/found`)
  t.after(() => raw2.close())
  await raw2.waitForMessage('sync-step1')
  raw2.send(encodeSyncUpdate(hex('0101ea0700000100')))
  raw2.send(encodeSyncUpdate(hex('0101ea07000401047465787402616200')))
  raw2.send(encodeSyncUpdate(Y.encodeStateAsUpdate(genuine)))
  raw2.send(encodeSyncUpdate(Y.encodeStateAsUpdate(forged)))
  const from = raw2.messages.length
  raw2.send(encodeSyncStep1(Y.encodeStateVector(new Y.Doc())))
  await raw2.waitForMessage('sync-step2', from)
  await server.registry.flushAll()

  assert.deepEqual(logs.filter((l) => (l.level as number) >= 50), [], 'nothing failed after storage')
  const runtime = roomText()
  assert.ok(runtime.startsWith('abc'), `the genuine edit stands: ${runtime}`)
  const stored = await server.store.load('found')
  const merged = new Y.Doc()
  Y.applyUpdate(merged, Y.mergeUpdates(stored.updates))
  assert.equal(merged.getText('text').toString(), runtime, 'a merged reload gives what everyone saw')
  const oneByOne = new Y.Doc()
  for (const u of stored.updates) Y.applyUpdate(oneByOne, u)
  assert.equal(oneByOne.getText('text').toString(), runtime)
})

test('--max-new-rooms-per-minute: past its budget an address opening rooms with nothing stored is closed with 4429, nothing stored; existing rooms and loopback are not limited', async (t) => {
  const { server, logs } = await serverWithLogs(t, { maxNewRoomsPerMinute: 3, trustProxy: true })
  const from = (ip: string): WebSocket.ClientOptions => ({ headers: { 'X-Forwarded-For': ip } })
  const open: RawClient[] = []
  t.after(() => { for (const c of open) c.close() })
  const join = async (room: string, options?: WebSocket.ClientOptions): Promise<RawClient> => {
    const c = await RawClient.open(`${server.url}/${room}`, options)
    open.push(c)
    return c
  }
  /** Joined for good: an update it sends gets stored. */
  const stores = async (c: RawClient, room: string): Promise<void> => {
    const before = (await server.store.load(room)).lastSeq
    c.send(encodeSyncUpdate(textUpdate(`from ${room}`)))
    await waitFor(async () => (await server.store.load(room)).lastSeq > before, { message: `an update to ${room} to be stored` })
  }
  const existing = await join('existing')
  await stores(existing, 'existing')

  for (let i = 0; i < 3; i++) await stores(await join(`new-${i}`, from('203.0.113.9')), `new-${i}`)
  // Over budget: closed before the update it sent at once is applied.
  const over = await join('new-3', from('203.0.113.9'))
  over.send(encodeSyncUpdate(textUpdate('spam')))
  assert.equal((await over.waitClosed()).code, 4429)
  // Two at once into one new room (each finds it empty): both refused.
  const twins = await Promise.all([join('new-4', from('203.0.113.9')), join('new-4', from('203.0.113.9'))])
  for (const c of twins) assert.equal((await c.waitClosed()).code, 4429)
  await server.registry.flushAll()
  for (const room of ['new-3', 'new-4']) assert.equal((await server.store.load(room)).updates.length, 0, `nothing of ${room} stored`)
  assert.ok(logs.some((l) => l.event === 'room_creation_limited' && l.ip === '203.0.113.9'))

  // Rooms that exist are joined as before; another address has its own budget; loopback has none.
  await stores(await join('existing', from('203.0.113.9')), 'existing')
  await stores(await join('new-0', from('203.0.113.9')), 'new-0')
  await stores(await join('other-new', from('203.0.113.10')), 'other-new')
  for (let i = 0; i < 5; i++) await stores(await join(`local-${i}`), `local-${i}`)
})
