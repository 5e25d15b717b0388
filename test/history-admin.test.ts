/**
 * Issue 18, what the admin API and the editor's panel share: reverts of a room run one at a
 * time whichever way they come in (each reads the room, computes the change back and
 * applies it; two at once would apply a mix), and `/admin/rooms/ROOM/history` reads a
 * bounded page of the log, not the whole window.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { startServer, type CoeditServer } from '../server/index.js'
import { MemoryStore } from '../server/persistence/memory.js'
import type { Store, VersionInfo } from '../server/persistence/store.js'
import { gate } from './helpers/controlled-store.js'
import { connect, synced, waitFor } from './helpers/index.js'
import { cli } from './helpers/cli.js'
import { mergeActivity, type ActivityBucket } from '../server/operator/history-log.js'

const wait = <T>(check: () => T | Promise<T>, message: string): Promise<T> => waitFor(check, { timeout: 20_000, message })
const iso = (ms: number): string => new Date(ms).toISOString()

/** A clock the test moves by hand, starting a minute in the past. */
function manualClock(): { now: () => number; advance: (ms: number) => number; value: () => number } {
  let t = Math.floor(Date.now() / 1000) * 1000 - 60_000
  return { now: () => t, advance: (ms) => (t += ms), value: () => t }
}

/** Types each of `parts` 2 s apart; returns the instant each was stored. */
async function typeApart(server: CoeditServer, clock: ReturnType<typeof manualClock>, room: string, parts: string[]): Promise<number[]> {
  const c = connect(server.url, room)
  try {
    await synced(c)
    const times: number[] = []
    for (const [i, part] of parts.entries()) {
      times.push(clock.value())
      c.text.insert(c.text.length, part)
      await wait(async () => (await server.store.load(room)).lastSeq >= i + 1, `write ${i + 1} stored`)
      clock.advance(2000)
    }
    return times
  } finally {
    c.destroy()
  }
}

test('a revert from the admin API and one from the panel, at once: the second is computed against what the first left', async (t) => {
  const clock = manualClock()
  // The state before a revert is pinned as a version: the first one's write waits on a gate,
  // after that revert has read the room and before it changes it.
  const held = gate()
  let armed = true
  const memory = new MemoryStore({ now: clock.now })
  const store = new Proxy(memory, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown
      if (key === 'putVersion') {
        return async (room: string, version: { pinned?: boolean }, ...rest: unknown[]): Promise<VersionInfo> => {
          if (version.pinned && armed) {
            armed = false
            await held.promise
          }
          return (value as (...args: unknown[]) => Promise<VersionInfo>).call(target, room, version, ...rest)
        }
      }
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
  }) as Store
  // The panel's request is known to have arrived when its authentication is asked; it then
  // runs on without I/O (a memory store) to the revert's queue, or, unqueued, to reading the
  // room, before the next turn of the event loop opens the gate.
  let panelArrived = false
  const server = await startServer({
    storage: store, adminToken: 'tok', clock: clock.now,
    hooks: {
      authenticate: (event) => {
        if (event.token === 'panel') {
          panelArrived = true
          setImmediate(() => setImmediate(held.open))
        }
        return { access: 'write', user: { id: event.token ?? 'anyone' } }
      },
    },
  })
  t.after(() => server.close())
  const times = await typeApart(server, clock, 'r', ['one', ' two', ' three'])
  const reader = connect(server.url, 'r')
  t.after(() => reader.destroy())
  await synced(reader)

  const admin = fetch(`${server.httpUrl}/admin/rooms/r/revert?to=${encodeURIComponent(iso(times[0]!))}`, { method: 'POST', headers: { Authorization: 'Bearer tok' } })
  // The admin revert is waiting on the gate, past its read of the room.
  await wait(() => !armed, 'the admin revert holds')
  const panel = fetch(`${server.httpUrl}/api/rooms/r/revert?to=${encodeURIComponent(iso(times[1]!))}`, { method: 'POST', headers: { Authorization: 'Bearer panel' } })
  const [a, b] = await Promise.all([admin, panel])
  assert.ok(panelArrived)
  assert.equal(a.status, 200, await a.clone().text())
  assert.equal(b.status, 200, await b.clone().text())
  // In order: back to "one", then forward to "one two". Interleaved, both computed against
  // "one two three" and the result is "one".
  await wait(() => reader.text.toString() === 'one two', `everyone sees the second revert's target (now "${reader.text.toString()}")`)
  const stored = new Y.Doc()
  for (const u of (await server.store.load('r')).updates) Y.applyUpdate(stored, u)
  assert.equal(stored.getText('text').toString(), 'one two')
})

