/**
 * The HTTP side of the threat model: clients that trickle their headers or body are cut
 * off (--headers-timeout, --request-timeout), sockets count toward --max-connections-per-ip
 * before they are upgraded and toward --max-connections always (429 / 503), a server on
 * loopback answers only its own names (DNS rebinding: 403), pages carry CSP and may not be
 * framed, admin bodies are bounded (413), and requests without a token do not lock the
 * operator out.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request, type IncomingHttpHeaders } from 'node:http'
import { connect as tcpConnect, type Socket } from 'node:net'
import WebSocket from 'ws'
import { startServer, type CoeditServer, type StartOptions } from '../server/index.js'
import { upgrade, waitFor } from './helpers/index.js'
import { PROBE_RESERVE } from '../server/transport/connections.js'
import { ensureWebBuild } from './helpers/browser.js'

const ADMIN = 'http-admin-token'

async function serve(t: { after: (fn: () => Promise<void>) => void }, options: StartOptions = {}): Promise<CoeditServer> {
  const server = await startServer({ storage: 'memory', ...options })
  t.after(() => server.close())
  return server
}

interface Answer { status: number; headers: IncomingHttpHeaders; body: string }

/** One request on its own connection (no keep-alive pool holding sockets between checks). */
function get(url: string, options: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers ?? {}, agent: false }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end(options.body)
  })
}

/** A raw TCP connection, with its close and everything it received. */
function rawSocket(host: string, port: number): Promise<{ socket: Socket; received: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, host)
    let data = ''
    socket.on('data', (d: Buffer) => { data += d.toString() })
    socket.on('error', () => {})
    const closed = new Promise<void>((r) => socket.once('close', () => r()))
    socket.once('connect', () => resolve({ socket, received: () => data, closed }))
    socket.once('error', reject)
  })
}

test('a client trickling its request headers, or an upgrade\'s, is cut off after --headers-timeout', async (t) => {
  const server = await serve(t, { headersTimeout: 1000 })
  const trickle = async (firstLine: string): Promise<string> => {
    const raw = await rawSocket('127.0.0.1', server.port)
    raw.socket.write(`${firstLine}\r\nHost: 127.0.0.1\r\n`)
    // One header byte every 200 ms: the socket is never idle, the headers never end.
    const timer = setInterval(() => raw.socket.write('X'), 200)
    t.after(() => { clearInterval(timer); raw.socket.destroy() })
    await waitFor(() => raw.socket.closed || raw.received().length > 0, { timeout: 20_000, message: 'the server to give up on the headers' })
    clearInterval(timer)
    return raw.received()
  }
  assert.match(await trickle('GET /healthz HTTP/1.1'), /^HTTP\/1\.1 408/)
  assert.match(await trickle('GET /room HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade'), /^HTTP\/1\.1 408/)
})

test('a request whose body trickles is cut off after --request-timeout; an open WebSocket is not', async (t) => {
  const server = await serve(t, { headersTimeout: 500, requestTimeout: 1000, adminToken: ADMIN })
  const ws = await upgrade(`${server.url}/kept`)
  assert.equal(ws.status, 101)
  t.after(() => ws.ws?.terminate())
  const raw = await rawSocket('127.0.0.1', server.port)
  raw.socket.write(`POST /admin/rooms/x/import?format=text HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN}\r\nContent-Length: 100000\r\n\r\n`)
  const timer = setInterval(() => raw.socket.write('a'), 200)
  t.after(() => { clearInterval(timer); raw.socket.destroy() })
  await waitFor(() => raw.socket.closed || raw.received().length > 0, { timeout: 20_000, message: 'the server to give up on the body' })
  clearInterval(timer)
  assert.match(raw.received(), /^HTTP\/1\.1 408/)
  assert.equal(ws.ws!.readyState, WebSocket.OPEN, 'the WebSocket outlived --request-timeout')
})

