/**
 * Document structure: shared types nested deeper than --max-nesting-depth are refused
 * before they are stored (close 4400, TOO_DEEP), whatever the type and however the
 * nesting is spelled (explicit parents, origins, pieces sent out of order, several
 * clients), and a room that already holds such content (stored before the limit existed)
 * loads and is served without bringing the process down. Where a crash is the point the
 * server is a child process.
 */
import { test } from 'node:test'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { startServer, type CoeditServer } from '../server/index.js'
import { LevelStore } from '../server/persistence/leveldb.js'
import { docFromUpdates } from '../server/room/yjs-log.js'
import { encodeSyncStep2, encodeSyncUpdate } from '../server/room/protocol.js'
import { connect, synced, tempDir, waitFor, type Client } from './helpers/index.js'
import { RawClient } from './helpers/raw-client.js'
import { runCli, startChildServer, type ChildServer } from './helpers/child-server.js'
import { NEST_KINDS, buildNest, deleteOnly, maxDepth, simpleNest } from './helpers/fuzz-structure.js'

/** The attack of issue 13: 20,000 nested Y.Maps by client 1 (~180 KB) and a delete of the outermost. */
function poison(): { content: Uint8Array; del: Uint8Array } {
  const doc = new Y.Doc()
  doc.clientID = 1
  let map = doc.getMap('nest')
  doc.transact(() => {
    for (let i = 0; i < 20_000; i++) {
      const child = new Y.Map<unknown>()
      map.set('k', child)
      map = child
    }
  })
  return { content: Y.encodeStateAsUpdate(doc), del: deleteOnly({ client: 1, clock: 0 }) }
}

/** Two stock clients of `room` see each other's edit: the process serves. */
async function serves(url: string, room: string, mark: string): Promise<void> {
  const a = connect(url, room)
  const b = connect(url, room)
  try {
    await Promise.all([synced(a, 15_000), synced(b, 15_000)])
    a.text.insert(0, mark)
    await waitFor(() => b.text.toString().includes(mark), { timeout: 15_000, message: `room ${room} relays` })
  } finally {
    a.destroy()
    b.destroy()
  }
}

/** A raw client of `room` gets another's update relayed: the server side of the room serves. */
async function relays(url: string, room: string): Promise<void> {
  const a = await RawClient.open(`${url}/${room}`)
  const b = await RawClient.open(`${url}/${room}`)
  try {
    await Promise.all([a.waitForMessage('sync-step1', 0, 15_000), b.waitForMessage('sync-step1', 0, 15_000)])
    const doc = new Y.Doc()
    doc.getText('text').insert(0, 'raw edit')
    const from = a.messages.length
    b.send(encodeSyncUpdate(Y.encodeStateAsUpdate(doc)))
    await a.waitForMessage('sync-update', from, 15_000)
  } finally {
    a.close()
    b.close()
  }
}

