/** y-websocket 2.x and 3.x providers (both unmodified) share one room: documents and presence converge. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import WebSocket from 'ws'
import { WebsocketProvider as ProviderV2 } from 'y-websocket-v2'
import { startServer } from '../server/index.js'
import { connect, synced, tempDir, waitFor } from './helpers/index.js'

test('y-websocket 2.x and 3.x clients converge in one room, across a restart', async (t) => {
  const dir = await tempDir()
  let server = await startServer({ dataDir: dir.path })
  const port = server.port
  const v3 = connect(server.url, 'mixed')
  const v2doc = new Y.Doc()
  const v2 = new ProviderV2(server.url, 'mixed', v2doc, {
    // ws implements the WebSocket API the provider needs; its types differ from the DOM's.
    WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
    disableBc: true,
    resyncInterval: -1,
  })
  t.after(async () => {
    v2.destroy()
    // The 2.x provider leaves its awareness (and its interval timer) alive until the doc goes.
    v2doc.destroy()
    v3.destroy()
    await server.close()
    await dir.remove()
  })
  await synced(v3)
  await waitFor(() => v2.synced, { message: 'the 2.x provider synced' })

  v3.text.insert(0, 'three ')
  v2doc.getText('text').insert(0, 'two ')
  v2doc.getMap('meta').set('from', 'v2')
  await waitFor(() => v3.text.toString() === v2doc.getText('text').toString() && v3.doc.getMap('meta').get('from') === 'v2', { message: 'convergence' })
  assert.equal(v3.text.length, 'three two '.length)

  v2.awareness.setLocalStateField('user', { name: 'Two' })
  v3.provider.awareness.setLocalStateField('user', { name: 'Three' })
  await waitFor(() => (v3.provider.awareness.getStates().get(v2doc.clientID) as { user?: { name?: string } } | undefined)?.user?.name === 'Two', { message: '3.x sees 2.x presence' })
  await waitFor(() => (v2.awareness.getStates().get(v3.doc.clientID) as { user?: { name?: string } } | undefined)?.user?.name === 'Three', { message: '2.x sees 3.x presence' })

  // Both reconnect by themselves after a restart, and edits made meanwhile meet.
  await server.close()
  v2doc.getText('text').insert(0, '[2 offline]')
  v3.text.insert(v3.text.length, '[3 offline]')
  server = await startServer({ dataDir: dir.path, port })
  await waitFor(() => v2.synced && v3.provider.synced && v3.text.toString() === v2doc.getText('text').toString(), { timeout: 30_000, message: 'convergence after restart' })
  assert.ok(v3.text.toString().includes('[2 offline]') && v3.text.toString().includes('[3 offline]'))
  assert.deepEqual(Buffer.from(Y.encodeStateVector(v3.doc)), Buffer.from(Y.encodeStateVector(v2doc)))
})