test('sockets not yet upgraded count toward --max-connections-per-ip (HTTP 429)', async (t) => {
  // Loopback is spared the per-address limits by default (local tools, a proxy on this
  // host); --no-loopback-exempt applies them to it, so the test needs no other address.
  const server = await serve(t, { maxConnectionsPerIp: 3, loopbackExempt: false })
  const held = await Promise.all([0, 1, 2].map(() => rawSocket('127.0.0.1', server.port)))
  t.after(() => { for (const h of held) h.socket.destroy() })
  // Three silent sockets hold the address's three slots: nothing else gets in.
  const refused = await get(`${server.httpUrl}/healthz`)
  assert.equal(refused.status, 429)
  assert.equal((await upgrade(`${server.url}/room`)).status, 429)
  held.shift()!.socket.destroy()
  await waitFor(async () => (await get(`${server.httpUrl}/healthz`)).status === 200, { message: 'a slot to be free again' })
})

test('by default loopback is spared the per-address limits', async (t) => {
  const server = await serve(t, { maxConnectionsPerIp: 2 })
  const held = await Promise.all([0, 1, 2].map(() => rawSocket('127.0.0.1', server.port)))
  t.after(() => { for (const h of held) h.socket.destroy() })
  assert.equal((await get(`${server.httpUrl}/healthz`)).status, 200)
})

test('--max-connections bounds every connection of the server, loopback too: HTTP 503 for requests and upgrades; a liveness probe is still answered', async (t) => {
  const server = await serve(t, { maxConnections: 2 })
  const held = await Promise.all([0, 1].map(() => rawSocket('127.0.0.1', server.port)))
  t.after(() => { for (const h of held) h.socket.destroy() })
  const refused = await get(`${server.httpUrl}/readyz`)
  assert.equal(refused.status, 503)
  assert.ok(refused.headers['retry-after'])
  assert.equal((await get(`${server.httpUrl}/r/some-room`)).status, 503)
  assert.equal((await upgrade(`${server.url}/room`)).status, 503)
  // A full server is alive: restarting it for a failed liveness probe would drop everyone.
  const probe = await get(`${server.httpUrl}/healthz`)
  assert.equal(probe.status, 200, 'GET /healthz past the bound')
  assert.equal(probe.headers.connection, 'close')

  // At most 16 connections past the bound are read, for a second each: silent ones fill
  // that reserve, and then even a probe is refused at once until they are cut off.
  const silent = await Promise.all(Array.from({ length: PROBE_RESERVE }, () => rawSocket('127.0.0.1', server.port)))
  t.after(() => { for (const s of silent) s.socket.destroy() })
  assert.equal((await get(`${server.httpUrl}/healthz`)).status, 503, 'past the reserve too')
  await Promise.all(silent.map((s) => s.closed))
  assert.ok(silent.every((s) => s.received() === ''), 'silent connections in the reserve are closed without an answer')
  assert.equal((await get(`${server.httpUrl}/healthz`)).status, 200, 'the reserve is free again')

  held.shift()!.socket.destroy()
  await waitFor(async () => (await get(`${server.httpUrl}/readyz`)).status === 200, { message: 'a connection to be free again' })
  // A hundred silent sockets over the bound: refused ones are closed, so they hold nothing.
  const flood = await Promise.all(Array.from({ length: 100 }, () => rawSocket('127.0.0.1', server.port)))
  t.after(() => { for (const f of flood) f.socket.destroy() })
  await Promise.all(flood.slice(1).map((f) => f.closed))
})

test('on loopback, requests and upgrades addressed to another name are refused with 403 (DNS rebinding)', async (t) => {
  const server = await serve(t, { allowedOrigins: 'https://docs.example.org' })
  const at = (host: string): Promise<Answer> => get(`${server.httpUrl}/healthz`, { headers: { Host: host } })
  assert.equal((await at(`evil.example:${server.port}`)).status, 403)
  assert.equal((await at('127.0.0.1.evil.example')).status, 403)
  for (const ok of [`localhost:${server.port}`, `127.0.0.1:${server.port}`, `[::1]:${server.port}`, 'LOCALHOST', 'app.localhost', 'docs.example.org']) {
    assert.equal((await at(ok)).status, 200, ok)
  }
  const evil = await upgrade(`${server.url}/room`, { Host: `evil.example:${server.port}`, Origin: `http://evil.example:${server.port}` })
  assert.equal(evil.status, 403)
  const mine = await upgrade(`${server.url}/room`, { Host: `localhost:${server.port}` })
  assert.equal(mine.status, 101)
  mine.ws!.terminate()

  // Behind a trusted proxy the proxy picks the names; on other interfaces no name is known.
  const proxied = await serve(t, { trustProxy: true })
  assert.equal((await get(`${proxied.httpUrl}/healthz`, { headers: { Host: 'docs.example.com' } })).status, 200)
  const open = await serve(t, { host: '0.0.0.0' })
  assert.equal((await get(`${open.httpUrl}/healthz`, { headers: { Host: 'docs.example.com' } })).status, 200)
})

