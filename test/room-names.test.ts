/**
 * Room names, one rule for the WebSocket path and the admin API: `%XX` decoded where
 * valid and literal elsewhere (`/100%` is room `100%`), refused names (empty, too long,
 * control, bidi and invisible formatting characters) closed with 4400 after the upgrade
 * so that the stock provider stops instead of retrying, and names escaped for terminals.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as Y from 'yjs'
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import { checkRoomName, decodeRoomPath, escapeRoomName } from '../server/room/room-name.js'
import { connect, synced, tempDir, waitFor } from './helpers/index.js'
import { serverWithLogs } from './helpers/log-capture.js'
import { cli } from './helpers/cli.js'

/** Names the check must refuse, one per kind, each a character an attacker would pick. */
const REFUSED: Array<[string, string]> = [
  ['newline', 'a\nb'],
  ['NUL', 'a\u0000b'],
  ['DEL', 'a\u007fb'],
  ['C1 control (CSI)', 'a\u009b31mb'],
  ['C1 control (NEL)', 'a\u0085b'],
  ['right-to-left override', 'invoice\u202Efdp.exe'],
  ['left-to-right embedding', 'a\u202Ab'],
  ['first strong isolate', 'a\u2068b'],
  ['pop directional isolate', 'a\u2069b'],
  ['right-to-left mark', 'a\u200Fb'],
  ['arabic letter mark', 'a\u061Cb'],
  ['line separator', 'a\u2028b'],
  ['zero width space', 'a\u200Bb'],
  ['byte order mark', '\uFEFFa'],
  ['soft hyphen', 'a\u00ADb'],
  ['lone surrogate', 'a\uD800b'],
  ['5,000 characters', 'a'.repeat(5000)],
  ['513 characters', 'a'.repeat(513)],
  ['empty', ''],
]

test('percent-decoding: %XX where it spells UTF-8, literal elsewhere', () => {
  const cases: Array<[string, string]> = [
    ['notes', 'notes'],
    ['team%2Fnotes', 'team/notes'],
    ['100%', '100%'],
    ['Q3%2050%%20plan', 'Q3 50% plan'],
    ['50%off', '50%off'],
    ['%', '%'],
    ['%%', '%%'],
    ['%2', '%2'],
    ['%zz', '%zz'],
    ['caf%C3%A9', 'café'],
    ['%C3', '%C3'],
    ['%FFx%41', '%FFxA'],
    ['%C3%A9%FF', 'é%FF'],
    ['%E2%82', '%E2%82'],
    ['%ED%A0%80', '%ED%A0%80'], // a UTF-8-encoded surrogate is not UTF-8
    ['%C0%AF', '%C0%AF'], // overlong '/'
    ['%F0%9F%98%80', '\u{1F600}'],
    ['%25', '%'],
    ['%EF%BB%BFa', '\uFEFFa'], // kept, for the check to refuse
  ]
  for (const [path, room] of cases) assert.equal(decodeRoomPath(path), room, path)
})

test('the name check refuses controls, bidi and invisible formatting; emoji and scripts pass', () => {
  for (const [what, name] of REFUSED) assert.equal(checkRoomName(name).ok, false, what)
  const fine = ['notes', 'team/notes', '100%', 'Q3 50% plan', 'café', '\u{1F468}\u200D\u{1F469}\u200D\u{1F467}', '\u2764\uFE0F', 'نامه\u200Cها', 'a\\b', '日本語']
  for (const name of fine) assert.deepEqual(checkRoomName(name), { ok: true, room: name }, name)
})

test('escapeRoomName writes what a terminal would act on as \\xNN or \\u{...}', () => {
  assert.equal(escapeRoomName('plain/name 100%'), 'plain/name 100%')
  assert.equal(escapeRoomName('a\nb\u0000c\u001b[31m'), 'a\\x0ab\\x00c\\x1b[31m')
  assert.equal(escapeRoomName('a\u009b31m\u0085'), 'a\\x9b31m\\x85')
  assert.equal(escapeRoomName('invoice\u202Efdp.exe'), 'invoice\\u{202E}fdp.exe')
  assert.equal(escapeRoomName('\u2066x\u2069\uFEFF'), '\\u{2066}x\\u{2069}\\u{FEFF}')
  assert.equal(escapeRoomName('a\uD800b'), 'a\\u{D800}b')
  assert.equal(escapeRoomName('\u{1F600}\u200D'), '\u{1F600}\u200D', 'a surrogate pair and a joiner stay')
  // Nothing left that a terminal would interpret.
  for (const [, name] of REFUSED) assert.doesNotMatch(escapeRoomName(name), /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/)
})

