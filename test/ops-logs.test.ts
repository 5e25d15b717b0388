/**
 * Logs a machine can read: one JSON line per event, with the fields an operator
 * needs, and never a token or a document's content.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startServer } from '../server/index.js'
import { createLogger } from '../server/log.js'
import { connect, synced, tempDir, waitFor } from './helpers/index.js'
import { RawClient } from './helpers/raw-client.js'
import { captureLog as capture } from './helpers/log-capture.js'

test('one JSON line per connection open/close, room load/unload and error; no token, no content', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const out = capture()
  const server = await startServer({ dataDir: dir.path, roomGrace: 50, logger: createLogger('info', out.stream) })
  t.after(() => server.close())

  const SECRET_TEXT = 'confidential-document-text-7f3a'
  const TOKEN = 'eyJhbGciOiJIUzI1NiJ9.not-a-real-token.sig9q'
  const client = connect(server.url, 'logged-room', { params: { token: TOKEN } })
  await synced(client)
  client.text.insert(0, SECRET_TEXT)
  await waitFor(() => server.registry.rooms[0]?.doc.getText('text').toString() === SECRET_TEXT, { message: 'the edit to be stored' })
  client.destroy()
  await waitFor(() => out.lines().some((l) => l.event === 'room_unloaded'), { timeout: 10_000, message: 'room_unloaded' })

  const bad = await RawClient.open(`${server.url}/logged-room`)
  bad.send(new Uint8Array([0xde, 0xad, 0xbe, 0xef]))
  await bad.waitClosed()
  await waitFor(() => out.lines().some((l) => l.event === 'bad_message'), { message: 'bad_message' })

  const lines = out.lines()
  for (const line of lines) {
    assert.equal(typeof line.level, 'number')
    assert.equal(typeof line.time, 'string')
    assert.ok(!Number.isNaN(Date.parse(line.time as string)), 'ISO time')
    assert.equal(typeof line.msg, 'string')
  }
  const open = lines.find((l) => l.event === 'connection_open')
  assert.ok(open)
  assert.equal(open.room, 'logged-room')
  assert.equal(typeof open.peer, 'string')
  const close = lines.find((l) => l.event === 'connection_close' && l.peer === open.peer)
  assert.ok(close)
  assert.equal(close.room, 'logged-room')
  assert.equal(typeof close.code, 'number')
  assert.equal(typeof close.ms, 'number')
  assert.ok((close.bytesIn as number) > SECRET_TEXT.length, 'bytes in counts the edit')
  assert.ok((close.bytesOut as number) > 0)
  const loaded = lines.find((l) => l.event === 'room_loaded')
  assert.equal(loaded?.room, 'logged-room')
  assert.equal(typeof loaded?.ms, 'number')
  assert.equal(lines.find((l) => l.event === 'room_unloaded')?.room, 'logged-room')
  const error = lines.find((l) => l.event === 'bad_message')
  assert.ok(error)
  assert.equal(error.level, 40, 'warn')
  assert.equal(typeof error.code, 'string')

  const raw = out.raw()
  assert.ok(!raw.includes(SECRET_TEXT), 'document content never reaches the log')
  assert.ok(!raw.includes(TOKEN), 'tokens never reach the log')
})

test('token-like fields are censored should one reach a log call', () => {
  const out = capture()
  const log = createLogger('info', out.stream)
  log.info({ event: 'x', token: 'abc123', nested: { authorization: 'Bearer abc123' } }, 'test')
  assert.ok(!out.raw().includes('abc123'))
  assert.equal(out.lines()[0]!.token, '[redacted]')
})
