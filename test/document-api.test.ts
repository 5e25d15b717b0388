/**
 * The document API (`/api/rooms/ROOM`): reads with a state vector return exactly what it
 * lacks; writes reach connected providers, are answered once stored and survive a restart;
 * text is replaced by small splices that keep a concurrent client edit; tokens are those of
 * WebSocket clients; hostile requests get a 4xx JSON error and change nothing.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'node:http'
import * as Y from 'yjs'
import { startServer, type CoeditServer } from '../server/index.js'
import { signToken } from '../server/transport/auth.js'
import { isHistoryLogStore } from '../server/persistence/store.js'
import { buildNest, simpleNest } from './helpers/fuzz-structure.js'
import { connect, serverWithClients, synced, tempDir, waitFor, type Client } from './helpers/index.js'

const SECRET = 'document-api-test-secret-0123456789abcdef'

interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
  /** The JSON error's code, if the body is one. */
  code: string | undefined
}

/** One HTTP request with exactly these headers (fetch would add or refuse some). */
function call(server: CoeditServer, method: string, path: string, options: { headers?: Record<string, string>; body?: Uint8Array | string; chunks?: Array<Uint8Array | string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, method, path, headers: options.headers ?? {} }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (d: Buffer) => parts.push(d))
      res.on('end', () => {
        const body = Buffer.concat(parts)
        let code: string | undefined
        try {
          code = (JSON.parse(body.toString()) as { error?: { code?: string } }).error?.code
        } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, code })
      })
    })
    req.on('error', reject)
    if (options.chunks) {
      for (const c of options.chunks) req.write(c)
      req.end()
    } else {
      req.end(options.body)
    }
  })
}

const octets = { 'Content-Type': 'application/octet-stream' }
const json = { 'Content-Type': 'application/json' }
const postUpdate = (server: CoeditServer, room: string, update: Uint8Array, headers: Record<string, string> = {}): Promise<Reply> =>
  call(server, 'POST', `/api/rooms/${encodeURIComponent(room)}/update`, { headers: { ...octets, ...headers }, body: update })