test('/admin/rooms/ROOM/history reads a page of the log at a time: limit and after bound it, next leads on, the CLI follows it', async (t) => {
  const clock = manualClock()
  const server = await startServer({ storage: 'memory', adminToken: 'tok', clock: clock.now })
  t.after(() => server.close())
  const c = connect(server.url, 'busy')
  t.after(() => c.destroy())
  await synced(c)
  // 25 updates, 5 per 10 s interval.
  const start = Math.floor(clock.value() / 10_000) * 10_000 + 10_000
  clock.advance(start - clock.value())
  for (let i = 0; i < 25; i++) {
    c.text.insert(c.text.length, String.fromCharCode(97 + i))
    await wait(async () => (await server.store.load('busy')).lastSeq >= i + 1, `update ${i + 1} stored`)
    clock.advance(i % 5 === 4 ? 10_000 - 4 * 1000 : 1000)
  }
  const get = async (query: string): Promise<{ status: number; body: { activity?: ActivityBucket[]; next?: number; error?: { code: string } } }> => {
    const res = await fetch(`${server.httpUrl}/admin/rooms/busy/history?bucket=10000${query}`, { headers: { Authorization: 'Bearer tok' } })
    return { status: res.status, body: await res.json() as never }
  }
  const all = await get('')
  assert.equal(all.status, 200)
  assert.deepEqual(all.body.activity!.map((b) => b.updates), [5, 5, 5, 5, 5])
  assert.equal(all.body.next, undefined)

  // Pages of 7: the reads stop at 7 updates, an interval split across two pages carries on.
  const pages: ActivityBucket[][] = []
  let after: number | undefined
  for (;;) {
    const page = await get(`&limit=7${after === undefined ? '' : `&after=${after}`}`)
    assert.equal(page.status, 200)
    const read = page.body.activity!.reduce((n, b) => n + b.updates, 0)
    assert.ok(read <= 7, `a page read ${read} updates`)
    pages.push(page.body.activity!)
    if (page.body.next === undefined) break
    assert.equal(read, 7)
    after = page.body.next
    assert.ok(pages.length < 10, 'paging ends')
  }
  assert.deepEqual(pages.map((p) => p.reduce((n, b) => n + b.updates, 0)), [7, 7, 7, 4])
  assert.deepEqual(pages[1]!.map((b) => b.updates), [3, 4])
  assert.equal(pages[0]![1]!.from, pages[1]![0]!.from)

  // Hostile or wrong parameters: refused, nothing read.
  for (const query of ['&limit=0', '&limit=100001', '&limit=-1', '&limit=1e3', '&after=-5', '&after=x', '&after=99999999999999999', '&limit=7&after=1.5']) {
    const res = await get(query)
    assert.equal(res.status, 400, query)
    assert.equal(res.body.error?.code, 'BAD_REQUEST', query)
  }

  // What the CLI does with the pages (it follows `next`): the split interval added up again.
  const merged: ActivityBucket[] = []
  for (const p of pages) mergeActivity(merged, p)
  assert.deepEqual(merged.map((b) => b.updates), [5, 5, 5, 5, 5])
  assert.deepEqual(merged, all.body.activity)
  const res = await cli(['history', 'busy', '--activity', '--bucket', '10s', '--json', '--server', server.httpUrl, '--admin-token', 'tok'])
  assert.equal(res.code, 0, res.stderr)
  assert.deepEqual((JSON.parse(res.out) as Array<{ updates: number }>).map((b) => b.updates), [5, 5, 5, 5, 5])
})
