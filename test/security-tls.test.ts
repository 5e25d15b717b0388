/**
 * TLS: with --tls-cert/--tls-key the server speaks https:// and wss:// itself (with HSTS),
 * and stock providers sync over it; plain ws:// to the same port gets nowhere.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { get } from 'node:https'
import { connect as connectTcp } from 'node:net'
import { join } from 'node:path'
import WebSocket from 'ws'
import { startServer } from '../server/index.js'
import { PROBE_RESERVE } from '../server/transport/connections.js'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { tempDir, waitFor } from './helpers/index.js'
import { runCli } from './helpers/child-server.js'

/** A self-signed certificate for 127.0.0.1 (files removed after the test), and itself as the CA a client trusts. */
async function selfSignedCert(t: { after: (fn: () => Promise<void>) => void }): Promise<{ cert: string; key: string; ca: Buffer }> {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const cert = join(dir.path, 'cert.pem')
  const key = join(dir.path, 'key.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' })
  return { cert, key, ca: await readFile(cert) }
}

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

test('--tls-cert/--tls-key serve https:// and wss://', { skip: hasOpenssl() ? false : 'openssl is not installed' }, async (t) => {
  const { cert, key, ca } = await selfSignedCert(t)

  const server = await startServer({ storage: 'memory', tlsCert: cert, tlsKey: key })
  t.after(() => server.close())
  assert.match(server.url, /^wss:\/\//)
  assert.match(server.httpUrl, /^https:\/\//)

  const health = await new Promise<{ status: number; body: string; hsts: unknown }>((resolve, reject) => {
    get(`${server.httpUrl}/healthz`, { ca }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, hsts: res.headers['strict-transport-security'] }))
    }).on('error', reject)
  })
  assert.equal(health.status, 200)
  assert.match(String(health.hsts), /^max-age=\d+/, 'HSTS under TLS')

  // The stock provider over wss://, trusting our self-signed certificate.
  class TrustingWebSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { ca })
    }
  }
  const polyfill = TrustingWebSocket as unknown as typeof globalThis.WebSocket
  const open = (): { doc: Y.Doc; provider: WebsocketProvider } => {
    const doc = new Y.Doc()
    const provider = new WebsocketProvider(server.url, 'secure', doc, { WebSocketPolyfill: polyfill, disableBc: true })
    t.after(() => { provider.destroy(); doc.destroy() })
    return { doc, provider }
  }
  const a = open()
  const b = open()
  await waitFor(() => a.provider.synced && b.provider.synced, { message: 'both synced over wss' })
  a.doc.getText('text').insert(0, 'over tls')
  await waitFor(() => b.doc.getText('text').toString() === 'over tls', { message: 'edit relayed over wss' })

  // An untrusted certificate is refused by the client; plain ws:// gets no WebSocket.
  const plainFails = await new Promise<boolean>((resolve) => {
    const ws = new WebSocket(server.url.replace('wss://', 'ws://') + '/secure')
    ws.once('open', () => { ws.terminate(); resolve(false) })
    ws.once('error', () => resolve(true))
  })
  assert.ok(plainFails, 'plain ws:// to the TLS port does not open')
})

test('under TLS a connection past --max-connections is answered 503 after the handshake (a liveness probe 200); past the probe reserve it is closed', { skip: hasOpenssl() ? false : 'openssl is not installed' }, async (t) => {
  const { cert, key, ca } = await selfSignedCert(t)
  const server = await startServer({ storage: 'memory', tlsCert: cert, tlsKey: key, maxConnections: 1 })
  t.after(() => server.close())
  const held = connectTcp(server.port, '127.0.0.1')
  t.after(() => held.destroy())
  await new Promise((resolve) => held.once('connect', resolve))
  const outcome = (path: string): Promise<string> => new Promise<string>((resolve) => {
    get(`${server.httpUrl}${path}`, { ca, agent: false }, (res) => { res.resume(); resolve(`status ${res.statusCode}`) })
      .on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code}`))
  })
  assert.equal(await outcome('/readyz'), 'status 503')
  assert.equal(await outcome('/healthz'), 'status 200', 'a full server is alive')
  // Silent connections fill the reserve of connections read past the bound: the next is closed unanswered.
  const silent = Array.from({ length: PROBE_RESERVE }, () => connectTcp(server.port, '127.0.0.1'))
  t.after(() => { for (const s of silent) s.destroy() })
  await Promise.all(silent.map((s) => new Promise((resolve) => s.once('connect', resolve))))
  assert.match(await outcome('/healthz'), /^error /)
  held.destroy()
  await waitFor(() => new Promise<boolean>((resolve) => {
    get(`${server.httpUrl}/healthz`, { ca, agent: false }, (res) => { res.resume(); resolve(res.statusCode === 200) }).on('error', () => resolve(false))
  }), { message: 'served again once the held connection is gone' })
})

test('--tls-cert without --tls-key is a usage error', async () => {
  const r = await runCli(['serve', '--port', '0', '--tls-cert', 'x.pem'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /tls-key/)
})
