/**
 * Containment (server/base/containment.ts): every background path that runs on client-supplied
 * data is made to throw, in one room ("victim"), by fault injection. For each, the test
 * drives the path and then shows that the exception was logged once as `contained_error`
 * with its path, counted as coedit_errors_total{kind=<path>}, and that the process keeps
 * serving: a stock provider in another room ("canary") syncs an edit afterwards. An
 * uncaught exception or rejection would fail the test (node's runner reports it).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import * as Y from 'yjs'
import { CONTAINED_PATHS, MemoryStore, startServer, type ContainedPath, type CoeditServer, type StartOptions } from '../server/index.js'
import { createLogger } from '../server/log.js'
import { connect, synced, waitFor, type Client } from './helpers/index.js'
import { scrapeUntil, value } from './helpers/prometheus.js'
import { cli } from './helpers/cli.js'

const wait = <T>(check: () => T | Promise<T>, message: string): Promise<T> => waitFor(check, { timeout: 15_000, message })
const VICTIM = 'victim'
const TOKEN = 'admin-token-for-tests'

type Line = Record<string, unknown>

function capture(): { stream: Writable; lines: () => Line[] } {
  let text = ''
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString()
      done()
    },
  })
  return { stream, lines: () => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line) }
}

function textUpdate(content: string): Uint8Array {
  const doc = new Y.Doc()
  doc.getText('text').insert(0, content)
  const update = Y.encodeStateAsUpdate(doc)
  doc.destroy()
  return update
}

interface Harness {
  server: CoeditServer
  store: MemoryStore
  track(c: Client): Client
}

/** Edits in the victim room through a stock provider (relay, hook, compaction, history and webhooks run on it). */
async function editVictim(h: Harness): Promise<void> {
  const c = h.track(connect(h.server.url, VICTIM))
  await synced(c, 15_000)
  c.text.insert(0, 'hello from the victim room')
}

