/**
 * Probes mean something: /healthz while the process serves, /readyz only while the
 * store can write and the server is not shutting down, and 503 from the moment a
 * shutdown starts, before any connection is closed.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { startServer, MemoryStore, type Store } from '../server/index.js'
import { connect, synced, tempDir, waitFor } from './helpers/index.js'
import { startChildServer } from './helpers/child-server.js'
import { RawClient } from './helpers/raw-client.js'

async function probe(httpUrl: string, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(httpUrl + path)
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

test('healthz and readyz answer 200 on a LevelDB server; readyz turns 503 when the store is closed', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const server = await startServer({ dataDir: dir.path })
  t.after(() => server.close())

  assert.deepEqual(await probe(server.httpUrl, '/healthz'), { status: 200, body: { status: 'ok' } })
  assert.deepEqual(await probe(server.httpUrl, '/readyz'), { status: 200, body: { status: 'ready', storage: 'ok' } })

  await server.store.close()
  const after = await probe(server.httpUrl, '/readyz')
  assert.equal(after.status, 503)
  assert.deepEqual(after.body, { status: 'storage_unavailable', code: 'STORE_CLOSED' })
  // The process is still up: liveness must not restart it for a storage problem.
  assert.equal((await probe(server.httpUrl, '/healthz')).status, 200)
})

test('readyz follows the memory store too, and a store without ping() is ready but unchecked', async (t) => {
  const memory = new MemoryStore()
  const a = await startServer({ storage: memory })
  t.after(() => a.close())
  assert.equal((await probe(a.httpUrl, '/readyz')).status, 200)
  await memory.close()
  assert.equal((await probe(a.httpUrl, '/readyz')).status, 503)

  const inner = new MemoryStore()
  const plain: Store = {
    load: (r) => inner.load(r),
    append: (r, u) => inner.append(r, u),
    compact: (r, s, u) => inner.compact(r, s, u),
    delete: (r) => inner.delete(r),
    listRooms: () => inner.listRooms(),
    close: () => inner.close(),
  }
  const b = await startServer({ storage: plain })
  t.after(() => b.close())
  assert.deepEqual(await probe(b.httpUrl, '/readyz'), { status: 200, body: { status: 'ready', storage: 'unchecked' } })
})

test('close(): readyz is 503 while connections are still open (with --shutdown-delay)', async (t) => {
  // The delay must outlast one probe round trip, which a loaded machine can stretch to a second or more.
  const server = await startServer({ shutdownDelay: 5000 })
  const client = connect(server.url, 'drain')
  t.after(() => client.destroy())
  await synced(client)
  let wsClosedAt = 0
  client.provider.on('status', ({ status }: { status: string }) => {
    if (status === 'disconnected' && wsClosedAt === 0) wsClosedAt = Date.now()
  })

  // An existing keep-alive connection keeps answering during the delay.
  const closing = server.close()
  const first = await probe(server.httpUrl, '/readyz')
  assert.equal(first.status, 503)
  assert.deepEqual(first.body, { status: 'shutting_down' })
  assert.equal(wsClosedAt, 0, 'readiness must flip before connections are closed')
  assert.equal(client.provider.wsconnected, true)
  await closing
  await waitFor(() => wsClosedAt > 0, { timeout: 10_000, message: 'the connection to close' })
})

test('SIGTERM: readyz is 503 before the WebSocket is closed with 1001, then the process exits 0', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  // The delay must outlast the probes' round trips to the child, which load stretches.
  const server = await startChildServer(['--data', dir.path, '--shutdown-delay', '5s'])
  t.after(() => server.kill('SIGKILL'))
  const httpUrl = `http://127.0.0.1:${server.port}`
  assert.equal((await probe(httpUrl, '/readyz')).status, 200)

  const ws = await RawClient.open(`${server.url}/sigterm-room`)
  t.after(() => ws.close())
  // One keep-alive socket, opened before the signal: the listener stops accepting once the delay is over.
  const agentSocket = await keepAliveProbe(httpUrl)
  t.after(() => agentSocket.destroy())

  server.child.kill('SIGTERM')
  let seen = { status: 0, body: '' }
  await waitFor(async () => {
    seen = await agentSocket.get('/readyz')
    return seen.status === 503
  }, { timeout: 10_000, message: 'readyz 503 after SIGTERM' })
  assert.equal(JSON.parse(seen.body).status, 'shutting_down')
  assert.equal(ws.closeInfo, undefined, 'the WebSocket must still be open when readiness flips')

  const closed = await ws.waitClosed(20_000)
  assert.equal(closed.code, 1001)
  const exit = await server.exited
  assert.equal(exit.code, 0)
  const shutdown = server.logs.find((l) => l.event === 'shutdown')
  assert.ok(shutdown, 'shutdown is logged')
})

/** GETs over one kept-alive connection (a load balancer's health checker does the same). */
async function keepAliveProbe(httpUrl: string): Promise<{ get(path: string): Promise<{ status: number; body: string }>; destroy(): void }> {
  const { Agent } = await import('node:http')
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  const get = (path: string): Promise<{ status: number; body: string }> => new Promise((resolve, reject) => {
    const req = request(httpUrl + path, { agent }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
  await get('/healthz')
  return { get, destroy: () => agent.destroy() }
}