const postText = (server: CoeditServer, room: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> =>
  call(server, 'POST', `/api/rooms/${encodeURIComponent(room)}/text`, { headers: { ...json, ...headers }, body: JSON.stringify(body) })


function textUpdate(text: string, clientID?: number): Uint8Array {
  const doc = new Y.Doc()
  if (clientID !== undefined) doc.clientID = clientID
  doc.getText('text').insert(0, text)
  return Y.encodeStateAsUpdate(doc)
}

test('GET with a state vector returns exactly what that state lacks; json and text formats', async (t) => {
  const { server, clients } = await serverWithClients(t)
  const a = connect(server.url, 'sv')
  clients.push(a)
  await synced(a)
  a.text.insert(0, 'hello')
  a.doc.getMap('meta').set('v', 1)
  await waitFor(async () => (await server.store.load('sv')).lastSeq === 2, { message: 'stored' })
  // What a backend saw earlier: the room at this point.
  const earlier = new Y.Doc()
  Y.applyUpdate(earlier, Y.encodeStateAsUpdate(a.doc))
  const sv = Y.encodeStateVector(earlier)
  a.text.insert(5, ' world')
  a.text.delete(0, 1)
  a.doc.getMap('meta').set('v', 2)
  await waitFor(async () => (await server.store.load('sv')).lastSeq === 5, { message: 'stored' })

  for (const encoded of [Buffer.from(sv).toString('base64'), Buffer.from(sv).toString('base64url')]) {
    const res = await call(server, 'GET', `/api/rooms/sv?format=update&stateVector=${encodeURIComponent(encoded)}`)
    assert.equal(res.status, 200)
    assert.equal(res.headers['content-type'], 'application/octet-stream')
    const missing = new Uint8Array(res.body)
    // Nothing the earlier state holds is sent again...
    const svMap = Y.decodeStateVector(sv)
    for (const s of Y.decodeUpdate(missing).structs) {
      assert.ok(s.id.clock >= (svMap.get(s.id.client) ?? 0), `struct ${s.id.client}:${s.id.clock} was in the state vector`)
    }
    // ...and it is everything else: the earlier state plus it is the room.
    const caughtUp = new Y.Doc()
    Y.applyUpdate(caughtUp, Y.encodeStateAsUpdate(earlier))
    Y.applyUpdate(caughtUp, missing)
    assert.equal(caughtUp.getText('text').toString(), 'ello world')
    assert.equal(caughtUp.getMap('meta').get('v'), 2)
    assert.deepEqual(Y.encodeStateVector(caughtUp), Y.encodeStateVector(a.doc))
    assert.ok(missing.length < Y.encodeStateAsUpdate(a.doc).length)
  }
  // An unencoded '+' arrives as a space: read back as '+'.
  const plus = Buffer.from(Y.encodeStateVector(a.doc)).toString('base64')
  const upToDate = await call(server, 'GET', `/api/rooms/sv?stateVector=${plus}`)
  assert.equal(upToDate.status, 200)
  assert.equal(Y.decodeUpdate(new Uint8Array(upToDate.body)).structs.length, 0, 'a state vector that has everything gets no structs')

  const whole = await call(server, 'GET', '/api/rooms/sv')
  const fresh = new Y.Doc()
  Y.applyUpdate(fresh, new Uint8Array(whole.body))
  assert.equal(fresh.getText('text').toString(), 'ello world')

  const asJson = await call(server, 'GET', '/api/rooms/sv?format=json')
  assert.equal(asJson.status, 200)
  assert.match(String(asJson.headers['content-type']), /^application\/json/)
  assert.deepEqual(JSON.parse(asJson.body.toString()), { meta: { v: 2 }, text: 'ello world' })
  const asText = await call(server, 'GET', '/api/rooms/sv?format=text')
  assert.equal(asText.body.toString(), 'ello world')
  const otherRoot = await call(server, 'GET', '/api/rooms/sv?format=text&name=absent')
  assert.equal(otherRoot.status, 200)
  assert.equal(otherRoot.body.toString(), '')
  const mapAsText = await call(server, 'GET', '/api/rooms/sv?format=text&name=meta')
  assert.equal(mapAsText.status, 409)
  assert.equal(mapAsText.code, 'NOT_TEXT')
  // Reading through the API defined no root on the room's own document.
  assert.equal((await server.documents.get('sv')).share.has('absent'), false)
})

test('POST update reaches connected providers, is answered once stored, and survives a restart', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  let server = await startServer({ port: 0, dataDir: dir.path })
  const clients: Client[] = []
  t.after(async () => {
    for (const c of clients) c.destroy()
    await server.close()
  })
  const a = connect(server.url, 'team/notes')
  const b = connect(server.url, 'team/notes')
  clients.push(a, b)
  await Promise.all([synced(a), synced(b)])
  const update = textUpdate('from a backend')
  const res = await postUpdate(server, 'team/notes', update)
  assert.equal(res.status, 200, res.body.toString())
  assert.deepEqual(JSON.parse(res.body.toString()), { room: 'team/notes', changed: true })
  assert.equal((await server.store.load('team/notes')).lastSeq, 1, 'stored before the answer')
  for (const c of [a, b]) await waitFor(() => c.text.toString() === 'from a backend', { message: 'the update reaches a provider' })
  const again = await postUpdate(server, 'team/notes', update)
  assert.deepEqual(JSON.parse(again.body.toString()), { room: 'team/notes', changed: false })
  assert.equal((await server.store.load('team/notes')).lastSeq, 1, 'what the room has is not stored twice')

  for (const c of clients.splice(0)) c.destroy()
  await server.close()
  server = await startServer({ port: 0, dataDir: dir.path })
  const back = await call(server, 'GET', '/api/rooms/team%2Fnotes?format=text')
  assert.equal(back.body.toString(), 'from a backend')
})