test('the editor and the status page carry a CSP and may not be framed; source maps are not built', async (t) => {
  ensureWebBuild()
  const server = await serve(t)
  for (const path of ['/r/some-room', '/status']) {
    const page = await get(`${server.httpUrl}${path}`)
    assert.equal(page.status, 200, path)
    const csp = String(page.headers['content-security-policy'])
    assert.match(csp, /frame-ancestors 'none'/, path)
    assert.match(csp, /script-src 'self'/, path)
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, path)
    assert.equal(page.headers['x-frame-options'], 'DENY', path)
    assert.equal(page.headers['strict-transport-security'], undefined, 'no HSTS over plain http')
  }
  const redirect = await get(`${server.httpUrl}/`)
  assert.equal(redirect.headers['x-frame-options'], 'DENY')
  const script = await get(`${server.httpUrl}/assets/app.js`)
  assert.equal(script.status, 200)
  assert.doesNotMatch(script.body, /sourceMappingURL/)
  assert.equal((await get(`${server.httpUrl}/assets/app.js.map`)).status, 404)
})

test('admin bodies are bounded: restore past --max-restore-size, import past --max-message-size, a body where none is expected: 413', async (t) => {
  const server = await serve(t, { adminToken: ADMIN, maxRestoreSize: 4096, maxMessageSize: 4096 })
  const auth = { Authorization: `Bearer ${ADMIN}` }
  const big = Buffer.alloc(64 * 1024, 0x61)
  const check = async (answer: Answer, what: string): Promise<void> => {
    assert.equal(answer.status, 413, what)
    assert.equal((JSON.parse(answer.body) as { error: { code: string } }).error.code, 'TOO_LARGE', what)
  }
  await check(await get(`${server.httpUrl}/admin/restore`, { method: 'POST', headers: auth, body: big }), 'restore, declared length')
  // Chunked: no declared length, counted as it streams.
  await check(await new Promise<Answer>((resolve, reject) => {
    const req = request(`${server.httpUrl}/admin/restore`, { method: 'POST', headers: { ...auth, 'Transfer-Encoding': 'chunked' }, agent: false }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('error', reject)
    for (let i = 0; i < 8; i++) req.write(big.subarray(0, 8192))
    req.end()
  }), 'restore, chunked')
  await check(await get(`${server.httpUrl}/admin/rooms/x/import?format=text`, { method: 'POST', headers: auth, body: big }), 'import')
  await check(await get(`${server.httpUrl}/admin/rooms/x/revert?to=1`, { method: 'POST', headers: auth, body: Buffer.alloc(128 * 1024) }), 'revert')
  assert.equal((await get(`${server.httpUrl}/admin/rooms`, { headers: auth })).status, 200, 'the server still answers')
})

test('requests without a token do not count toward the admin lockout; wrong tokens do', async (t) => {
  const server = await serve(t, { adminToken: ADMIN })
  for (let i = 0; i < 25; i++) assert.equal((await get(`${server.httpUrl}/admin/rooms`)).status, 401)
  assert.equal((await get(`${server.httpUrl}/admin/rooms`, { headers: { Authorization: `Bearer ${ADMIN}` } })).status, 200, 'the operator is not locked out')
  for (let i = 0; i < 10; i++) assert.equal((await get(`${server.httpUrl}/admin/rooms`, { headers: { Authorization: 'Bearer wrong' } })).status, 401)
  assert.equal((await get(`${server.httpUrl}/admin/rooms`, { headers: { Authorization: `Bearer ${ADMIN}` } })).status, 429, 'ten wrong tokens lock the address')
})
