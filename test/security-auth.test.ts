/**
 * Access control at the upgrade: tokens (HS256, ES256, RS256; query parameter or
 * Bearer header; room globs; expiry at the upgrade and during the session), read-only
 * connections, and the browser origin check. A refused upgrade opens no WebSocket.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { SignJWT } from 'jose'
import { startServer, type CoeditServer, type StartOptions } from '../server/index.js'
import { createLogger } from '../server/log.js'
import { parseAllowedOrigins, roomMatches, signToken } from '../server/transport/auth.js'
import { encodeSyncStep1, encodeSyncUpdate } from '../server/room/protocol.js'
import { connect, synced, tempDir, waitFor } from './helpers/index.js'
import { RawClient } from './helpers/raw-client.js'
import { runCli } from './helpers/child-server.js'

const SECRET = 'test-secret-that-is-long-enough-0123456789'

/** The HTTP status the upgrade got: 101 if a WebSocket opened. */
function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers })
    ws.once('open', () => {
      ws.terminate()
      resolve(101)
    })
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0)
      res.resume()
      ws.terminate()
    })
    ws.once('error', (err) => reject(err))
  })
}

async function serverWith(t: { after: (fn: () => Promise<void>) => void }, options: StartOptions): Promise<{ server: CoeditServer; logs: string[] }> {
  const logs: string[] = []
  const sink = new Writable({ write(chunk: Buffer, _e, done) { logs.push(chunk.toString()); done() } })
  const server = await startServer({ storage: 'memory', logger: createLogger('debug', sink), ...options })
  t.after(() => server.close())
  return { server, logs }
}

const token = (rooms: string[], access: 'read' | 'write' = 'write', ttl = 60_000): Promise<string> =>
  signToken({ rooms, access, ttl, secret: SECRET })

test('room globs: * stays within a path segment, ** crosses them, anything else is exact', () => {
  assert.ok(roomMatches('notes', 'notes'))
  assert.ok(!roomMatches('notes', 'notes2'))
  assert.ok(roomMatches('team/*', 'team/a'))
  assert.ok(!roomMatches('team/*', 'team/a/b'))
  assert.ok(!roomMatches('team/*', 'teams/a'))
  assert.ok(roomMatches('team/**', 'team/a/b'))
  assert.ok(roomMatches('**', 'anything/at/all'))
  assert.ok(roomMatches('a.b*', 'a.bc'))
  assert.ok(!roomMatches('a.b*', 'axbc'), 'regex characters in a pattern are literal')
})

