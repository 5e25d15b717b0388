/**
 * The embedder's hooks (`startServer({ hooks })`, server/embedding/hooks.ts): `authenticate` decides
 * who gets in from a session cookie (or a token) for both protocols, with HTTP 401/403/500/503
 * at the upgrade; `connected`, `disconnected`, `loaded`, `unloaded` and `changed` fire with
 * the right arguments; and a hook that throws, rejects or never settles loses no edit.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import * as Y from 'yjs'
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'
import { startServer, MemoryStore, type ChangeOrigin, type Connection, type CoeditServer, type Hooks, type AuthenticateEvent } from '../server/index.js'
import { signToken } from '../server/transport/auth.js'
import { parseCookies } from '../server/transport/authorizer.js'
import { createLogger } from '../server/log.js'
import { connect, synced, waitFor, type Client } from './helpers/index.js'
import { scrapeUntil, value } from './helpers/prometheus.js'
import { POSTGRES_URL, REDIS_URL, clusterServicesMissing, deleteKeys, dropSchema, uniqueNames } from './helpers/services.js'

const SECRET = 'a-test-secret-that-is-long-enough-32b'

interface Session { id: string; name: string; rooms: string[]; access: 'read' | 'write' }
const SESSIONS: Record<string, Session> = {
  's-alice': { id: 'alice', name: 'Alice', rooms: ['notes', 'life'], access: 'write' },
  's-bob': { id: 'bob', name: 'Bob', rooms: ['notes'], access: 'read' },
  's-carol': { id: 'carol', name: 'Carol', rooms: ['notes'], access: 'write' },
}

/** An application's cookie check: no session is 401, a room not granted 403. */
const cookieHook = (seen: AuthenticateEvent[] = []): NonNullable<Hooks['authenticate']> => (event) => {
  seen.push(event)
  const session = SESSIONS[event.request.cookies.session ?? ''] ?? SESSIONS[event.token ?? '']
  if (!session) throw Object.assign(new Error('no session'), { status: 401 })
  if (!session.rooms.includes(event.room)) return false
  return { access: session.access, user: { id: session.id, name: session.name } }
}

/** A `ws` WebSocket class that sends these headers (a browser sends its cookies by itself). */
function withHeaders(headers: Record<string, string>): typeof globalThis.WebSocket {
  class HeaderSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { headers })
    }
  }
  // ws implements the WebSocket API the providers need; its types differ from the DOM's.
  return HeaderSocket as unknown as typeof globalThis.WebSocket
}

/** A stock y-websocket provider sending `cookie`. */
function cookieClient(url: string, room: string, cookie: string): Client {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(url, room, doc, { WebSocketPolyfill: withHeaders({ cookie }), disableBc: true, resyncInterval: -1 })
  return { doc, provider, text: doc.getText('text'), destroy: () => { provider.destroy(); doc.destroy() } }
}

/** The HTTP status a WebSocket upgrade gets (101 when it opens). */
function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers })
    ws.on('open', () => {
      ws.close()
      resolve(101)
    })
    ws.on('unexpected-response', (req, res) => {
      resolve(res.statusCode ?? 0)
      req.destroy()
    })
    ws.on('error', reject)
  })
}

function capture(): { stream: Writable; lines: () => Array<Record<string, unknown>> } {
  let text = ''
  const stream = new Writable({ write(chunk: Buffer, _e, done) { text += chunk.toString(); done() } })
  return { stream, lines: () => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) }
}

async function storedText(store: MemoryStore, room: string): Promise<string> {
  const doc = new Y.Doc()
  for (const u of (await store.load(room)).updates) Y.applyUpdate(doc, u)
  return doc.getText('text').toString()
}

function hpClient(url: string, name: string, options: { token?: string; headers?: Record<string, string> } = {}): { doc: Y.Doc; provider: HocuspocusProvider; destroy(): void } {
  const doc = new Y.Doc()
  const socket = new HocuspocusProviderWebsocket({ url, WebSocketPolyfill: withHeaders(options.headers ?? {}) })
  const provider = new HocuspocusProvider({ websocketProvider: socket, name, document: doc, token: options.token ?? '' })
  provider.attach()
  return { doc, provider, destroy: () => { provider.destroy(); socket.destroy(); doc.destroy() } }
}

