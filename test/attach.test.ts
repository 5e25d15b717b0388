/**
 * `startServer({ server, path })`: coedit on an app's own HTTP server. The app's requests
 * and its other WebSocket upgrades stay the app's, providers (y-websocket and Hocuspocus)
 * sync under the path, `close()` leaves the app's server listening, and options about a
 * listener coedit does not own are refused. Then the same with the Express example in
 * examples/express, run as it is.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { createRequire, register } from 'node:module'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import * as Y from 'yjs'
import WebSocket, { WebSocketServer } from 'ws'
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'
import { startServer, type CoeditServer } from '../server/index.js'
import { ROOT } from './helpers/child-server.js'
import { connect, synced, tempDir, waitFor, type Client } from './helpers/index.js'

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)))
}

/** A WebSocket of the app's own, on the same server: echoes what it gets. */
function echoServer(app: Server, path: string): WebSocketServer {
  const wss = new WebSocketServer({ noServer: true })
  app.on('upgrade', (req, socket, head) => {
    if (new URL(req.url ?? '/', 'http://x').pathname !== path) return
    wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (data) => ws.send(data)))
  })
  return wss
}

async function echoes(port: number, path: string): Promise<string> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`)
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  const answer = new Promise<string>((resolve) => ws.once('message', (data: Buffer) => resolve(data.toString())))
  ws.send('ping')
  const text = await answer
  ws.close()
  return text
}

/** Two stock y-websocket providers and a Hocuspocus provider of `room` under `url` see each other's edits. */
async function collaborate(url: string, room: string, t: { after(fn: () => void): void }): Promise<void> {
  const a = connect(url, room)
  const b = connect(url, room)
  const socket = new HocuspocusProviderWebsocket({ url, WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket })
  const doc = new Y.Doc()
  const hp = new HocuspocusProvider({ websocketProvider: socket, name: room, document: doc, token: '' })
  hp.attach()
  t.after(() => { a.destroy(); b.destroy(); hp.destroy(); socket.destroy(); doc.destroy() })
  await Promise.all([synced(a), synced(b), waitFor(() => hp.isSynced, { message: 'hocuspocus synced' })])
  a.text.insert(0, 'from a. ')
  doc.getText('text').insert(0, 'from hocuspocus. ')
  await waitFor(() => b.text.length === 25 && b.text.toString() === doc.getText('text').toString() && a.text.toString() === b.text.toString(), { message: 'all three converged' })
}

test('attached to a node:http server: the app keeps its routes and WebSockets, providers sync under the path, close() leaves the app listening', async (t) => {
  const app = createServer((req, res) => {
    if (req.url === '/hello') {
      res.end('app says hi\n')
      return
    }
    // coedit's probes, metrics, status; the rest is the app's 404.
    coedit.handleRequest(req, res, () => {
      res.statusCode = 404
      res.end('app 404\n')
    })
  })
  const echo = echoServer(app, '/app-socket')
  const port = await listen(app)
  t.after(() => { echo.close(); app.close() })
  const coedit: CoeditServer = await startServer({ server: app, path: '/collab/' })
  let closed = false
  t.after(async () => { if (!closed) await coedit.close() })

  assert.equal(coedit.url, `ws://127.0.0.1:${port}/collab`)
  assert.equal(coedit.port, port)
  await collaborate(coedit.url, 'notes', t)
  assert.deepEqual((await coedit.rooms.list()).map((r) => [r.name, r.connections]), [['notes', 3]])

  assert.equal(await (await fetch(`http://127.0.0.1:${port}/hello`)).text(), 'app says hi\n')
  const health = await fetch(`http://127.0.0.1:${port}/healthz`)
  assert.deepEqual([health.status, await health.json()], [200, { status: 'ok' }])
  const editor = await fetch(`http://127.0.0.1:${port}/r/notes`)
  assert.deepEqual([editor.status, await editor.text()], [404, 'app 404\n'], 'no editor in attached mode: the app answers')
  assert.equal(editor.headers.get('x-frame-options'), null, 'coedit\'s headers stay off the app\'s responses')
  assert.equal(await echoes(port, '/app-socket'), 'ping', 'the app\'s own WebSocket works beside coedit\'s')
  // The document API is among coedit's routes, attached as when it listens on its own.
  const api = await fetch(`http://127.0.0.1:${port}/api/rooms/notes?format=text`)
  assert.equal(api.status, 200)
  assert.match(await api.text(), /from hocuspocus\. from a\. |from a\. from hocuspocus\. /, 'GET /api/rooms/ROOM reads the room through handleRequest')
  const collabPage = await fetch(`http://127.0.0.1:${port}/collab/notes`)
  assert.equal(collabPage.status, 404, 'plain requests under the path are the app\'s too')

  const stops = connect(coedit.url, 'notes')
  t.after(() => stops.destroy())
  await synced(stops)
  const going = new Promise<number>((resolve) => stops.provider.once('connection-close', (e: { code: number } | null) => resolve(e?.code ?? 0)))
  await coedit.close()
  closed = true
  assert.equal(await going, 1001)
  assert.equal(app.listening, true, 'the app\'s server still listens')
  assert.equal(await (await fetch(`http://127.0.0.1:${port}/hello`)).text(), 'app says hi\n')
  assert.equal(await echoes(port, '/app-socket'), 'ping', 'the app\'s WebSocket still works')
})

