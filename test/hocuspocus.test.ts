/**
 * Hocuspocus clients (`@hocuspocus/provider`, unmodified) against coedit: they connect to
 * the root URL, authenticate each document with its own token message, share one socket
 * between documents, and hear a sync status for each of their document messages only once
 * it is stored.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import WebSocket from 'ws'
import { Writable } from 'node:stream'
import * as encoding from 'lib0/encoding'
import * as common from '@hocuspocus/common'
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'
import { startServer, type StatelessEvent } from '../server/index.js'
import { createLogger } from '../server/log.js'
import { signToken } from '../server/transport/auth.js'
import { MemoryStore } from '../server/persistence/memory.js'
import { ControlledStore, gate } from './helpers/controlled-store.js'
import { connect, prng, synced, tempDir, testSeed, waitFor } from './helpers/index.js'
import { startChildServer, type ChildServer } from './helpers/child-server.js'
import { ProtocolError, encodeSyncUpdate } from '../server/room/protocol.js'
import {
  decodeHpAuth, decodeHpFrame, decodeHpStateless, encodeHpAuthenticated, encodeHpDenied, encodeHpMessage, encodeHpToken,
} from '../server/transport/protocol-hocuspocus.js'

const SECRET = 'a-test-secret-that-is-long-enough-32b'

interface HpClient {
  doc: Y.Doc
  provider: HocuspocusProvider
  socket: HocuspocusProviderWebsocket
  destroy(): void
}

function hpSocket(url: string): HocuspocusProviderWebsocket {
  // ws implements the WebSocket API the provider needs; its types differ from the DOM's.
  return new HocuspocusProviderWebsocket({ url, WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket })
}

function hpConnect(url: string, name: string, options: { token?: string; socket?: HocuspocusProviderWebsocket } = {}): HpClient {
  const doc = new Y.Doc()
  const socket = options.socket ?? hpSocket(url)
  const provider = new HocuspocusProvider({ websocketProvider: socket, name, document: doc, token: options.token ?? '' })
  provider.attach()
  return {
    doc,
    provider,
    socket,
    destroy: () => {
      provider.destroy()
      if (!options.socket) socket.destroy()
      doc.destroy()
    },
  }
}

test('a Hocuspocus provider and a y-websocket provider co-edit one room and see each other\'s presence', async (t) => {
  const server = await startServer({ port: 0 })
  t.after(() => server.close())
  const hp = hpConnect(server.url, 'shared notes')
  const yws = connect(server.url, 'shared%20notes')
  t.after(() => { hp.destroy(); yws.destroy() })
  await waitFor(() => hp.provider.isSynced, { message: 'hocuspocus provider synced' })
  await synced(yws)

  hp.doc.getText('text').insert(0, 'from hocuspocus. ')
  yws.text.insert(0, 'from y-websocket. ')
  await waitFor(() => hp.doc.getText('text').toString() === yws.text.toString() && yws.text.length > 30, { message: 'convergence' })

  hp.provider.setAwarenessField('user', { name: 'Hocus' })
  yws.provider.awareness.setLocalStateField('user', { name: 'Websocket' })
  const names = (states: Map<number, Record<string, unknown>>): string[] => [...states.values()].map((s) => (s.user as { name?: string } | undefined)?.name ?? '').sort()
  await waitFor(() => names(yws.provider.awareness.getStates()).includes('Hocus'), { message: 'y-websocket sees the Hocuspocus user' })
  await waitFor(() => names(hp.provider.awareness!.getStates()).includes('Websocket'), { message: 'Hocuspocus sees the y-websocket user' })
})

test('two documents over one Hocuspocus socket stay separate', async (t) => {
  const server = await startServer({ port: 0 })
  t.after(() => server.close())
  const socket = hpSocket(server.url)
  const a = hpConnect(server.url, 'doc-a', { socket })
  const b = hpConnect(server.url, 'doc-b', { socket })
  t.after(() => { a.destroy(); b.destroy(); socket.destroy() })
  await waitFor(() => a.provider.isSynced && b.provider.isSynced, { message: 'both synced' })
  a.doc.getText('text').insert(0, 'A')
  b.doc.getText('text').insert(0, 'B')
  const readerA = connect(server.url, 'doc-a')
  const readerB = connect(server.url, 'doc-b')
  t.after(() => { readerA.destroy(); readerB.destroy() })
  await waitFor(() => readerA.text.toString() === 'A' && readerB.text.toString() === 'B', { message: 'each room has its own text' })
})

test('tokens: a missing token is refused, a read token sees the document but its edits are not stored', async (t) => {
  const store = new MemoryStore()
  const server = await startServer({ port: 0, storage: store, authSecret: SECRET })
  t.after(() => server.close())
  const writer = await signToken({ secret: SECRET, rooms: ['team/*'], access: 'write', ttl: 3_600_000 })
  const reader = await signToken({ secret: SECRET, rooms: ['team/*'], access: 'read', ttl: 3_600_000 })

  const refused = hpConnect(server.url, 'team/plan')
  t.after(() => refused.destroy())
  const reason = await new Promise<string>((resolve) => refused.provider.on('authenticationFailed', ({ reason }: { reason: string }) => resolve(reason)))
  assert.match(reason, /token/)

  const w = hpConnect(server.url, 'team/plan', { token: writer })
  t.after(() => w.destroy())
  await waitFor(() => w.provider.isSynced, { message: 'writer synced' })
  assert.equal(w.provider.authorizedScope, 'read-write')
  w.doc.getText('text').insert(0, 'written')
  await waitFor(() => !w.provider.hasUnsyncedChanges, { message: 'writer saved' })

  const r = hpConnect(server.url, 'team/plan', { token: reader })
  t.after(() => r.destroy())
  await waitFor(() => r.doc.getText('text').toString() === 'written', { message: 'reader receives the document' })
  assert.equal(r.provider.authorizedScope, 'readonly')
  // Its sync step 2 carried nothing new: answered "applied", so a reader is not stuck "saving".
  await waitFor(() => !r.provider.hasUnsyncedChanges, { message: 'reader has nothing unsynced' })
  r.doc.getText('text').insert(0, 'not allowed ')
  await waitFor(() => r.provider.hasUnsyncedChanges, { message: 'reader edit stays unsynced' })
  // The writer's next edit is stored after the reader's refused one was handled: the
  // store holds the writer's text only.
  w.doc.getText('text').insert(7, '!')
  await waitFor(() => !w.provider.hasUnsyncedChanges, { message: 'writer saved again' })
  const stored = new Y.Doc()
  for (const u of (await store.load('team/plan')).updates) Y.applyUpdate(stored, u)
  assert.equal(stored.getText('text').toString(), 'written!')
})

test('stateless messages reach the hook, which can broadcast them to the room\'s other connections', async (t) => {
  const seen: StatelessEvent[] = []
  const server = await startServer({
    port: 0,
    hooks: {
      stateless: (event) => {
        seen.push(event)
        event.broadcast(`echo:${event.payload}`)
      },
    },
  })
  t.after(() => server.close())
  const a = hpConnect(server.url, 'chat')
  const b = hpConnect(server.url, 'chat')
  t.after(() => { a.destroy(); b.destroy() })
  await waitFor(() => a.provider.isSynced && b.provider.isSynced, { message: 'both synced' })
  const received: string[] = []
  b.provider.on('stateless', ({ payload }: { payload: string }) => received.push(payload))
  a.provider.on('stateless', ({ payload }: { payload: string }) => received.push(`a got ${payload}`))
  a.provider.sendStateless('hello')
  await waitFor(() => received.includes('echo:hello'), { message: 'b receives the broadcast' })
  assert.equal(seen.length, 1)
  assert.equal(seen[0]!.room, 'chat')
  assert.equal(seen[0]!.payload, 'hello')
  assert.ok(!received.includes('a got echo:hello'), 'the sender is not sent its own broadcast')
})

test('a stateless hook that throws is contained: the document keeps syncing', async (t) => {
  const server = await startServer({ port: 0, hooks: { stateless: () => { throw new Error('hook bug') } } })
  t.after(() => server.close())
  const a = hpConnect(server.url, 'room')
  t.after(() => a.destroy())
  await waitFor(() => a.provider.isSynced, { message: 'synced' })
  a.provider.sendStateless('boom')
  a.doc.getText('text').insert(0, 'still saved')
  await waitFor(() => !a.provider.hasUnsyncedChanges, { message: 'edit saved after the hook threw' })
})

test('the sync status reaches the provider only once the update is stored', async (t) => {
  const store = new ControlledStore(new MemoryStore())
  const server = await startServer({ port: 0, storage: store })
  t.after(() => server.close())
  const a = hpConnect(server.url, 'held')
  t.after(() => a.destroy())
  await waitFor(() => a.provider.isSynced && !a.provider.hasUnsyncedChanges, { message: 'synced' })
  const held = gate()
  let reached!: () => void
  const arrived = new Promise<void>((resolve) => { reached = resolve })
  store.beforeAppend = async () => {
    reached()
    await held.promise
  }
  a.doc.getText('text').insert(0, 'pending')
  await arrived
  // The server has the update in hand but not on disk: nothing is confirmed yet.
  assert.equal(a.provider.unsyncedChanges, 1)
  const other = connect(server.url, 'held')
  t.after(() => other.destroy())
  await synced(other)
  assert.equal(other.text.toString(), '', 'nobody is served the update before it is stored')
  assert.equal(a.provider.unsyncedChanges, 1)
  held.open()
  await waitFor(() => !a.provider.hasUnsyncedChanges, { message: 'synced once stored' })
})

test('kill -9 right after the provider counts its edits as synced loses none of them', async (t) => {
  const dir = await tempDir()
  let server: ChildServer | undefined = await startChildServer(['--data', dir.path])
  const clients: HpClient[] = []
  t.after(async () => {
    for (const c of clients) c.destroy()
    await server?.kill('SIGKILL')
    await dir.remove()
  })
  const a = hpConnect(server.url, 'durable')
  clients.push(a)
  await waitFor(() => a.provider.isSynced, { message: 'synced' })
  const text = a.doc.getText('text')
  for (let i = 0; i < 200; i++) text.insert(text.length, String(i % 10))
  await waitFor(() => !a.provider.hasUnsyncedChanges, { timeout: 15_000, message: 'every edit confirmed' })
  const expected = text.toString()
  await server.kill('SIGKILL')

  server = await startChildServer(['--data', dir.path])
  const after = connect(server.url, 'durable')
  t.after(() => after.destroy())
  await synced(after, 15_000)
  assert.equal(after.text.toString(), expected)
})

test('malformed Hocuspocus frames close only that socket with 4400; messages before a token are dropped', async (t) => {
  const server = await startServer({ port: 0 })
  t.after(() => server.close())
  const canary = connect(server.url, 'canary')
  t.after(() => canary.destroy())
  await synced(canary)
  const closeCode = (frame: Uint8Array): Promise<number> => new Promise((resolve, reject) => {
    const ws = new WebSocket(server.url)
    ws.on('open', () => ws.send(frame))
    ws.on('close', (code) => resolve(code))
    ws.on('error', reject)
  })
  // A declared address length beyond the frame.
  assert.equal(await closeCode(new Uint8Array([40, 1, 2])), 4400)
  // An update for a document that never sent its token (what was in flight when a
  // document was refused or closed) is dropped, not applied.
  const early = new WebSocket(server.url)
  t.after(() => early.close())
  await new Promise((resolve) => early.on('open', resolve))
  const stray = new Y.Doc()
  stray.getText('text').insert(0, 'never applied')
  early.send(encodeHpMessage('canary', encodeSyncUpdate(Y.encodeStateAsUpdate(stray))))
  early.send(encodeHpToken('canary', ''))
  await new Promise<void>((resolve) => early.on('message', (data: Buffer) => { if (decodeHpFrame(new Uint8Array(data)).kind === 'document') resolve() }))
  // An unknown message type after authenticating.
  const ws = new WebSocket(server.url)
  const code = await new Promise<number>((resolve, reject) => {
    ws.on('open', () => {
      ws.send(encodeHpToken('doc', ''))
      ws.send(encodeHpMessage('doc', new Uint8Array([42])))
    })
    ws.on('close', (c) => resolve(c))
    ws.on('error', reject)
  })
  assert.equal(code, 4400)
  canary.text.insert(0, 'still serving')
  const check = connect(server.url, 'canary')
  t.after(() => check.destroy())
  await waitFor(() => check.text.toString() === 'still serving', { message: 'canary room keeps serving' })
  assert.equal(early.readyState, WebSocket.OPEN)
})

test('a document name the server refuses gets "permission denied" for that document only', async (t) => {
  const server = await startServer({ port: 0 })
  t.after(() => server.close())
  const socket = hpSocket(server.url)
  const bad = hpConnect(server.url, 'bad\u0007name', { socket })
  const good = hpConnect(server.url, 'good', { socket })
  t.after(() => { bad.destroy(); good.destroy(); socket.destroy() })
  const reason = await new Promise<string>((resolve) => bad.provider.on('authenticationFailed', ({ reason }: { reason: string }) => resolve(reason)))
  assert.match(reason, /control characters/)
  await waitFor(() => good.provider.isSynced, { message: 'the other document on the socket syncs' })
})

test('the codec writes what @hocuspocus/common writes, and random garbage only raises ProtocolError', async () => {
  const theirs = (address: string, write: (e: encoding.Encoder) => void): Uint8Array => {
    const e = encoding.createEncoder()
    encoding.writeVarString(e, address)
    write(e)
    return encoding.toUint8Array(e)
  }
  assert.deepEqual(encodeHpAuthenticated('d\u0000s', 'readonly'), theirs('d\u0000s', (e) => { encoding.writeVarUint(e, 2); common.writeAuthenticated(e, 'readonly') }))
  assert.deepEqual(encodeHpDenied('doc', 'no'), theirs('doc', (e) => { encoding.writeVarUint(e, 2); common.writePermissionDenied(e, 'no') }))
  assert.deepEqual(encodeHpToken('doc', 'tok'), theirs('doc', (e) => { encoding.writeVarUint(e, 2); common.writeAuthentication(e, 'tok') }))
  const auth = decodeHpFrame(encodeHpToken('doc\u0000session', 'tok'))
  assert.ok(auth.kind === 'document')
  assert.equal(auth.document, 'doc')
  assert.equal(auth.address, 'doc\u0000session')
  assert.deepEqual(decodeHpAuth(auth.message), { token: 'tok', providerVersion: undefined })
  const seed = testSeed()
  const random = prng(seed)
  for (let i = 0; i < 2000; i++) {
    const bytes = new Uint8Array(Math.floor(random() * 12)).map(() => Math.floor(random() * 256))
    try {
      const frame = decodeHpFrame(bytes)
      if (frame.kind === 'document' && frame.type === 2) decodeHpAuth(frame.message)
      if (frame.kind === 'document' && frame.type === 5) decodeHpStateless(frame.message)
    } catch (err) {
      assert.ok(err instanceof ProtocolError, `seed ${seed}: ${String(err)}`)
    }
  }
})

test('opening documents with nothing stored takes from the address\'s new-room budget, as for y-websocket', async (t) => {
  const server = await startServer({ port: 0, maxNewRoomsPerMinute: 1, loopbackExempt: false })
  t.after(() => server.close())
  const socket = hpSocket(server.url)
  const first = hpConnect(server.url, 'new-1', { socket })
  t.after(() => { first.destroy(); socket.destroy() })
  await waitFor(() => first.provider.isSynced, { message: 'the first new document opens' })
  const second = hpConnect(server.url, 'new-2', { socket })
  t.after(() => second.destroy())
  const reason = await new Promise<string>((resolve) => second.provider.on('authenticationFailed', ({ reason }: { reason: string }) => resolve(reason)))
  assert.match(reason, /too many new rooms/)
  assert.equal((await server.store.load('new-2')).updates.length, 0, 'nothing of the refused document is stored')
  // The socket and its first document carry on.
  first.doc.getText('text').insert(0, 'still here')
  await waitFor(() => !first.provider.hasUnsyncedChanges, { message: 'the first document still saves' })
})

test('a socket opening more than 100 documents is closed with 4429', async (t) => {
  const server = await startServer({ port: 0, authSecret: SECRET })
  t.after(() => server.close())
  const ws = new WebSocket(server.url)
  t.after(() => ws.terminate())
  const code = await new Promise<number>((resolve, reject) => {
    ws.on('open', () => { for (let i = 0; i < 101; i++) ws.send(encodeHpToken(`doc-${i}`, 'not-a-valid-token')) })
    ws.on('close', (c) => resolve(c))
    ws.on('error', reject)
  })
  assert.equal(code, 4429)
})

test('a socket holding more than 5 MiB for documents not open yet is closed with 4429; nothing of it is applied, other rooms serve on', async (t) => {
  const store = new ControlledStore(new MemoryStore())
  // The document's room never finishes loading while the test sends: its messages are held.
  const loading = gate()
  store.beforeLoad = (room) => (room === 'held' ? loading.promise : undefined)
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    },
  })
  const server = await startServer({ port: 0, storage: store, logger: createLogger('warn', sink) })
  t.after(async () => {
    loading.open()
    await server.close()
  })
  const canary = connect(server.url, 'canary')
  t.after(() => canary.destroy())
  await synced(canary)

  const ws = new WebSocket(server.url)
  t.after(() => ws.terminate())
  const seen: { closed?: { code: number; reason: string } } = {}
  ws.on('close', (code, reason) => { seen.closed = { code, reason: reason.toString() } })
  await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject) })
  const handled = (): Promise<void> => new Promise((resolve) => { ws.once('pong', () => resolve()); ws.ping() })
  ws.send(encodeHpToken('held', ''))
  // Sync messages of 64 KiB each (an update the room would refuse, were it ever applied).
  const message = new Uint8Array(64 * 1024)
  message[0] = 0
  message[1] = 2
  const limit = 5 * 1024 * 1024
  for (let held = 0; held + message.length <= limit; held += message.length) ws.send(encodeHpMessage('held', message))
  await handled()
  assert.equal(ws.readyState, WebSocket.OPEN, 'exactly 5 MiB held: the socket stays')
  // The room of another document on the same socket keeps serving meanwhile.
  canary.text.insert(0, 'serving')
  const check = connect(server.url, 'canary')
  t.after(() => check.destroy())
  await waitFor(() => check.text.toString() === 'serving', { message: 'the canary room serves while messages are held' })

  ws.send(encodeHpMessage('held', message.subarray(0, 1024)))
  const { code, reason } = (await waitFor(() => seen.closed, { message: 'the server closes the socket' }))!
  assert.equal(code, 4429)
  assert.equal(reason, 'too much sent before authentication')
  assert.deepEqual(lines.filter((l) => l.event === 'queue_full').map((l) => l.limit), [limit], 'logged once, with the limit')

  loading.open()
  const after = connect(server.url, 'held')
  t.after(() => after.destroy())
  await synced(after)
  assert.equal(after.text.toString(), '')
  assert.equal((await server.store.load('held')).updates.length, 0, 'nothing held was stored')
})