test('a stock provider opens rooms whose names are not valid percent-encoding: /100% and /Q3 50% plan', async (t) => {
  const { server } = await serverWithLogs(t)
  for (const room of ['100%', 'Q3 50% plan']) {
    const writer = connect(server.url, room)
    const reader = connect(server.url, room)
    t.after(() => { writer.destroy(); reader.destroy() })
    await synced(writer)
    await synced(reader)
    writer.text.insert(0, `in ${room}`)
    await waitFor(() => reader.text.toString() === `in ${room}`, { message: `${room} relayed` })
  }
  assert.deepEqual(server.registry.rooms.map((r) => r.name).sort(), ['100%', 'Q3 50% plan'])
})

test('a refused name closes a stock provider once with 4400 and the reason: no retry loop', async (t) => {
  const { server, logs } = await serverWithLogs(t)
  const attempts = (): number => logs.filter((l) => l.event === 'upgrade_refused' && l.code === 'BAD_ROOM_NAME').length
  const doc = new Y.Doc()
  // A short backoff, so that a retry loop, if there were one, shows within a few attempts.
  const MAX_BACKOFF = 100
  const provider = new WebsocketProvider(server.url, 'a'.repeat(513), doc, {
    WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket, disableBc: true, maxBackoffTime: MAX_BACKOFF, resyncInterval: -1,
  })
  t.after(() => { provider.destroy(); doc.destroy() })
  const closes: Array<{ code: number; reason: string }> = []
  provider.on('connection-close', (event) => { if (event) closes.push({ code: event.code, reason: event.reason }) })
  let closed: { code: number; reason: string } | undefined
  provider.on('closed', (close: { code: number; reason: string }) => { closed = close })
  // Before, the upgrade got HTTP 400 and the provider retried forever: stop after a few attempts.
  await waitFor(() => closed !== undefined || attempts() >= 3, { timeout: 10_000, message: 'a terminal close or a retry loop' })
  assert.equal(closed?.code, 4400, `closes seen: ${JSON.stringify(closes)}`)
  assert.match(closed.reason, /longer than 512/)
  // A second attempt would come within 2 x MAX_BACKOFF; a legitimate client's whole sync takes longer than that, and it is waited for too.
  const started = Date.now()
  const other = connect(server.url, 'fine')
  t.after(() => other.destroy())
  await synced(other)
  await waitFor(() => Date.now() - started > 10 * MAX_BACKOFF, { message: 'ten backoff periods' })
  assert.equal(attempts(), 1, 'one connection attempt')
  assert.equal(provider.shouldConnect, false)
})

test('the admin API refuses the names the WebSocket path refuses', async (t) => {
  const { server } = await serverWithLogs(t, { adminToken: 'admin-token-for-names' })
  const update = (() => {
    const doc = new Y.Doc()
    doc.getText('text').insert(0, 'x')
    return Y.encodeStateAsUpdate(doc)
  })()
  for (const [what, name] of REFUSED) {
    // No route for an empty name; a lone surrogate cannot be spelled in UTF-8 percent-encoding.
    if (name === '' || what === 'lone surrogate') continue
    const res = await fetch(`${server.httpUrl}/admin/rooms/${encodeURIComponent(name)}/import?format=update`, {
      method: 'POST', body: update, headers: { Authorization: 'Bearer admin-token-for-names' },
    })
    const body = await res.json() as { error?: { code: string } }
    assert.equal(res.status, 400, what)
    assert.equal(body.error?.code, 'BAD_ROOM_NAME', what)
  }
  assert.deepEqual(server.registry.rooms.map((r) => r.name), [], 'no refused name was created')
  const res = await fetch(`${server.httpUrl}/admin/rooms/100%25/import?format=update`, {
    method: 'POST', body: update, headers: { Authorization: 'Bearer admin-token-for-names' },
  })
  assert.equal(res.status, 200)
  const reader = connect(server.url, '100%')
  t.after(() => reader.destroy())
  await waitFor(() => reader.text.toString() === 'x', { message: 'the imported room is the one /100% opens' })
})

test('offline `coedit import` refuses the names the server refuses, before the data directory is even created', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const data = join(dir.path, 'data')
  const file = join(dir.path, 'text.txt')
  await writeFile(file, 'hello')
  for (const [what, name] of REFUSED) {
    // A process argument cannot hold NUL; an empty name is a usage error (exit 2) before any check.
    if (what === 'NUL' || name === '') continue
    const res = await cli(['import', name, file, '--format', 'text', '--data', data])
    assert.equal(res.code, 1, `${what}: ${res.stderr}`)
    assert.match(res.stderr, /room name/, what)
  }
  await assert.rejects(stat(data), { code: 'ENOENT' }, 'no data directory was created')
  const ok = await cli(['import', 'team/notes 100%', file, '--format', 'text', '--data', data])
  assert.equal(ok.code, 0, ok.stderr)
  const rooms = await cli(['rooms', '--data', data, '--json'])
  assert.deepEqual((JSON.parse(rooms.out) as Array<{ name: string }>).map((r) => r.name), ['team/notes 100%'])
})