test('authenticate: a session cookie lets in (101), no session is 401, another room 403; the JWT settings are not used', async (t) => {
  const seen: AuthenticateEvent[] = []
  const server = await startServer({ authSecret: SECRET, hooks: { authenticate: cookieHook(seen) } })
  t.after(() => server.close())
  const jwt = await signToken({ secret: SECRET, rooms: ['**'], access: 'write', ttl: 60_000 })

  assert.equal(await upgradeStatus(`${server.url}/notes`), 401, 'no cookie')
  assert.equal(await upgradeStatus(`${server.url}/notes`, { cookie: 'session=s-nobody' }), 401, 'unknown session')
  assert.equal(await upgradeStatus(`${server.url}/notes?token=${jwt}`), 401, 'a valid JWT is not what the hook checks')
  assert.equal(await upgradeStatus(`${server.url}/secret`, { cookie: 'session=s-alice' }), 403, 'a room the session does not grant')
  assert.equal(await upgradeStatus(`${server.url}/notes`, { cookie: 'theme=dark; session=s-alice', 'user-agent': 'hooks-test' }), 101)

  const last = seen[seen.length - 1]!
  assert.equal(last.room, 'notes')
  assert.equal(last.token, undefined)
  assert.equal(last.request.cookies.session, 's-alice')
  assert.equal(last.request.cookies.theme, 'dark')
  assert.equal(last.request.headers['user-agent'], 'hooks-test')
  assert.equal(last.request.ip, '127.0.0.1')
  // The token, as the client sent it: query parameter first, then Authorization: Bearer.
  assert.equal(await upgradeStatus(`${server.url}/notes?token=s-carol`), 101)
  assert.equal(seen[seen.length - 1]!.token, 's-carol')
  assert.equal(await upgradeStatus(`${server.url}/notes`, { authorization: 'Bearer s-carol' }), 101)
  assert.equal(seen[seen.length - 1]!.token, 's-carol')
})

test('authenticate → connected, changed, disconnected: the user the hook names is the author, and the history log records it', async (t) => {
  const store = new MemoryStore()
  const connected: Array<{ room: string; connection: Connection }> = []
  const disconnected: Array<{ room: string; connection: Connection; code: number }> = []
  const changes: Array<{ room: string; text: string; origin: ChangeOrigin }> = []
  const server = await startServer({
    storage: store,
    hooks: {
      authenticate: cookieHook(),
      connected: (e) => { connected.push(e) },
      disconnected: (e) => { disconnected.push(e) },
      changed: ({ room, update, origin }) => {
        const doc = new Y.Doc()
        Y.applyUpdate(doc, update)
        changes.push({ room, text: doc.getText('text').toString(), origin })
      },
    },
  })
  t.after(() => server.close())
  const alice = cookieClient(server.url, 'notes', 'session=s-alice')
  t.after(() => alice.destroy())
  await synced(alice)
  await waitFor(() => connected.length === 1, { message: 'connected' })
  assert.equal(connected[0]!.room, 'notes')
  assert.deepEqual({ ...connected[0]!.connection, id: undefined }, { id: undefined, user: { id: 'alice', name: 'Alice' }, access: 'write' })

  alice.text.insert(0, 'by alice')
  await waitFor(() => changes.length === 1, { message: 'changed' })
  assert.deepEqual(changes[0], { room: 'notes', text: 'by alice', origin: { kind: 'connection', user: { id: 'alice', name: 'Alice' } } })
  const log = await store.readLog('notes')
  assert.deepEqual(log.entries.map((e) => e.user), ['alice'])

  alice.provider.disconnect()
  await waitFor(() => disconnected.length === 1, { message: 'disconnected' })
  assert.equal(disconnected[0]!.connection, connected[0]!.connection, 'the same connection object')
  assert.equal(typeof disconnected[0]!.code, 'number')
})

test('read access from the hook: the reader sees the document, its edits are never stored, relayed or told as changes', async (t) => {
  const store = new MemoryStore()
  const changes: string[] = []
  const server = await startServer({ storage: store, hooks: { authenticate: cookieHook(), changed: ({ origin }) => { changes.push(origin.user?.id ?? '?') } } })
  t.after(() => server.close())
  const alice = cookieClient(server.url, 'notes', 'session=s-alice')
  const bob = cookieClient(server.url, 'notes', 'session=s-bob')
  t.after(() => { alice.destroy(); bob.destroy() })
  await Promise.all([synced(alice), synced(bob)])
  alice.text.insert(0, 'first')
  await waitFor(() => bob.text.toString() === 'first', { message: 'bob reads' })
  bob.text.insert(0, 'bob was here ')
  // Alice's next edit is handled after bob's refused one: then the store's text is known.
  alice.text.insert(alice.text.length, '!')
  await waitFor(() => bob.text.toString().endsWith('first!'), { message: 'bob reads the second edit' })
  await waitFor(() => changes.length === 2, { message: 'two changes' })
  assert.equal(await storedText(store, 'notes'), 'first!')
  assert.equal(alice.text.toString(), 'first!')
  assert.deepEqual(changes, ['alice', 'alice'])
})