test('attached as the only upgrade listener: an upgrade outside the path gets 404 instead of hanging', async (t) => {
  const app = createServer((_req, res) => res.end('app\n'))
  const port = await listen(app)
  const coedit = await startServer({ server: app, path: '/collab' })
  t.after(async () => { await coedit.close(); app.close() })
  const ws = new WebSocket(`ws://127.0.0.1:${port}/elsewhere`)
  const status = await new Promise<number>((resolve) => ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)))
  assert.equal(status, 404)
  // The path itself, and a room under it with a refused name: coedit's, as listening on its own.
  const bad = new WebSocket(`ws://127.0.0.1:${port}/collab/a%00b`)
  const close = await new Promise<number>((resolve) => bad.once('close', (code: number) => resolve(code)))
  assert.equal(close, 4400)
})

test('startServer refuses what does not go with server, before it opens anything', async (t) => {
  const app = createServer()
  const dir = await tempDir()
  t.after(() => dir.remove())
  const data = join(dir.path, 'never')
  const refused: Array<[Record<string, unknown>, RegExp]> = [
    [{ server: app, port: 1234 }, /^port does not go with server/],
    [{ server: app, host: '0.0.0.0' }, /^host does not go with server/],
    [{ server: app, tlsCert: 'cert.pem' }, /^tlsCert does not go with server: create your server with node:https/],
    [{ server: app, headersTimeout: 1000 }, /^headersTimeout does not go with server/],
    [{ server: app, requestTimeout: 1000 }, /^requestTimeout does not go with server/],
    [{ server: app, maxConnections: 10 }, /^maxConnections does not go with server/],
    [{ path: '/collab' }, /^path goes with server/],
    [{ server: {} }, /^server must be a node:http or node:https server/],
    [{ server: app, path: 'collab' }, /^path must be a URL path/],
    [{ server: app, path: '/a?b=1' }, /^path must be a URL path/],
    [{ server: app, path: '/a%2Fb' }, /^path must be a URL path/],
    [{ server: app, path: '/a//b' }, /^path must be a URL path/],
    [{ server: app, path: '/a\nb' }, /^path must be a URL path/],
    [{ server: app, path: 42 }, /^path must be a URL path/],
  ]
  for (const [options, message] of refused) {
    await assert.rejects(startServer({ ...options, dataDir: data } as Parameters<typeof startServer>[0]), (err: { code?: string; message?: string }) => err.code === 'BAD_OPTIONS' && message.test(err.message ?? ''), JSON.stringify(Object.keys(options)))
  }
  assert.equal(existsSync(data), false, 'no store was opened')
  assert.equal(app.listenerCount('upgrade'), 0, 'nothing was attached')
})

test('the Express example (examples/express): the app answers, providers sync under /collab, close() leaves the app listening', async (t) => {
  const example = join(ROOT, 'examples', 'express')
  let express: string | undefined
  try {
    express = createRequire(join(example, 'server.js')).resolve('express')
  } catch {
    express = undefined
  }
  if (!express) {
    const message = 'the Express example needs express: npm install (it is a devDependency), or npm install --prefix examples/express'
    if (process.env.CI) throw new Error(message)
    t.skip(message)
    return
  }
  // `import ... from 'coedit'` in the example resolves to this checkout's sources.
  register(pathToFileURL(join(ROOT, 'test', 'helpers', 'coedit-alias.mjs')))
  const dir = await tempDir()
  const token = 'an-admin-token-for-the-express-example'
  // A computed specifier: the example is plain JavaScript, typed here by what the test uses.
  const module = pathToFileURL(join(example, 'server.js')).href
  const { start } = await import(module) as { start(options: object): Promise<{ http: Server; coedit: CoeditServer }> }
  const { http, coedit } = await start({ port: 0, dataDir: dir.path, adminToken: token })
  let closed = false
  t.after(async () => {
    if (!closed) await coedit.close()
    http.close()
    await dir.remove()
  })
  const base = `http://127.0.0.1:${(http.address() as { port: number }).port}`
  assert.equal(await (await fetch(`${base}/`)).text(), 'my app\n')
  assert.deepEqual(await (await fetch(`${base}/api/hello`)).json(), { hello: 'world' })
  assert.equal(coedit.url, `${base.replace('http', 'ws')}/collab`)
  await collaborate(coedit.url, 'notes', t)
  assert.deepEqual(await (await fetch(`${base}/readyz`)).json(), { status: 'ready', storage: 'ok' })
  const rooms = await fetch(`${base}/admin/rooms`, { headers: { Authorization: `Bearer ${token}` } })
  assert.deepEqual(((await rooms.json()) as { rooms: Array<{ name: string }> }).rooms.map((r) => r.name), ['notes'])
  assert.equal((await fetch(`${base}/no-such-page`)).status, 404, 'Express answers what neither serves')

  const client: Client = connect(coedit.url, 'notes')
  t.after(() => client.destroy())
  await synced(client)
  const stop = new Promise<number>((resolve) => client.provider.once('closed', (e: { code: number }) => resolve(e.code)))
  assert.equal((await fetch(`${base}/api/rooms/notes`, { method: 'DELETE' })).status, 204, 'the app deletes a room through coedit.rooms')
  assert.equal(await stop, 4410)

  await coedit.close()
  closed = true
  assert.equal(http.listening, true)
  assert.deepEqual(await (await fetch(`${base}/api/hello`)).json(), { hello: 'world' }, 'the app still answers')
})