async function healthy(child: ChildServer): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${child.port}/healthz`)
  assert.equal(res.status, 200)
  assert.equal(child.child.exitCode, null, 'the server process is alive')
}

test('the poisoned-room attack is refused before anything is stored, and the room survives restarts', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir()
  let server: ChildServer | undefined
  t.after(async () => {
    await server?.kill('SIGKILL')
    await dir.remove()
  })
  const args = ['--data', dir.path, '--log-level', 'info']
  server = await startChildServer(args)
  const { content, del } = poison()
  const writer = await RawClient.open(`${server.url}/poison`)
  t.after(() => writer.close())
  writer.send(encodeSyncUpdate(content))
  const closed = await writer.waitClosed(30_000)
  assert.equal(closed.code, 4400)
  assert.match(closed.reason, /^TOO_DEEP\b/)
  assert.equal(server.logs.filter((l) => l.code === 'TOO_DEEP').length, 1, 'logged once')

  // The 7-byte delete on its own is harmless (it deletes nothing the room has).
  const deleter = await RawClient.open(`${server.url}/poison`)
  t.after(() => deleter.close())
  deleter.send(encodeSyncUpdate(del))
  await serves(server.url, 'canary', 'before')
  await healthy(server)

  for (let restart = 0; restart < 2; restart++) {
    await server.kill('SIGKILL')
    server = await startChildServer(args)
    const joiner = connect(server.url, 'poison')
    t.after(() => joiner.destroy())
    await synced(joiner, 30_000)
    assert.equal(maxDepth(joiner.doc), 0, 'nothing of the nesting was stored')
    await serves(server.url, 'canary', `after-${restart}`)
    await healthy(server)
    joiner.destroy()
  }
})

test('a room stored with too-deep content before the limit loads, is served, and never takes the process down', { timeout: 180_000 }, async (t) => {
  const dir = await tempDir()
  let server: ChildServer | undefined
  t.after(async () => {
    await server?.kill('SIGKILL')
    await dir.remove()
  })
  // Written straight into the store, as a server without the limit would have stored it.
  const { content, del } = poison()
  const store = await LevelStore.open(dir.path)
  // A log (content, then the delete): loaded by Room.load in one transaction.
  await store.append('poison-log', [content])
  await store.append('poison-log', [del])
  // One compacted state holding both: served as stored, then integrated from setImmediate.
  const seq = await store.append('poison-state', [content])
  await store.compact('poison-state', Y.mergeUpdates([content, del]), seq)
  // Deep, not deleted: it loads; a client's delete of it then runs in the live room.
  await store.append('deep-live', [content])
  await store.close()

  const args = ['--data', dir.path, '--log-level', 'info']
  for (let restart = 0; restart < 2; restart++) {
    server = await startChildServer(args)
    for (const room of ['poison-log', 'poison-state', 'deep-live']) {
      const c = connect(server.url, room)
      t.after(() => c.destroy())
      await synced(c, 30_000)
      await serves(server.url, 'canary', `${room}-${restart}`)
      await healthy(server)
      // The room itself keeps serving edits. (A client of the state-only room holds the
      // stored state it was sent, deletion included, which its own Yjs cannot apply: only
      // the server side is checked there.)
      if (room === 'poison-state') await relays(server.url, room)
      else await serves(server.url, room, `edit-${restart}`)
      c.destroy()
    }
    const skipped = server.logs.filter((l) => l.event === 'load_update_skipped')
    assert.ok(skipped.some((l) => l.room === 'poison-log' && l.code === 'TOO_DEEP'), 'the log\'s delete is skipped and logged')
    assert.ok(skipped.some((l) => l.room === 'poison-state' && l.code === 'TOO_DEEP'), 'the state is applied as far as it goes and logged')
    const contained = server.logs.filter((l) => l.event === 'contained_error').map((l) => `${String(l.room)}:${String(l.path)}`)
    assert.ok(contained.includes('poison-log:room_load'), contained.join(', '))
    // Once edited, the state-only room has a log too, and loads through Room.load.
    assert.ok(contained.includes(restart === 0 ? 'poison-state:room_integrate' : 'poison-state:room_load'), contained.join(', '))

    // A client deleting the deep content of a live room: refused, the room goes on.
    const deleter = await RawClient.open(`${server.url}/deep-live`)
    t.after(() => deleter.close())
    await deleter.waitForMessage('sync-step1', 0, 30_000)
    deleter.send(encodeSyncUpdate(del))
    const closed = await deleter.waitClosed(30_000)
    assert.equal(closed.code, 4400)
    await serves(server.url, 'deep-live', `after-delete-${restart}`)
    const late = connect(server.url, 'deep-live')
    t.after(() => late.destroy())
    await synced(late, 30_000)
    assert.ok(late.text.toString().includes(`after-delete-${restart}`), 'a later joiner gets the edits made after the refused delete')
    late.destroy()
    await serves(server.url, 'canary', `end-${restart}`)
    await healthy(server)
    await server.kill('SIGTERM')
  }

  // Offline export: a clear one-line error (exit 1), not a stack trace.
  for (const room of ['poison-log', 'poison-state']) {
    const out = await runCli(['export', room, '--data', dir.path, '--format', 'json'], {}, 60_000)
    assert.equal(out.code, 1, out.stderr)
    assert.equal(out.stderr.trim().split('\n').length, 1, out.stderr)
    assert.doesNotMatch(out.stderr, /\n\s+at /)
  }
  const ok = await runCli(['export', 'deep-live', '--data', dir.path, '--format', 'update'], {}, 60_000)
  assert.equal(ok.code, 0, ok.stderr)
})

async function rawRoom(server: CoeditServer, room: string): Promise<RawClient> {
  const raw = await RawClient.open(`${server.url}/${room}`)
  await raw.waitForMessage('sync-step1', 0, 10_000)
  return raw
}

/** Sends `updates` on one connection (without waiting in between) and reports how it ended. */
async function send(server: CoeditServer, room: string, updates: Uint8Array[], step2 = false): Promise<{ code: number; reason: string } | undefined> {
  const raw = await rawRoom(server, room)
  try {
    for (const u of updates) raw.send(step2 ? encodeSyncStep2(u) : encodeSyncUpdate(u))
    await server.registry.rooms.find((r) => r.name === room)?.flushed()
    // Settled: the server answered a ping sent after every update (or closed).
    await new Promise<void>((resolve) => { raw.ws.once('pong', () => resolve()); raw.ws.once('close', () => resolve()); raw.ws.ping() })
    await server.registry.rooms.find((r) => r.name === room)?.flushed()
    return raw.closeInfo
  } finally {
    raw.close()
  }
}

async function storedDepth(server: CoeditServer, room: string): Promise<number> {
  const stored = await server.store.load(room)
  const doc = docFromUpdates(stored.updates)
  try {
    return maxDepth(doc)
  } finally {
    doc.destroy()
  }
}

test('every type of nesting is refused past the limit and accepted up to it, through parents and through origins', async (t) => {
  const limit = 24
  const server = await startServer({ maxNestingDepth: limit })
  t.after(() => server.close())
  let n = 0
  for (const kind of [...NEST_KINDS, 'mixed'] as const) {
    for (const viaOrigin of [false, true]) {
      const at = (depth: number): Uint8Array[] => buildNest(simpleNest(kind, depth, { viaOrigin: Array(depth).fill(viaOrigin), clients: [9000 + n++] }))
      const what = `${kind}${viaOrigin ? ' via origins' : ''}`
      const room = `nest-${kind}-${viaOrigin}`
      assert.equal(await send(server, room, at(limit)), undefined, `${what}: ${limit} levels are accepted`)
      assert.equal(await storedDepth(server, room), limit)
      const refused = await send(server, `${room}-deep`, at(limit + 1))
      assert.equal(refused?.code, 4400, `${what}: ${limit + 1} levels are refused`)
      assert.match(refused!.reason, /^TOO_DEEP\b/)
      assert.equal((await server.store.load(`${room}-deep`)).updates.length, 0, `${what}: nothing stored`)
      // A JSON value nested inside counts too.
      const json = await send(server, `${room}-json`, buildNest(simpleNest(kind, limit - 2, { viaOrigin: Array(limit - 2).fill(viaOrigin), json: 4, clients: [9000 + n++] })))
      if (kind === 'map' || kind === 'array' || kind === 'xmltext') assert.equal(json?.code, 4400, `${what}: a JSON value past the limit is refused`)
    }
  }
})

test('a chain split into pieces is refused however the pieces arrive: in flight, landed, or pending', async (t) => {
  const limit = 20
  const server = await startServer({ maxNestingDepth: limit })
  t.after(() => server.close())
  const cases: Array<{ name: string; order: number[]; wait: boolean }> = [
    { name: 'in order, back to back (in flight)', order: [0, 1, 2, 3], wait: false },
    { name: 'in order, each landed first', order: [0, 1, 2, 3], wait: true },
    { name: 'reversed (pending until the top arrives)', order: [3, 2, 1, 0], wait: true },
    { name: 'shuffled', order: [2, 0, 3, 1], wait: false },
  ]
  let n = 0
  for (const c of cases) {
    for (const kind of ['map', 'mixed'] as const) {
      const room = `pieces-${n}`
      const spec = simpleNest(kind, 2 * limit, { piece: 10, order: c.order, writers: Array.from({ length: 2 * limit }, (_, i) => Math.floor(i / 10) % 3), clients: [11000 + 3 * n, 11001 + 3 * n, 11002 + 3 * n] })
      n++
      const pieces = buildNest(spec)
      let refused = false
      if (c.wait) {
        for (const piece of pieces) refused = (await send(server, room, [piece]))?.code === 4400 || refused
      } else {
        refused = (await send(server, room, pieces))?.code === 4400
      }
      assert.ok(refused, `${c.name} (${kind}): some piece is refused`)
      const r = server.registry.rooms.find((x) => x.name === room)
      if (r) assert.ok(maxDepth(r.doc) <= limit, `${c.name} (${kind}): the live document nests at most ${limit} deep`)
      assert.ok(await storedDepth(server, room) <= limit, `${c.name} (${kind}): what is stored reloads at most ${limit} deep`)
    }
  }
})

test('legitimate documents are untouched: a rich-text tree 30 deep from a stock provider, a reconnect resending it', async (t) => {
  const server = await startServer({})
  t.after(() => server.close())
  const a: Client = connect(server.url, 'rich')
  t.after(() => a.destroy())
  await synced(a)
  // A ProseMirror-like tree: nested lists, each item a paragraph with formatted text.
  const root = a.doc.getXmlFragment('prosemirror')
  let parent: Y.XmlFragment | Y.XmlElement = root
  for (let i = 0; i < 15; i++) {
    const list = new Y.XmlElement('bullet_list')
    const item = new Y.XmlElement('list_item')
    const paragraph = new Y.XmlElement('paragraph')
    const text = new Y.XmlText()
    parent.insert(parent.length, [list])
    list.insert(0, [item])
    item.insert(0, [paragraph])
    paragraph.insert(0, [text])
    text.insert(0, `level ${i}`, { bold: true, link: { href: 'https://example.com', title: 'x' } })
    parent = item
  }
  a.doc.getMap('meta').set('settings', { a: { b: { c: [1, [2, [3]]] } } })
  const b = connect(server.url, 'rich')
  t.after(() => b.destroy())
  await synced(b)
  await waitFor(() => b.doc.getXmlFragment('prosemirror').toString() === root.toString(), { message: 'the tree syncs' })
  assert.ok(maxDepth(b.doc) >= 30)
  // A reconnect sends everything again (sync step 2): still accepted.
  a.provider.disconnect()
  a.provider.connect()
  await synced(a)
  a.doc.getMap('meta').set('after', 'reconnect')
  await waitFor(() => b.doc.getMap('meta').get('after') === 'reconnect', { message: 'edits after the reconnect sync' })
})

test('the admin API refuses too-deep imports with 422 TOO_DEEP', async (t) => {
  const server = await startServer({ maxNestingDepth: 16, adminToken: 'admin-token-for-the-structure-test-0123' })
  t.after(() => server.close())
  const body = buildNest(simpleNest('mixed', 17))[0]!
  const res = await fetch(`${server.httpUrl}/admin/rooms/imported/import?format=update`, {
    method: 'POST', headers: { authorization: 'Bearer admin-token-for-the-structure-test-0123' }, body,
  })
  assert.equal(res.status, 422)
  assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'TOO_DEEP')
  assert.equal((await server.store.load('imported')).updates.length, 0)
  const fine = await fetch(`${server.httpUrl}/admin/rooms/imported/import?format=update`, {
    method: 'POST', headers: { authorization: 'Bearer admin-token-for-the-structure-test-0123' }, body: buildNest(simpleNest('mixed', 16))[0]!,
  })
  assert.equal(fine.status, 200, await fine.text())
})

test('offline coedit import refuses a too-deep update with one line, storing nothing', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const file = join(dir.path, 'deep.bin')
  await writeFile(file, buildNest(simpleNest('array', 257))[0]!)
  const data = join(dir.path, 'data')
  const out = await runCli(['import', 'deep', file, '--data', data, '--format', 'update'], {}, 60_000)
  assert.equal(out.code, 1, out.stderr)
  assert.equal(out.stderr.trim().split('\n').length, 1, out.stderr)
  assert.match(out.stderr, /nest/)
  await writeFile(file, buildNest(simpleNest('array', 256))[0]!)
  const fine = await runCli(['import', 'deep', file, '--data', data, '--format', 'update'], {}, 60_000)
  assert.equal(fine.code, 0, fine.stderr)
  const store = await LevelStore.open(data)
  t.after(() => store.close())
  assert.equal((await store.load('deep')).updates.length, 1, 'only the second import is stored')
})