test('Hocuspocus through the hook: the token of its auth message and the socket\'s cookies reach authenticate; refusals are per document', async (t) => {
  const seen: AuthenticateEvent[] = []
  const changes: ChangeOrigin[] = []
  const server = await startServer({ hooks: { authenticate: cookieHook(seen), changed: ({ origin }) => { changes.push(origin) } } })
  t.after(() => server.close())

  const byToken = hpClient(server.url, 'notes', { token: 's-carol' })
  t.after(() => byToken.destroy())
  await waitFor(() => byToken.provider.isSynced, { message: 'synced by token' })
  assert.equal(byToken.provider.authorizedScope, 'read-write')
  assert.equal(seen[0]!.token, 's-carol')
  byToken.doc.getText('text').insert(0, 'carol')
  await waitFor(() => changes.length === 1, { message: 'changed' })
  assert.deepEqual(changes[0], { kind: 'connection', user: { id: 'carol', name: 'Carol' } })

  const byCookie = hpClient(server.url, 'notes', { headers: { cookie: 'session=s-bob' } })
  t.after(() => byCookie.destroy())
  await waitFor(() => byCookie.provider.isSynced, { message: 'synced by cookie' })
  assert.equal(byCookie.provider.authorizedScope, 'readonly')
  assert.equal(seen[1]!.request.cookies.session, 's-bob')

  const refused = hpClient(server.url, 'secret', { token: 's-carol' })
  t.after(() => refused.destroy())
  const reason = await new Promise<string>((resolve) => refused.provider.on('authenticationFailed', ({ reason }: { reason: string }) => resolve(reason)))
  assert.equal(reason, 'refused')
  const anonymous = hpClient(server.url, 'notes')
  t.after(() => anonymous.destroy())
  const why = await new Promise<string>((resolve) => anonymous.provider.on('authenticationFailed', ({ reason }: { reason: string }) => resolve(reason)))
  assert.equal(why, 'no session', 'the message of an error with status 401 is the reason')
})

test('authenticate that breaks: a throw is 500, a wrong answer 500, no answer 503 after --auth-timeout (signal aborted); each counted as kind hook', async (t) => {
  const log = capture()
  let aborted = false
  const answers: Record<string, (e: AuthenticateEvent) => unknown> = {
    throws: () => { throw new Error('session store down') },
    rejects: async () => { throw new Error('session store down') },
    'bad access': () => ({ access: 'admin' }),
    'control characters in the user id': () => ({ access: 'write', user: { id: 'eve\u0007' } }),
    'user id too long': () => ({ access: 'write', user: { id: 'x'.repeat(257) } }),
    'nothing returned': () => undefined,
    hangs: (e) => new Promise(() => { e.signal.addEventListener('abort', () => { aborted = true }) }),
    'refuses with 403 and a reason': () => { throw Object.assign(new Error('not\nfor you'), { status: 403 }) },
  }
  const server = await startServer({
    logger: createLogger('info', log.stream),
    authTimeout: 300,
    hooks: { authenticate: (e) => answers[e.room]!(e) as ReturnType<NonNullable<Hooks['authenticate']>> },
  })
  t.after(() => server.close())
  const status = (room: string): Promise<number> => upgradeStatus(`${server.url}/${encodeURIComponent(room)}`)
  assert.equal(await status('throws'), 500)
  assert.equal(await status('rejects'), 500)
  assert.equal(await status('bad access'), 500)
  assert.equal(await status('control characters in the user id'), 500)
  assert.equal(await status('user id too long'), 500)
  assert.equal(await status('nothing returned'), 500)
  assert.equal(await status('hangs'), 503)
  assert.ok(aborted, 'the hook\'s signal was aborted')
  assert.equal(await status('refuses with 403 and a reason'), 403)
  const counted = await scrapeUntil(server.httpUrl, (m) => value(m, 'coedit_errors_total{kind="hook"}') === 7, 'seven hook errors')
  assert.equal(value(counted, 'coedit_errors_total{kind="hook"}'), 7, 'a deliberate refusal is not an error')
  const refusals = log.lines().filter((l) => l.event === 'upgrade_refused')
  assert.deepEqual(refusals.map((l) => l.code), ['AUTH_ERROR', 'AUTH_ERROR', 'AUTH_ERROR', 'AUTH_ERROR', 'AUTH_ERROR', 'AUTH_ERROR', 'AUTH_TIMEOUT', 'AUTH_REFUSED'])
  assert.equal(refusals[7]!.reason, 'not for you', 'control characters are not passed on')
  // A Hocuspocus document gets the same verdict.
  const hp = hpClient(server.url, 'throws')
  t.after(() => hp.destroy())
  const reason = await new Promise<string>((resolve) => hp.provider.on('authenticationFailed', ({ reason }: { reason: string }) => resolve(reason)))
  assert.equal(reason, 'internal error')
})