/** How each path is driven, and the server options it needs. */
const DRIVE: Record<ContainedPath, { options?: StartOptions; prepare?: (store: MemoryStore) => Promise<void>; drive: (h: Harness) => Promise<void> }> = {
  presence_flush: {
    drive: async (h) => {
      const c = h.track(connect(h.server.url, VICTIM))
      c.provider.awareness.setLocalStateField('user', { name: 'victim user' })
      await synced(c, 15_000)
    },
  },
  relay: {
    drive: async (h) => {
      const c = h.track(connect(h.server.url, VICTIM))
      const closes: number[] = []
      c.provider.on('connection-close', (event: { code: number } | null) => { if (event) closes.push(event.code) })
      await synced(c, 15_000)
      c.text.insert(0, 'relayed or not, stored')
      // The room's connections are closed with 1011 so they resync; the edit was stored first.
      await wait(() => closes.includes(1011), 'close 1011 after a failed relay')
      await wait(async () => (await h.store.load(VICTIM)).updates.length > 0, 'the edit stored')
    },
  },
  room_load: {
    drive: async (h) => {
      const c = h.track(connect(h.server.url, VICTIM))
      const closes: number[] = []
      c.provider.on('connection-close', (event: { code: number } | null) => { if (event) closes.push(event.code) })
      // The stock provider retries a failed load (1013: try again later).
      await wait(() => closes.includes(1013), 'close 1013 for a room that failed to load')
    },
  },
  room_integrate: {
    // A lone compacted state: a cold room serves it as stored, then integrates it on setImmediate.
    prepare: async (store) => {
      await store.append(VICTIM, [textUpdate('stored before the restart')])
      await store.compact(VICTIM, textUpdate('stored before the restart'), 1)
    },
    drive: async (h) => {
      const c = h.track(connect(h.server.url, VICTIM))
      const closes: number[] = []
      c.provider.on('connection-close', (event: { code: number } | null) => { if (event) closes.push(event.code) })
      await wait(() => closes.includes(1013), 'close 1013 for a room that failed to integrate')
      // Nothing stored was lost: the stored state is still there for the next load.
      const stored = await h.store.load(VICTIM)
      assert.equal(stored.updates.length, 1)
    },
  },
  compaction: { options: { compactEvery: 1 }, drive: editVictim },
  history: { options: { historyInterval: 50 }, drive: editVictim },
  webhook: {
    // Never delivered: the notice builder throws before anything is sent.
    options: { webhook: 'http://127.0.0.1:9/hook', webhookSecret: 'x'.repeat(32), webhookDebounce: 20 },
    drive: editVictim,
  },
  backup: {
    options: { adminToken: TOKEN },
    prepare: async (store) => {
      await store.append(VICTIM, [textUpdate('victim')])
      await store.append('other', [textUpdate('other')])
    },
    drive: async (h) => {
      const { tempDir } = await import('./helpers/index.js')
      const dir = await tempDir()
      try {
        const res = await cli(['backup', '--out', `${dir.path}/b.coedit`, '--json', '--server', h.server.httpUrl, '--token', TOKEN])
        assert.equal(res.code, 3, res.stderr)
        const out = JSON.parse(res.out) as { rooms: number; unreadable: Array<{ name: string }> }
        assert.equal(out.rooms, 1)
        assert.deepEqual(out.unreadable.map((u) => u.name), [VICTIM])
      } finally {
        await dir.remove()
      }
    },
  },
  revert: {
    options: { adminToken: TOKEN },
    prepare: async (store) => {
      await store.append(VICTIM, [textUpdate('victim')])
      await store.putVersion(VICTIM, { at: Date.now() - 60_000, seq: 0, state: Y.encodeStateAsUpdate(new Y.Doc()) })
    },
    drive: async (h) => {
      const versions = await (await fetch(`${h.server.httpUrl}/admin/rooms/${VICTIM}/history`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json() as { versions: Array<{ id: number }> }
      const res = await fetch(`${h.server.httpUrl}/admin/rooms/${VICTIM}/revert?to=${versions.versions[0]!.id}`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}` } })
      assert.equal(res.status, 500)
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'REVERT_FAILED')
    },
  },
  cluster_catch_up: {
    // Without PostgreSQL and Redis: what the cluster hands a room (a bus update, a healing read).
    drive: async (h) => {
      const room = await h.server.registry.get(VICTIM)
      room.applyRemote(1, textUpdate('from another process'))
      room.catchUp({ state: undefined, updates: [{ seq: 2, data: textUpdate('healed') }], lastSeq: 2 })
    },
  },
  hook: { drive: editVictim },
}

for (const path of CONTAINED_PATHS) {
  test(`containment: an exception on ${path} is logged, counted, and the process keeps serving other rooms`, async (t) => {
    const spec = DRIVE[path]
    const store = new MemoryStore()
    await spec.prepare?.(store)
    const log = capture()
    const server = await startServer({ storage: store, logger: createLogger('info', log.stream), faults: [`${path}:${VICTIM}`], ...spec.options })
    t.after(() => server.close())
    const clients: Client[] = []
    t.after(() => { for (const c of clients) c.destroy() })
    const h: Harness = { server, store, track: (c) => { clients.push(c); return c } }

    await spec.drive(h)
    const contained = (): Line[] => log.lines().filter((l) => l.event === 'contained_error' && l.path === path)
    await wait(() => contained().length > 0, `a contained_error on ${path}`)
    assert.equal(contained()[0]!.room, VICTIM, 'the log line names the room')
    await scrapeUntil(server.httpUrl, (m) => value(m, `coedit_errors_total{kind="${path}"}`) >= 1, `coedit_errors_total{kind="${path}"}`)

    // Another room is served: an edit in it reaches a second stock provider.
    const a = h.track(connect(server.url, 'canary'))
    const b = h.track(connect(server.url, 'canary'))
    await Promise.all([synced(a, 15_000), synced(b, 15_000)])
    a.text.insert(0, `still serving after ${path}`)
    await wait(() => b.text.toString() === `still serving after ${path}`, 'the canary edit to arrive')
    // Only the victim room was ever affected.
    assert.ok(log.lines().filter((l) => l.event === 'contained_error').every((l) => l.room === VICTIM))
  })
}

test('containment: a room that failed to integrate is loaded afresh from what is stored once the fault is gone', async (t) => {
  // The same store, served by a server without the fault: the stored state was not touched.
  const store = new MemoryStore()
  await store.append(VICTIM, [textUpdate('kept')])
  await store.compact(VICTIM, textUpdate('kept'), 1)
  const failing = await startServer({ storage: store, faults: [`room_integrate:${VICTIM}`] })
  const c = connect(failing.url, VICTIM)
  t.after(() => c.destroy())
  const closes: number[] = []
  c.provider.on('connection-close', (event: { code: number } | null) => { if (event) closes.push(event.code) })
  await wait(() => closes.includes(1013), 'close 1013')
  c.provider.disconnect()
  await failing.close()
  const healthy = await startServer({ storage: store })
  t.after(() => healthy.close())
  const reader = connect(healthy.url, VICTIM)
  t.after(() => reader.destroy())
  await wait(() => reader.text.toString() === 'kept', 'the stored text served')
})