test('POST text replaces a Y.Text by small splices: a concurrent client edit elsewhere keeps its place', async (t) => {
  const { server, clients } = await serverWithClients(t)
  const writer = connect(server.url, 'letter')
  const watcher = connect(server.url, 'letter')
  clients.push(writer, watcher)
  await Promise.all([synced(writer), synced(watcher)])
  const middle = 'The quick brown fox jumps over the lazy dog. '.repeat(3)
  writer.text.insert(0, `Dear Ada,\n${middle}\nRegards, Bob`)
  await waitFor(() => watcher.text.length === writer.text.length, { message: 'the letter synced' })
  // The writer goes offline and edits the middle; meanwhile a script rewrites the greeting and the closing.
  writer.provider.disconnect()
  const at = writer.text.toString().indexOf('lazy')
  writer.text.insert(at, 'very ')
  const res = await postText(server, 'letter', { name: 'text', text: `Dear Grace,\n${middle}\nBest, Bob` })
  assert.equal(res.status, 200, res.body.toString())
  assert.deepEqual(JSON.parse(res.body.toString()), { room: 'letter', changed: true })
  writer.provider.connect()
  const expected = `Dear Grace,\n${middle.replace('lazy', 'very lazy')}\nBest, Bob`
  for (const c of [writer, watcher]) await waitFor(() => c.text.toString() === expected, { message: `the merge: ${JSON.stringify(c.text.toString())}` })
  // The same text again changes nothing; name defaults to the editor's text.
  const same = await postText(server, 'letter', { text: expected })
  assert.deepEqual(JSON.parse(same.body.toString()), { room: 'letter', changed: false })
  // A root that holds a map is not text.
  writer.doc.getMap('meta').set('k', 1)
  await waitFor(async () => (await server.documents.get('letter')).getMap('meta').get('k') === 1, { message: 'map stored' })
  const notText = await postText(server, 'letter', { name: 'meta', text: 'x' })
  assert.equal(notText.status, 409)
  assert.equal(notText.code, 'NOT_TEXT')
})

test('tokens: those of WebSocket clients; a read token cannot POST, none gets 401, the user is recorded', async (t) => {
  const { server } = await serverWithClients(t, { authSecret: SECRET })
  const write = await signToken({ rooms: ['team/*'], access: 'write', ttl: 60_000, secret: SECRET, sub: 'report-job' })
  const read = await signToken({ rooms: ['team/*'], access: 'read', ttl: 60_000, secret: SECRET })
  const other = await signToken({ rooms: ['elsewhere'], access: 'write', ttl: 60_000, secret: SECRET })
  const forged = await signToken({ rooms: ['**'], access: 'write', ttl: 60_000, secret: 'a-different-secret-that-is-long-enough-xyz' })
  const bearer = (token: string): Record<string, string> => ({ Authorization: `Bearer ${token}` })

  const none = await postUpdate(server, 'team/a', textUpdate('x'))
  assert.equal(none.status, 401)
  assert.equal(none.code, 'TOKEN_MISSING')
  assert.match(String(none.headers['www-authenticate']), /^Bearer/)
  assert.equal((await call(server, 'GET', '/api/rooms/team%2Fa')).status, 401)
  assert.equal((await postUpdate(server, 'team/a', textUpdate('x'), bearer(forged))).code, 'TOKEN_INVALID')
  const wrongRoom = await postUpdate(server, 'team/a', textUpdate('x'), bearer(other))
  assert.equal(wrongRoom.status, 403)
  assert.equal(wrongRoom.code, 'ROOM_FORBIDDEN')
  const readOnly = await postUpdate(server, 'team/a', textUpdate('x'), bearer(read))
  assert.equal(readOnly.status, 403)
  assert.equal(readOnly.code, 'READ_ONLY')
  assert.equal((await postText(server, 'team/a', { text: 'x' }, bearer(read))).code, 'READ_ONLY')
  assert.equal((await server.store.load('team/a')).lastSeq, 0, 'nothing refused was stored')

  const ok = await postText(server, 'team/a', { text: 'by the job' }, bearer(write))
  assert.equal(ok.status, 200, ok.body.toString())
  assert.ok(isHistoryLogStore(server.store))
  assert.deepEqual((await server.store.readLog('team/a')).entries.map((e) => e.user), ['report-job'])
  // The read token reads, from the header or the query string.
  assert.equal((await call(server, 'GET', '/api/rooms/team%2Fa?format=text', { headers: bearer(read) })).body.toString(), 'by the job')
  assert.equal((await call(server, 'GET', `/api/rooms/team%2Fa?format=text&token=${read}`)).body.toString(), 'by the job')
})