test('loaded, connected, disconnected, unloaded fire in order with the right arguments; loaded\'s document is a copy', async (t) => {
  const store = new MemoryStore()
  const seed = new Y.Doc()
  seed.getText('text').insert(0, 'stored before')
  await store.append('life', [Y.encodeStateAsUpdate(seed)])
  const log = capture()
  const told: string[] = []
  let loadedText = ''
  const server = await startServer({
    storage: store,
    roomGrace: 50,
    logger: createLogger('info', log.stream),
    hooks: {
      loaded: ({ room, document }) => {
        loadedText = document.getText('text').toString()
        // A hook writing to its copy: nothing reaches the room, and the log says so.
        document.getText('text').insert(0, 'LOST? ')
        told.push(`loaded ${room}`)
      },
      connected: ({ room, connection }) => { told.push(`connected ${room} ${connection.access} ${connection.user?.id ?? '-'}`) },
      disconnected: ({ room, code }) => { told.push(`disconnected ${room} ${code}`) },
      unloaded: ({ room }) => { told.push(`unloaded ${room}`) },
    },
  })
  t.after(() => server.close())
  const ws = new WebSocket(`${server.url}/life`)
  await new Promise((resolve) => ws.once('open', resolve))
  await waitFor(() => told.length === 2, { message: 'loaded and connected' })
  assert.equal(loadedText, 'stored before')
  const reader = connect(server.url, 'life')
  t.after(() => reader.destroy())
  await waitFor(() => reader.text.toString() === 'stored before', { message: 'the room as stored, without the hook\'s change' })
  reader.destroy()
  ws.close(4321, 'bye')
  await waitFor(() => told.includes('unloaded life'), { message: 'unloaded after the grace period' })
  assert.deepEqual(told.slice(0, 2), ['loaded life', 'connected life write -'])
  assert.ok(told.includes('disconnected life 4321'), told.join(', '))
  assert.equal(told[told.length - 1], 'unloaded life')
  assert.equal(await storedText(store, 'life'), 'stored before')
  assert.ok(log.lines().some((l) => l.event === 'hook_document_changed' && l.room === 'life'), 'the copy\'s change was logged')
})

for (const mode of ['throw', 'reject', 'never settle'] as const) {
  test(`hooks that ${mode} lose no edit and stop nothing`, async (t) => {
    const store = new MemoryStore()
    const bad = (): Promise<void> => {
      if (mode === 'throw') throw new Error('hook bug')
      return mode === 'reject' ? Promise.reject(new Error('hook bug')) : new Promise(() => {})
    }
    const hooks: Hooks = { connected: bad, disconnected: bad, loaded: bad, unloaded: bad, changed: bad }
    const server = await startServer({ storage: store, roomGrace: 50, hooks })
    t.after(() => server.close())
    const a = connect(server.url, 'r')
    const b = connect(server.url, 'r')
    t.after(() => { a.destroy(); b.destroy() })
    await Promise.all([synced(a), synced(b)])
    for (let i = 0; i < 20; i++) a.text.insert(a.text.length, `${i % 10}`)
    await waitFor(() => b.text.length === 20, { message: 'b has a\'s edits' })
    b.text.insert(0, 'b:')
    const expected = `b:${'01234567890123456789'}`
    await waitFor(() => a.text.toString() === expected && b.text.toString() === expected, { message: 'both see every edit' })
    await waitFor(async () => (await storedText(store, 'r')) === expected, { message: 'every edit stored' })
    if (mode !== 'never settle') {
      // loaded, 2 connected, 21 changed.
      await scrapeUntil(server.httpUrl, (m) => value(m, 'coedit_errors_total{kind="hook"}') >= 24, 'the hook errors counted')
    }
    a.destroy()
    b.destroy()
    await waitFor(() => server.registry.loadedCount === 0, { message: 'the room unloads all the same' })
    const c = connect(server.url, 'r')
    t.after(() => c.destroy())
    await waitFor(() => c.text.toString() === expected, { message: 'reloaded with everything' })
  })
}

