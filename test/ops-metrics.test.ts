/**
 * /metrics in Prometheus text format: values follow connections, updates, storage
 * and unloads, checked by parsing the exposition; each server has its own registry.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startServer } from '../server/index.js'
import { connect, synced, tempDir, waitFor } from './helpers/index.js'
import { RawClient } from './helpers/raw-client.js'
import * as Y from 'yjs'
import WebSocket from 'ws'
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'
import { MESSAGE_KINDS, hocuspocusKindIndex, messageKindIndex } from '../server/observability/metrics.js'
import { encodeHpMessage, encodeHpToken } from '../server/transport/protocol-hocuspocus.js'
import { encodeSyncUpdate } from '../server/room/protocol.js'
import { prng, testSeed } from './helpers/index.js'
import { parseExposition, scrape, scrapeUntil, total, value } from './helpers/prometheus.js'

test('metrics follow connections, updates, persistence, compaction and unloads', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const server = await startServer({ dataDir: dir.path, roomGrace: 50, compactEvery: 10 })
  t.after(() => server.close())

  const before = await scrape(server.httpUrl)
  assert.equal(total(before, 'coedit_connections'), 0)
  assert.equal(value(before, 'coedit_rooms_loaded'), 0)
  for (const name of ['coedit_nodejs_eventloop_lag_seconds', 'coedit_process_resident_memory_bytes', 'coedit_nodejs_heap_size_used_bytes']) {
    assert.ok(before.has(name), `${name} is exposed`)
  }

  const a = connect(server.url, 'metrics-room')
  const b = connect(server.url, 'metrics-room')
  t.after(() => { a.destroy(); b.destroy() })
  await Promise.all([synced(a), synced(b)])
  const connected = await scrape(server.httpUrl)
  assert.equal(total(connected, 'coedit_connections'), 2)
  assert.equal(value(connected, 'coedit_rooms_loaded'), 1)
  assert.equal(total(connected, 'coedit_connections_opened_total'), 2)
  assert.equal(value(connected, 'coedit_room_loads_total'), 1)
  assert.equal(value(connected, 'coedit_room_load_seconds_count'), 1)

  const EDITS = 25
  for (let i = 0; i < EDITS; i++) a.text.insert(0, 'x')
  await waitFor(() => b.text.length === EDITS, { timeout: 10_000, message: 'b to see every edit' })
  const edited = await scrapeUntil(server.httpUrl, (s) => value(s, 'coedit_updates_applied_total{origin="connection"}') >= EDITS, 'updates_applied to count every edit')
  assert.ok(total(edited, 'coedit_messages_received_total', { type: 'sync_update' }) >= EDITS)
  // Every update reaches b (and, echoed, a) in a sync update; those applied in one tick go out as one.
  const relayed = total(edited, 'coedit_messages_sent_total', { type: 'sync_update' })
  assert.ok(relayed >= 2 && relayed <= 2 * EDITS, `sync updates sent: ${relayed}`)
  assert.equal(relayed % 2, 0, 'a and b get the same messages')
  assert.ok(total(edited, 'coedit_received_bytes_total', { type: 'sync_update' }) > total(before, 'coedit_received_bytes_total', { type: 'sync_update' }))
  assert.ok(value(edited, 'coedit_persistence_write_seconds_count') >= EDITS)
  const batches = value(edited, 'coedit_persistence_batch_size_count')
  assert.ok(batches >= 1 && batches <= EDITS, `batches: ${batches}`)
  assert.ok(value(edited, 'coedit_persistence_batch_size_sum') >= EDITS)
  assert.ok(value(edited, 'coedit_persistence_batch_seconds_count') === batches)
  // Compaction runs off the hot path, a moment after the updates that trigger it.
  await scrapeUntil(server.httpUrl, (s) => value(s, 'coedit_compactions_total') >= 1, 'compactEvery 10 to fold the log')
  assert.ok(value(edited, 'coedit_storage_bytes') > 0)

  b.destroy()
  await waitFor(async () => total(await scrape(server.httpUrl), 'coedit_connections') === 1, { message: 'one connection left' })
  a.destroy()
  const unloaded = await scrapeUntil(server.httpUrl, (s) => value(s, 'coedit_room_unloads_total') === 1, 'the room to unload')
  assert.equal(value(unloaded, 'coedit_rooms_loaded'), 0)
  assert.equal(total(unloaded, 'coedit_connections'), 0)
  const closes = [...unloaded].filter(([k]) => k.startsWith('coedit_connections_closed_total{')).reduce((n, [, v]) => n + v, 0)
  assert.equal(closes, 2)
})

test('a malformed message shows up as a close by code 4400', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const raw = await RawClient.open(`${server.url}/bad`)
  t.after(() => raw.close())
  raw.send(new Uint8Array([0xde, 0xad, 0xbe, 0xef]))
  assert.equal((await raw.waitClosed()).code, 4400)
  await waitFor(async () => total(await scrape(server.httpUrl), 'coedit_connections_closed_total', { code: '4400' }) === 1,
    { message: 'the close to be counted' })
})

test('two servers in one process keep separate registries', async (t) => {
  const one = await startServer()
  const two = await startServer()
  t.after(() => Promise.all([one.close(), two.close()]))
  const c = connect(one.url, 'only-on-one')
  t.after(() => c.destroy())
  await synced(c)
  assert.equal(total(await scrape(one.httpUrl), 'coedit_connections'), 1)
  assert.equal(total(await scrape(two.httpUrl), 'coedit_connections'), 0)
  assert.equal(value(await scrape(two.httpUrl), 'coedit_rooms_loaded'), 0)
})

test('--metrics-token: 401 without the bearer token, 200 with it', async (t) => {
  const server = await startServer({ metricsToken: 'scrape-me' })
  t.after(() => server.close())
  assert.equal((await fetch(`${server.httpUrl}/metrics`)).status, 401)
  assert.equal((await fetch(`${server.httpUrl}/metrics`, { headers: { Authorization: 'Bearer nope' } })).status, 401)
  const ok = await fetch(`${server.httpUrl}/metrics`, { headers: { Authorization: 'Bearer scrape-me' } })
  assert.equal(ok.status, 200)
  assert.match(ok.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
  assert.ok(parseExposition(await ok.text()).has('coedit_connections{protocol="y-websocket"}'))
})

test('connections and messages are counted per protocol: a Hocuspocus socket and a y-websocket one', async (t) => {
  const server = await startServer({ storage: 'memory' })
  t.after(() => server.close())
  const yws = connect(server.url, 'both')
  const doc = new Y.Doc()
  // ws implements the WebSocket API the provider needs; its types differ from the DOM's.
  const socket = new HocuspocusProviderWebsocket({ url: server.url, WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket })
  const hp = new HocuspocusProvider({ websocketProvider: socket, name: 'both', document: doc })
  hp.attach()
  t.after(() => { hp.destroy(); socket.destroy(); doc.destroy(); yws.destroy() })
  await synced(yws)
  await waitFor(() => hp.isSynced, { message: 'the Hocuspocus provider synced' })
  doc.getText('text').insert(0, 'hocus')
  await waitFor(() => yws.text.toString() === 'hocus', { message: 'the edit relayed' })
  await waitFor(() => !hp.hasUnsyncedChanges, { message: 'the edit acknowledged' })

  const s = await scrape(server.httpUrl)
  const of = (protocol: string, labels: Record<string, string> = {}) => (name: string): number => total(s, name, { protocol, ...labels })
  assert.equal(of('y-websocket')('coedit_connections'), 1)
  assert.equal(of('hocuspocus')('coedit_connections'), 1)
  assert.equal(of('hocuspocus')('coedit_connections_opened_total'), 1)
  // Hocuspocus frames are labelled by the message after the document name.
  assert.ok(of('hocuspocus', { type: 'auth' })('coedit_messages_received_total') >= 1, 'its token')
  assert.ok(of('hocuspocus', { type: 'sync_step1' })('coedit_messages_received_total') >= 1)
  assert.ok(of('hocuspocus', { type: 'sync_update' })('coedit_messages_received_total') >= 1, 'its edit')
  assert.ok(of('hocuspocus', { type: 'sync_status' })('coedit_messages_sent_total') >= 1, 'the stored acknowledgement')
  assert.ok(of('hocuspocus', { type: 'auth' })('coedit_messages_sent_total') >= 1, 'authenticated')
  assert.equal(of('hocuspocus', { type: 'other' })('coedit_messages_received_total'), 0, 'every frame it sent was classified')
  assert.ok(of('y-websocket', { type: 'sync_update' })('coedit_messages_sent_total') >= 1, 'the relay to y-websocket')
  assert.equal(of('y-websocket', { type: 'sync_status' })('coedit_messages_sent_total'), 0)
  assert.ok(of('hocuspocus', { type: 'sync_update' })('coedit_received_bytes_total') > 0)

  hp.destroy()
  socket.destroy()
  await waitFor(async () => total(await scrape(server.httpUrl), 'coedit_connections_closed_total', { protocol: 'hocuspocus' }) === 1, { message: 'the Hocuspocus close counted' })
  assert.equal(total(await scrape(server.httpUrl), 'coedit_connections_closed_total', { protocol: 'y-websocket' }), 0)
})

test('frame labels: hand-made Hocuspocus frames and seeded garbage are classified, never thrown on', (t) => {
  const hp = (address: string, message: Uint8Array): string => MESSAGE_KINDS[hocuspocusKindIndex(encodeHpMessage(address, message))]!
  const update = encodeSyncUpdate(new Uint8Array([0, 0]))
  assert.equal(hp('room', update), 'sync_update')
  assert.equal(hp('x'.repeat(300), update), 'sync_update', 'an address longer than one length byte')
  assert.equal(MESSAGE_KINDS[hocuspocusKindIndex(encodeHpToken('café ☕', 'token'))], 'auth')
  assert.equal(MESSAGE_KINDS[hocuspocusKindIndex(new Uint8Array([9]))], 'other', 'a ping')
  assert.equal(MESSAGE_KINDS[hocuspocusKindIndex(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]))], 'other', 'a length past 2^32')
  assert.equal(MESSAGE_KINDS[hocuspocusKindIndex(new Uint8Array([5, 1, 2]))], 'other', 'an address past the end')
  assert.equal(MESSAGE_KINDS[messageKindIndex(update)], 'sync_update')
  const seed = testSeed()
  t.diagnostic(`seed ${seed}`)
  const random = prng(seed)
  for (let i = 0; i < 10_000; i++) {
    const bytes = Uint8Array.from({ length: Math.floor(random() * 12) }, () => Math.floor(random() * 256))
    for (const index of [hocuspocusKindIndex(bytes), messageKindIndex(bytes)]) {
      assert.ok(Number.isInteger(index) && index >= 0 && index < MESSAGE_KINDS.length, `seed ${seed}: ${bytes.join(',')}`)
    }
  }
})