test('hostile requests get a 4xx JSON error with a code, store nothing, and the server keeps serving', async (t) => {
  const { server, clients } = await serverWithClients(t, { maxMessageSize: 4096, maxNestingDepth: 8, maxClockAdvance: 100, roomNamePattern: '[^!]*' })
  const expect = async (reply: Promise<Reply>, status: number, code: string): Promise<void> => {
    const res = await reply
    assert.equal(res.status, status, `${code}: ${res.body.toString()}`)
    assert.equal(res.code, code, res.body.toString())
    assert.match(String(res.headers['content-type']), /^application\/json/)
  }
  // Bodies of /update.
  await expect(postUpdate(server, 'r', new Uint8Array([1, 2, 3, 250, 251])), 400, 'BAD_UPDATE')
  await expect(postUpdate(server, 'r', new Uint8Array(0)), 400, 'BAD_UPDATE')
  await expect(postUpdate(server, 'r', new TextEncoder().encode('{"text": "not yjs"}')), 400, 'BAD_UPDATE')
  await expect(call(server, 'POST', '/api/rooms/r/update', { headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: textUpdate('x') }), 415, 'BAD_CONTENT_TYPE')
  await expect(call(server, 'POST', '/api/rooms/r/update', { body: textUpdate('x') }), 415, 'BAD_CONTENT_TYPE')
  await expect(postUpdate(server, 'r', textUpdate('x'.repeat(5000))), 413, 'TOO_LARGE')
  await expect(call(server, 'POST', '/api/rooms/r/update', { headers: octets, chunks: Array.from({ length: 10 }, () => new Uint8Array(1000)) }), 413, 'TOO_LARGE')
  await expect(postUpdate(server, 'r', Y.mergeUpdates(buildNest(simpleNest('map', 20)))), 422, 'TOO_DEEP')
  // Structs far past what the room has of their client.
  const ahead = new Y.Doc()
  ahead.clientID = 4242
  for (let i = 0; i < 300; i++) ahead.getText('text').insert(0, 'a')
  await expect(postUpdate(server, 'r', Y.encodeStateAsUpdate(ahead, Y.encodeStateVector(new Map([[4242, 250]])))), 400, 'IMPLAUSIBLE_CLOCK')
  // Bodies of /text.
  await expect(call(server, 'POST', '/api/rooms/r/text', { headers: json, body: '{"text": ' }), 400, 'BAD_JSON')
  await expect(call(server, 'POST', '/api/rooms/r/text', { headers: json, body: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]) }), 400, 'BAD_JSON')
  await expect(postText(server, 'r', ['text']), 400, 'BAD_JSON')
  await expect(postText(server, 'r', 'just a string'), 400, 'BAD_JSON')
  await expect(postText(server, 'r', null), 400, 'BAD_JSON')
  await expect(postText(server, 'r', { text: { nested: 'x' } }), 400, 'BAD_JSON')
  await expect(postText(server, 'r', { text: 5 }), 400, 'BAD_REQUEST')
  await expect(postText(server, 'r', { name: 7, text: 'x' }), 400, 'BAD_REQUEST')
  await expect(postText(server, 'r', { name: '', text: 'x' }), 400, 'BAD_REQUEST')
  await expect(postText(server, 'r', { name: 'n'.repeat(2000), text: 'x' }), 400, 'BAD_REQUEST')
  await expect(postText(server, 'r', { txt: 'typo' }), 400, 'BAD_REQUEST')
  await expect(call(server, 'POST', '/api/rooms/r/text', { headers: json, body: '{"text": "\\ud800"}' }), 400, 'BAD_REQUEST')
  await expect(call(server, 'POST', '/api/rooms/r/text', { headers: json, body: `{"text": ${'['.repeat(100_000)}` }), 413, 'TOO_LARGE')
  await expect(call(server, 'POST', '/api/rooms/r/text', { headers: json, body: `{"text": ${'['.repeat(2000)}` }), 400, 'BAD_JSON')
  await expect(call(server, 'POST', '/api/rooms/r/text', { headers: { 'Content-Type': 'text/plain' }, body: '{"text": "x"}' }), 415, 'BAD_CONTENT_TYPE')
  // Reads.
  await expect(call(server, 'GET', '/api/rooms/r?format=xml'), 400, 'BAD_REQUEST')
  await expect(call(server, 'GET', '/api/rooms/r?stateVector=!!!'), 400, 'BAD_STATE_VECTOR')
  await expect(call(server, 'GET', '/api/rooms/r?stateVector=A'), 400, 'BAD_STATE_VECTOR')
  await expect(call(server, 'GET', `/api/rooms/r?stateVector=${Buffer.from([0xff, 0xff]).toString('base64')}`), 400, 'BAD_STATE_VECTOR')
  await expect(call(server, 'GET', `/api/rooms/r?format=json&stateVector=${Buffer.from([0]).toString('base64')}`), 400, 'BAD_REQUEST')
  await expect(call(server, 'GET', `/api/rooms/r?format=text&name=${'n'.repeat(2000)}`), 400, 'BAD_REQUEST')
  await expect(call(server, 'GET', '/api/rooms/r', { headers: { 'Content-Length': String(1024 * 1024) }, body: new Uint8Array(1024 * 1024) }), 413, 'TOO_LARGE')
  // Room names, as the WebSocket path checks them.
  for (const name of ['bad%00name', 'bidi%E2%80%AEtxt', 'zero%E2%80%8Bwidth', 'x'.repeat(600), 'no!pattern', 'tab%09']) {
    await expect(call(server, 'GET', `/api/rooms/${name}`), 400, 'BAD_ROOM_NAME')
    await expect(postUpdate(server, decodeURIComponent(name), textUpdate('x')), 400, 'BAD_ROOM_NAME')
  }
  // Methods and paths.
  await expect(call(server, 'PUT', '/api/rooms/r'), 405, 'METHOD_NOT_ALLOWED')
  await expect(call(server, 'GET', '/api/rooms/r/update'), 405, 'METHOD_NOT_ALLOWED')
  await expect(call(server, 'DELETE', '/api/rooms/r/text'), 405, 'METHOD_NOT_ALLOWED')
  await expect(call(server, 'GET', '/api/rooms/r/other'), 404, 'NOT_FOUND')
  await expect(call(server, 'GET', '/api/rooms/'), 404, 'NOT_FOUND')
  await expect(call(server, 'GET', '/api'), 404, 'NOT_FOUND')
  // A page on another origin, as for WebSockets.
  await expect(call(server, 'POST', '/api/rooms/r/update', { headers: { ...octets, Origin: 'https://evil.example' }, body: textUpdate('x') }), 403, 'ORIGIN_FORBIDDEN')

  assert.deepEqual((await server.store.listRooms()).map((r) => r.name), [], 'nothing was stored')
  const c = connect(server.url, 'r')
  clients.push(c)
  await synced(c)
  assert.equal((await postText(server, 'r', { text: 'still serving' })).status, 200)
  await waitFor(() => c.text.toString() === 'still serving', { message: 'the server still serves' })
})