test('a fault injected on the hook path of one room: its edits are stored and relayed, the hooks of other rooms keep firing', async (t) => {
  const store = new MemoryStore()
  const changed: string[] = []
  const server = await startServer({ storage: store, faults: ['hook:victim'], hooks: { changed: ({ room }) => { changed.push(room) } } })
  t.after(() => server.close())
  const [v1, v2, c1] = [connect(server.url, 'victim'), connect(server.url, 'victim'), connect(server.url, 'canary')]
  t.after(() => { v1.destroy(); v2.destroy(); c1.destroy() })
  await Promise.all([synced(v1), synced(v2), synced(c1)])
  v1.text.insert(0, 'kept')
  c1.text.insert(0, 'told')
  await waitFor(() => v2.text.toString() === 'kept', { message: 'relayed in the victim room' })
  await waitFor(() => changed.includes('canary'), { message: 'the canary\'s change told' })
  assert.equal(await storedText(store, 'victim'), 'kept')
  assert.ok(!changed.includes('victim'))
})

test('parseCookies: hostile cookie headers give a plain name → value map', () => {
  const cookies = parseCookies('__proto__=x; constructor=y; a=1; a=2; q="quoted"; bad=%E0%A4%A; enc=caf%C3%A9; novalue; =empty; sp = 3 ')
  assert.equal(Object.getPrototypeOf(cookies), null)
  assert.equal(cookies.__proto__, 'x')
  assert.equal(cookies.constructor, 'y')
  assert.equal(cookies.a, '1', 'the first of a repeated name')
  assert.equal(cookies.q, 'quoted')
  assert.equal(cookies.bad, '%E0%A4%A', 'a broken escape is kept as sent')
  assert.equal(cookies.enc, 'café')
  assert.equal(cookies.sp, '3')
  assert.ok(!('novalue' in cookies) && !('' in cookies))
  const many = parseCookies(Array.from({ length: 5000 }, (_, i) => `c${i}=${i}`).join('; '))
  assert.equal(Object.keys(many).length, 5000)
  assert.deepEqual({ ...parseCookies(undefined) }, {})
})

const cluster = await clusterServicesMissing()
test('cluster: changed fires on every process, with kind remote where another process stored the change', { skip: cluster }, async (t) => {
  const { schema, prefix } = uniqueNames('hooks')
  t.after(async () => { await dropSchema(schema); await deleteKeys(prefix) })
  const changes: Array<{ at: string; origin: ChangeOrigin; text: string }> = []
  const loaded: string[] = []
  const servers: CoeditServer[] = []
  for (const at of ['A', 'B']) {
    servers.push(await startServer({
      postgres: POSTGRES_URL, postgresSchema: schema, redis: REDIS_URL, redisPrefix: prefix, healInterval: 200,
      hooks: {
        authenticate: cookieHook(),
        loaded: ({ room }) => { loaded.push(`${at} ${room}`) },
        changed: ({ update, origin }) => {
          const doc = new Y.Doc()
          Y.applyUpdate(doc, update)
          changes.push({ at, origin, text: doc.getText('text').toString() })
        },
      },
    }))
  }
  t.after(() => Promise.all(servers.map((s) => s.close())))
  const a = cookieClient(servers[0]!.url, 'notes', 'session=s-alice')
  const b = cookieClient(servers[1]!.url, 'notes', 'session=s-carol')
  t.after(() => { a.destroy(); b.destroy() })
  await Promise.all([synced(a), synced(b)])
  a.text.insert(0, 'from A')
  await waitFor(() => b.text.toString() === 'from A', { message: 'B\'s client sees A\'s edit' })
  await waitFor(() => changes.length === 2, { message: 'both processes told' })
  assert.deepEqual(changes.find((c) => c.at === 'A'), { at: 'A', origin: { kind: 'connection', user: { id: 'alice', name: 'Alice' } }, text: 'from A' })
  assert.deepEqual(changes.find((c) => c.at === 'B'), { at: 'B', origin: { kind: 'remote' }, text: 'from A' })
  assert.deepEqual(loaded.sort(), ['A notes', 'B notes'])
})