test('HS256: only a valid, unexpired token for the room opens a WebSocket', async (t) => {
  const { server, logs } = await serverWith(t, { authSecret: SECRET })
  const good = await token(['team/*'])
  const base = `${server.url}/team/notes`

  assert.equal(await upgradeStatus(base), 401, 'no token')
  assert.equal(await upgradeStatus(`${base}?token=not.a.jwt`), 401, 'garbage token')
  const forged = await signToken({ rooms: ['**'], access: 'write', ttl: 60_000, secret: 'another-secret-that-is-long-enough-xyz' })
  assert.equal(await upgradeStatus(`${base}?token=${forged}`), 401, 'signed with another secret')
  const unsigned = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from('{"rooms":["**"],"access":"write"}').toString('base64url')}.`
  assert.equal(await upgradeStatus(`${base}?token=${unsigned}`), 401, 'alg none')
  const expired = await new SignJWT({ rooms: ['**'], access: 'write' }).setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(Math.floor(Date.now() / 1000) - 10).sign(new TextEncoder().encode(SECRET))
  assert.equal(await upgradeStatus(`${base}?token=${expired}`), 401, 'expired')
  const badClaims = await new SignJWT({ rooms: 'x', access: 'admin' }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET))
  assert.equal(await upgradeStatus(`${server.url}/x?token=${badClaims}`), 401, 'unknown access value')
  assert.equal(await upgradeStatus(`${server.url}/other?token=${good}`), 403, 'token for other rooms')
  assert.equal(await upgradeStatus(`${server.url}/team/a/b?token=${good}`), 403, '* does not cross /')
  assert.equal(server.registry.loadedCount, 0, 'no refused upgrade loaded a room')

  assert.equal(await upgradeStatus(`${base}?token=${good}`), 101, 'query parameter')
  assert.equal(await upgradeStatus(base, { Authorization: `Bearer ${good}` }), 101, 'Bearer header')

  // A stock provider with its token in params syncs with another.
  const a = connect(server.url, 'team/notes', { params: { token: good } })
  const b = connect(server.url, 'team/notes', { params: { token: good } })
  t.after(() => { a.destroy(); b.destroy() })
  await Promise.all([synced(a), synced(b)])
  a.text.insert(0, 'hello')
  await waitFor(() => b.text.toString() === 'hello', { message: 'b sees a\'s edit' })

  const all = logs.join('')
  for (const secretText of [good, forged, expired, SECRET]) assert.ok(!all.includes(secretText), 'tokens and secrets are never logged')
  assert.ok(all.includes('"upgrade_refused"') && all.includes('"TOKEN_EXPIRED"') && all.includes('"ROOM_FORBIDDEN"'))
})

test('a secret shorter than 32 bytes is refused at startup', async () => {
  await assert.rejects(startServer({ storage: 'memory', authSecret: 'short' }), { code: 'AUTH_SECRET_TOO_SHORT' })
})

for (const kind of ['ec', 'rsa'] as const) {
  test(`${kind === 'ec' ? 'ES256' : 'RS256'}: tokens from \`coedit token --private-key\` open the room; others do not`, async (t) => {
    const dir = await tempDir()
    t.after(() => dir.remove())
    const pair = kind === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : generateKeyPairSync('rsa', { modulusLength: 2048 })
    const pub = join(dir.path, 'public.pem')
    const priv = join(dir.path, 'private.pem')
    await writeFile(pub, pair.publicKey.export({ type: 'spki', format: 'pem' }))
    await writeFile(priv, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }))
    const { server } = await serverWith(t, { authPublicKey: pub })

    const cli = await runCli(['token', '--private-key', priv, '--room', 'doc-*', '--ttl', '10m'])
    assert.equal(cli.code, 0, cli.stderr)
    const jwt = cli.stdout.trim()
    assert.equal(JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString()).alg, kind === 'ec' ? 'ES256' : 'RS256')
    assert.equal(await upgradeStatus(`${server.url}/doc-1?token=${jwt}`), 101)
    assert.equal(await upgradeStatus(`${server.url}/other?token=${jwt}`), 403)
    const hs = await token(['**'])
    assert.equal(await upgradeStatus(`${server.url}/doc-1?token=${hs}`), 401, 'an HS256 token is not accepted by a public-key server')
  })
}

test('`coedit token --secret` prints a token the server accepts; --read-only makes a reader', async (t) => {
  const { server } = await serverWith(t, { authSecret: SECRET })
  const cli = await runCli(['token', '--secret', SECRET, '--room', 'r', '--read-only', '--ttl', '1h'])
  assert.equal(cli.code, 0, cli.stderr)
  const claims = JSON.parse(Buffer.from(cli.stdout.trim().split('.')[1]!, 'base64url').toString()) as { access: string; exp: number; rooms: string[] }
  assert.equal(claims.access, 'read')
  assert.deepEqual(claims.rooms, ['r'])
  assert.ok(Math.abs(claims.exp - (Date.now() / 1000 + 3600)) < 120)
  assert.equal(await upgradeStatus(`${server.url}/r?token=${cli.stdout.trim()}`), 101)
  const usage = await runCli(['token', '--room', 'r'], { AUTH_SECRET: '' })
  assert.equal(usage.code, 2)
})

test('a token that expires during the session closes it with 4401 (the stock provider does not retry)', async (t) => {
  const { server } = await serverWith(t, { authSecret: SECRET })
  const exp = Math.floor(Date.now() / 1000) + 4
  const short = await new SignJWT({ rooms: ['r'], access: 'write' }).setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(exp).sign(new TextEncoder().encode(SECRET))
  const raw = await RawClient.open(`${server.url}/r?token=${short}`)
  t.after(() => raw.close())
  await raw.waitForMessage('sync-step1')
  const closed = await raw.waitClosed(15_000)
  assert.equal(closed.code, 4401)
  assert.match(closed.reason, /expired/)
  assert.ok(Date.now() >= exp * 1000 - 50, 'not before the expiry')
})

test('a stock provider whose token expires stops: it emits closed and does not reconnect', async (t) => {
  const { server, logs } = await serverWith(t, { authSecret: SECRET })
  const short = await new SignJWT({ rooms: ['r'], access: 'write' }).setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(Math.floor(Date.now() / 1000) + 4).sign(new TextEncoder().encode(SECRET))
  const client = connect(server.url, 'r', { params: { token: short } })
  t.after(() => client.destroy())
  await synced(client)
  const closedEvent = await new Promise<{ code: number }>((resolve) => client.provider.once('closed', (e: { code: number }) => resolve(e)))
  assert.equal(closedEvent.code, 4401)
  // shouldConnect false turns the provider's scheduled reconnect into a no-op.
  assert.equal(client.provider.shouldConnect, false, 'the provider will not reconnect')
  await waitFor(() => client.provider.ws === null && !client.provider.wsconnecting, { message: 'no socket open or opening' })
  assert.ok(logs.join('').includes('"token_expired"'))
})