test('rate limits per address: requests, bytes and new rooms get 429 with Retry-After', async (t) => {
  const { server } = await serverWithClients(t, { loopbackExempt: false, maxMessagesPerSecond: 1, maxBytesPerSecond: 100, maxNewRoomsPerMinute: 2 })
  // A budget of 10 s: 10 requests, 1,000 bytes, 2 new rooms.
  const first = await postUpdate(server, 'one', textUpdate('a'.repeat(600)))
  assert.equal(first.status, 200, first.body.toString())
  const bytes = await postUpdate(server, 'one', textUpdate('b'.repeat(600)))
  assert.equal(bytes.status, 429)
  assert.equal(bytes.code, 'BYTE_RATE')
  assert.equal(bytes.headers['retry-after'], '1')
  assert.equal((await call(server, 'GET', '/api/rooms/two')).status, 200)
  const third = await call(server, 'GET', '/api/rooms/three')
  assert.equal(third.status, 429)
  assert.equal(third.code, 'TOO_MANY_NEW_ROOMS')
  // A room with content is no new room.
  assert.equal((await call(server, 'GET', '/api/rooms/one')).status, 200)
  let limited: Reply | undefined
  for (let i = 0; i < 30 && !limited; i++) {
    const res = await call(server, 'GET', '/api/rooms/one')
    if (res.status === 429) limited = res
  }
  assert.ok(limited, 'some request was refused')
  assert.equal(limited.code, 'MESSAGE_RATE')
})