test('a reader receives document and awareness; its writes are never applied, relayed or stored', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const { server } = await serverWith(t, { authSecret: SECRET, storage: 'leveldb', dataDir: dir.path })
  const writer = connect(server.url, 'doc', { params: { token: await token(['doc']) } })
  const other = connect(server.url, 'doc', { params: { token: await token(['doc']) } })
  t.after(() => { writer.destroy(); other.destroy() })
  await Promise.all([synced(writer), synced(other)])
  writer.text.insert(0, 'written')
  writer.provider.awareness.setLocalStateField('user', { name: 'W' })
  await waitFor(() => other.text.toString() === 'written', { message: 'writer synced' })

  const readToken = await token(['doc'], 'read')
  const reader = await RawClient.open(`${server.url}/doc?token=${readToken}`)
  t.after(() => reader.close())
  await reader.waitForMessage('sync-step1')
  await reader.waitForMessage('awareness')
  reader.send(encodeSyncStep1(Y.encodeStateVector(new Y.Doc())))
  await reader.waitForMessage('sync-step2')
  assert.equal(reader.docFromMessages().getText('text').toString(), 'written', 'the reader gets the document')

  await server.registry.flushAll()
  const before = await server.store.load('doc')
  const room = server.registry.rooms.find((r) => r.name === 'doc')!

  const foreign = new Y.Doc()
  Y.applyUpdate(foreign, Y.encodeStateAsUpdate(writer.doc))
  foreign.getText('text').insert(0, 'READER ')
  const update = Y.encodeStateAsUpdate(foreign, Y.encodeStateVector(writer.doc))
  reader.send(encodeSyncUpdate(update))
  const denied = await reader.waitForMessage('auth-denied')
  assert.match(denied.reason, /read-only/)
  reader.send(encodeSyncUpdate(update)) // a second attempt is dropped silently

  // A marker write from the writer proves the reader's frames were processed before it.
  writer.text.insert(writer.text.length, '!')
  await waitFor(() => other.text.toString() === 'written!', { message: 'marker relayed' })
  await server.registry.flushAll()
  const after = await server.store.load('doc')
  assert.equal(after.lastSeq, before.lastSeq + 1, 'only the marker was stored')
  assert.deepEqual(after.updates.slice(0, before.updates.length).map((u) => Buffer.from(u)), before.updates.map((u) => Buffer.from(u)), 'earlier storage byte-identical')
  assert.equal(room.doc.getText('text').toString(), 'written!', 'the room never applied the reader\'s change')
  assert.ok(!other.text.toString().includes('READER'), 'never relayed')
  assert.equal(reader.messages.filter((m) => m.type === 'auth-denied').length, 1, 'told once')
  assert.equal(reader.closeInfo, undefined, 'the reader stays connected')
  await waitFor(() => reader.docFromMessages().getText('text').toString() === 'written!', { message: 'reader keeps receiving' })
})

test('a reader\'s write leaves LevelDB byte-identical (stock provider reader)', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const { server, logs } = await serverWith(t, { authSecret: SECRET, storage: 'leveldb', dataDir: dir.path })
  const writer = connect(server.url, 'doc', { params: { token: await token(['doc']) } })
  t.after(() => writer.destroy())
  await synced(writer)
  writer.text.insert(0, 'base')
  await waitFor(async () => (await server.store.load('doc')).lastSeq >= 1, { message: 'stored' })
  await server.registry.flushAll()
  const before = await server.store.load('doc')

  const reader = connect(server.url, 'doc', { params: { token: await token(['doc'], 'read') } })
  t.after(() => reader.destroy())
  await synced(reader)
  await waitFor(() => reader.text.toString() === 'base', { message: 'reader has the document' })
  const warn = console.warn
  const warnings: string[] = []
  console.warn = (...args: unknown[]) => { warnings.push(args.join(' ')) }
  t.after(() => { console.warn = warn })
  reader.text.insert(0, 'nope ')
  await waitFor(() => logs.join('').includes('"write_refused"'), { message: 'the server refused the write' })
  await waitFor(() => warnings.some((w) => w.includes('read-only access')), { message: 'the stock provider reports the permission denied message' })
  console.warn = warn
  // The writer's later edit reaches the reader, proving the connection is alive and the server moved on.
  writer.text.insert(4, '+')
  await waitFor(() => reader.text.toString().endsWith('base+'), { message: 'reader still receives' })
  await server.registry.flushAll()
  const after = await server.store.load('doc')
  assert.equal(after.lastSeq, before.lastSeq + 1)
  assert.deepEqual(after.updates.slice(0, before.updates.length).map((u) => Buffer.from(u)), before.updates.map((u) => Buffer.from(u)))
  assert.equal(writer.text.toString(), 'base+')
  assert.equal(reader.text.toString(), 'nope base+', 'the reader keeps its own unsaved change locally')
})

test('browser origins: the server\'s own and listed ones pass, foreign ones get 403', async (t) => {
  const { server } = await serverWith(t, { allowedOrigins: 'https://app.example.com, http://localhost:5173' })
  const url = `${server.url}/room`
  assert.equal(await upgradeStatus(url), 101, 'no Origin: not a browser')
  assert.equal(await upgradeStatus(url, { Origin: server.httpUrl }), 101, 'own origin')
  assert.equal(await upgradeStatus(url, { Origin: 'https://app.example.com' }), 101, 'listed')
  assert.equal(await upgradeStatus(url, { Origin: 'http://localhost:5173' }), 101, 'listed with port')
  assert.equal(await upgradeStatus(url, { Origin: 'https://evil.example.com' }), 403, 'foreign')
  assert.equal(await upgradeStatus(url, { Origin: 'null' }), 403, 'opaque origin')
  assert.equal(await upgradeStatus(url, { Origin: 'http://localhost:5174' }), 403, 'other port')

  const { server: open } = await serverWith(t, { allowedOrigins: '*' })
  assert.equal(await upgradeStatus(`${open.url}/room`, { Origin: 'https://evil.example.com' }), 101, '* allows any')
  const { server: dflt } = await serverWith(t, {})
  assert.equal(await upgradeStatus(`${dflt.url}/room`, { Origin: 'https://evil.example.com' }), 403, 'default: own origin only')
  assert.equal(await upgradeStatus(`${dflt.url}/room`, { Origin: dflt.httpUrl }), 101)
})

test('--allowed-origins http://localhost:* allows every port of that host only; a refused origin is warned about once, with the fix', async (t) => {
  const { server, logs } = await serverWith(t, { allowedOrigins: 'http://localhost:*' })
  const url = `${server.url}/room`
  assert.equal(await upgradeStatus(url, { Origin: 'http://localhost:5173' }), 101, 'a dev server port')
  assert.equal(await upgradeStatus(url, { Origin: 'http://localhost:3000' }), 101, 'another port')
  assert.equal(await upgradeStatus(url, { Origin: 'http://localhost' }), 101, 'the default port')
  assert.equal(await upgradeStatus(url, { Origin: 'https://localhost:5173' }), 403, 'another scheme')
  assert.equal(await upgradeStatus(url, { Origin: 'http://localhost.evil.example:5173' }), 403, 'another host')

  const { server: dflt, logs: dfltLogs } = await serverWith(t, {})
  for (let i = 0; i < 3; i++) assert.equal(await upgradeStatus(`${dflt.url}/room`, { Origin: 'http://localhost:5173' }), 403)
  assert.equal(await upgradeStatus(`${dflt.url}/room`, { Origin: 'http://127.0.0.1:8080' }), 403)
  const warnings = dfltLogs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === 'origin_refused')
  assert.deepEqual(warnings.map((w) => w.origin), ['http://localhost:5173', 'http://127.0.0.1:8080'], 'once per origin')
  assert.equal(warnings[0]!.level, 40, 'at warn level')
  assert.match(String(warnings[0]!.msg), /start with --allowed-origins http:\/\/localhost:5173/)
  const refusedByWildcard = logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === 'origin_refused').map((l) => l.origin)
  assert.deepEqual(refusedByWildcard, ['https://localhost:5173', 'http://localhost.evil.example:5173'])

  assert.throws(() => parseAllowedOrigins('http://localhost:80:*'), { code: 'BAD_ORIGIN' })
  assert.throws(() => parseAllowedOrigins('localhost:*'), { code: 'BAD_ORIGIN' })
  assert.deepEqual(parseAllowedOrigins('HTTP://LocalHost:*, https://app.example.com'), ['http://localhost:*', 'https://app.example.com'])
})
