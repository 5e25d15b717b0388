/**
 * The history API of the editor's panel (issue 18): moments newest first a page at a time,
 * the text as it was, and restore through the server's revert path; authorized by the
 * editor's access token (write access to restore), bounded against hostile requests.
 * Clocks are injected: no test waits on time.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'node:http'
import * as Y from 'yjs'
import { startServer, type CoeditServer } from '../server/index.js'
import { signToken } from '../server/transport/auth.js'
import { MemoryStore } from '../server/persistence/memory.js'
import { DEFAULT_MOMENT_OPTIONS, momentsPage, parseCursor, type EditsMoment, type Moment, type MomentOptions } from '../server/operator/moments.js'
import { connect, prng, synced, testSeed, waitFor } from './helpers/index.js'

const wait = <T>(check: () => T | Promise<T>, message: string): Promise<T> => waitFor(check, { timeout: 20_000, message })

/** A clock the test moves by hand, starting a minute in the past. */
function manualClock(): { now: () => number; advance: (ms: number) => number; value: () => number } {
  let t = Math.floor(Date.now() / 1000) * 1000 - 60_000
  return { now: () => t, advance: (ms) => (t += ms), value: () => t }
}

interface Listing {
  room: string
  now: number
  canRestore: boolean
  exactSince?: number
  moments: Array<Moment & { t: string }>
  next?: string
}

async function api(server: CoeditServer, path: string, init: RequestInit & { token?: string } = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const { token, ...rest } = init
  const res = await fetch(`${server.httpUrl}${path}`, { ...rest, headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...rest.headers as Record<string, string> } })
  const text = await res.text()
  return { status: res.status, body: text ? JSON.parse(text) as Record<string, unknown> : {} }
}

const codeOf = (body: Record<string, unknown>): unknown => (body.error as { code?: unknown } | undefined)?.code

/** Every page of `path`, following `next`. */
async function allPages(server: CoeditServer, path: string, token?: string): Promise<Listing[]> {
  const pages: Listing[] = []
  let cursor: string | undefined
  do {
    const sep = path.includes('?') ? '&' : '?'
    const res = await api(server, `${path}${cursor ? `${sep}cursor=${encodeURIComponent(cursor)}` : ''}`, { token })
    assert.equal(res.status, 200, JSON.stringify(res.body))
    const page = res.body as unknown as Listing
    pages.push(page)
    cursor = page.next
    assert.ok(pages.length < 1000, 'paging ends')
  } while (cursor)
  return pages
}

/** Three writes 2 s apart by a stock provider; returns the instants and the text after each. */
async function threeWrites(server: CoeditServer, clock: ReturnType<typeof manualClock>, room: string, params: Record<string, string> = {}): Promise<{ times: number[]; texts: string[] }> {
  const c = connect(server.url, room, { params })
  try {
    await synced(c)
    const writes: Array<(t: Y.Text) => void> = [(t) => t.insert(0, 'version one.'), (t) => t.insert(12, ' then damage'), (t) => t.delete(0, 8)]
    const times: number[] = []
    const texts: string[] = []
    for (const [i, write] of writes.entries()) {
      times.push(clock.value())
      write(c.text)
      texts.push(c.text.toString())
      await wait(async () => (await server.store.load(room)).lastSeq >= i + 1, `write ${i + 1} stored`)
      clock.advance(2000)
    }
    return { times, texts }
  } finally {
    c.destroy()
  }
}

test('three writes 2 s apart: three moments newest first; the text at each; restoring the first through the API brings it back for everyone', async (t) => {
  const clock = manualClock()
  const server = await startServer({ storage: 'memory', clock: clock.now })
  t.after(() => server.close())
  const room = 'notes'
  const { times, texts } = await threeWrites(server, clock, room)
  const res = await api(server, `/api/rooms/${room}/history`)
  assert.equal(res.status, 200, JSON.stringify(res.body))
  const listing = res.body as unknown as Listing
  assert.equal(listing.canRestore, true, 'an open server: everyone may restore, as everyone may edit')
  assert.equal(listing.now, clock.value())
  const edits = listing.moments.filter((m): m is EditsMoment & { t: string } => m.kind === 'edits')
  assert.deepEqual(edits.map((m) => m.at), [...times].reverse(), 'one moment per write, newest first')
  assert.deepEqual(edits.map((m) => m.updates), [1, 1, 1])

  for (const [i, moment] of [...edits].reverse().entries()) {
    const at = await api(server, `/api/rooms/${room}/at?t=${encodeURIComponent(moment.t)}`)
    assert.equal(at.status, 200, JSON.stringify(at.body))
    assert.equal(at.body.text, texts[i], `the text as of moment ${i + 1}`)
    assert.equal(at.body.exact, true)
  }

  const watcher = connect(server.url, room)
  t.after(() => watcher.destroy())
  await synced(watcher)
  assert.equal(watcher.text.toString(), texts[2])
  const first = edits[2]!
  const restored = await api(server, `/api/rooms/${room}/revert?to=${encodeURIComponent(first.t)}`, { method: 'POST' })
  assert.equal(restored.status, 200, JSON.stringify(restored.body))
  assert.equal(restored.body.exact, true)
  await wait(() => watcher.text.toString() === texts[0], 'the connected client sees the restored text')
  // The state before the restore is a pinned version, and the restore itself a new moment.
  const after = (await api(server, `/api/rooms/${room}/history`)).body as unknown as Listing
  assert.ok(after.moments.some((m) => m.kind === 'version' && m.pinned && m.seq === 3), 'the state before the restore is kept as a version')
  assert.equal(after.moments[0]!.kind, 'edits')
  assert.equal((after.moments[0] as EditsMoment).lastSeq, 4)
})

test('tokens: a writer restores (recorded as its user), a reader lists and reads but is refused 403, others 401/403; the admin token is no access token', async (t) => {
  const secret = 'a-secret-of-at-least-thirty-two-bytes!!'
  const clock = manualClock()
  const server = await startServer({ storage: 'memory', clock: clock.now, authSecret: secret, adminToken: 'admin-token-123' })
  t.after(() => server.close())
  const room = 'team/plan'
  const path = `/api/rooms/${encodeURIComponent(room)}`
  const writer = await signToken({ rooms: ['team/*'], access: 'write', ttl: 600_000, secret, sub: 'ana' })
  const reader = await signToken({ rooms: ['team/*'], access: 'read', ttl: 600_000, secret, sub: 'rui' })
  const elsewhere = await signToken({ rooms: ['other'], access: 'write', ttl: 600_000, secret })
  const { texts } = await threeWrites(server, clock, room, { token: writer })

  const asReader = await api(server, `${path}/history`, { token: reader })
  assert.equal(asReader.status, 200)
  const listing = asReader.body as unknown as Listing
  assert.equal(listing.canRestore, false)
  assert.deepEqual(listing.moments.filter((m) => m.kind === 'edits').map((m) => (m as EditsMoment).users), [['ana'], ['ana'], ['ana']])
  const first = listing.moments[listing.moments.length - 1]!
  assert.equal((await api(server, `${path}/at?t=${encodeURIComponent(first.t)}`, { token: reader })).body.text, texts[0])

  const refused = await api(server, `${path}/revert?to=${encodeURIComponent(first.t)}`, { method: 'POST', token: reader })
  assert.equal(refused.status, 403)
  assert.equal(codeOf(refused.body), 'READ_ONLY')
  assert.equal((await server.store.load(room)).lastSeq, 3, 'nothing was written')

  for (const [token, status, code] of [
    [undefined, 401, 'TOKEN_MISSING'], ['not.a.jwt', 401, 'TOKEN_INVALID'], ['admin-token-123', 401, 'TOKEN_INVALID'], [elsewhere, 403, 'ROOM_FORBIDDEN'],
  ] as const) {
    for (const [action, method] of [['history', 'GET'], ['at?t=1s', 'GET'], ['revert?to=1s', 'POST']] as const) {
      const res = await api(server, `${path}/${action}`, { method, token })
      assert.equal(res.status, status, `${action} with ${token ?? 'no token'}`)
      assert.equal(codeOf(res.body), code)
    }
  }

  const ok = await api(server, `${path}/revert?to=${encodeURIComponent(first.t)}`, { method: 'POST', token: writer })
  assert.equal(ok.status, 200, JSON.stringify(ok.body))
  const after = (await api(server, `${path}/history`, { token: writer })).body as unknown as Listing
  assert.deepEqual((after.moments[0] as EditsMoment).users, ['ana'], 'the restore is recorded as its user\'s change')
  assert.equal((await api(server, `${path}/at?t=0s`, { token: writer })).body.text, texts[0])
})

test('hostile requests: bad names, times, limits, cursors, methods, bodies and origins get a coded error and change nothing', async (t) => {
  const clock = manualClock()
  const server = await startServer({ storage: 'memory', clock: clock.now, maxRoomNameLength: 64 })
  t.after(() => server.close())
  await threeWrites(server, clock, 'r')
  const cases: Array<[string, RequestInit, number, string]> = [
    ['/api/rooms/a%00b/history', {}, 400, 'BAD_ROOM_NAME'],
    ['/api/rooms/%E2%80%AEevil/history', {}, 400, 'BAD_ROOM_NAME'],
    [`/api/rooms/${'x'.repeat(65)}/history`, {}, 400, 'BAD_ROOM_NAME'],
    ['/api/rooms/r/at', {}, 400, 'BAD_REQUEST'],
    ['/api/rooms/r/at?t=yesterday', {}, 400, 'BAD_TIME'],
    ['/api/rooms/r/at?t=99999999999999999999w', {}, 400, 'BAD_TIME'],
    ['/api/rooms/r/at?t=275760-09-13', {}, 400, 'BAD_TIME'],
    [`/api/rooms/r/at?t=${' '.repeat(3000)}1s`, {}, 400, 'BAD_TIME'],
    [`/api/rooms/r/at?t=${'1'.repeat(10_000)}x`, {}, 400, 'BAD_TIME'],
    ['/api/rooms/r/at?t=424242', {}, 404, 'VERSION_NOT_FOUND'],
    [`/api/rooms/r/at?t=1s&name=${'n'.repeat(300)}`, {}, 400, 'BAD_REQUEST'],
    ['/api/rooms/nobody/at?t=1s', {}, 404, 'ROOM_NOT_FOUND'],
    ['/api/rooms/r/history?limit=0', {}, 400, 'BAD_REQUEST'],
    ['/api/rooms/r/history?limit=201', {}, 400, 'BAD_REQUEST'],
    ['/api/rooms/r/history?limit=1e3', {}, 400, 'BAD_REQUEST'],
    ['/api/rooms/r/history?gap=-1', {}, 400, 'BAD_REQUEST'],
    ['/api/rooms/r/history?cursor=1.x.2.3', {}, 400, 'BAD_REQUEST'],
    [`/api/rooms/r/history?cursor=${'9'.repeat(40)}.e.1.1`, {}, 400, 'BAD_REQUEST'],
    ['/api/rooms/r/history', { method: 'POST' }, 400, 'BAD_REQUEST'],
    ['/api/rooms/r/revert?to=1s', { method: 'GET' }, 400, 'BAD_REQUEST'],
    ['/api/rooms/r/revert', { method: 'POST' }, 400, 'BAD_REQUEST'],
    ['/api/rooms/r/revert?to=1s', { method: 'POST', headers: { Origin: 'https://evil.example' } }, 403, 'ORIGIN_FORBIDDEN'],
  ]
  for (const [path, init, status, code] of cases) {
    const res = await api(server, path, init).catch((err: unknown) => { throw new Error(`${path.slice(0, 80)}: ${String((err as Error).cause)}`) })
    assert.equal(res.status, status, `${path.slice(0, 80)}: ${JSON.stringify(res.body).slice(0, 200)}`)
    assert.equal(codeOf(res.body), code, path.slice(0, 80))
  }
  // A declared body past the bound is refused before a byte of it is read.
  const tooLarge = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(`${server.httpUrl}/api/rooms/r/revert?to=1s`, { method: 'POST', headers: { 'Content-Length': '100000' } }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (c: string) => { body += c }).on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.flushHeaders()
  })
  assert.equal(tooLarge.status, 413)
  assert.equal(codeOf(JSON.parse(tooLarge.body) as Record<string, unknown>), 'TOO_LARGE')
  assert.equal((await server.store.load('r')).lastSeq, 3, 'nothing was written')
  // A room with nothing in it has no moments (every name is a room one may open).
  const empty = await api(server, '/api/rooms/fresh/history')
  assert.equal(empty.status, 200)
  assert.deepEqual((empty.body as unknown as Listing).moments, [])
  // Paths of the document API are not this module's: it leaves them to that API (POST only there).
  assert.equal((await fetch(`${server.httpUrl}/api/rooms/r/text`)).status, 405)
})

/** The bursts of `entries` (oldest first) as one unbounded pass would make them, newest first. */
function referenceBursts(entries: Array<{ seq: number; at: number }>, gap: number, maxSpan: number): Array<{ firstSeq: number; lastSeq: number }> {
  const out: Array<{ firstSeq: number; lastSeq: number; from: number; at: number }> = []
  for (const e of [...entries].reverse()) {
    const b = out[out.length - 1]
    if (b && b.from - e.at < gap && b.at - e.at <= maxSpan) {
      b.firstSeq = e.seq
      b.from = e.at
    } else {
      out.push({ firstSeq: e.seq, lastSeq: e.seq, from: e.at, at: e.at })
    }
  }
  return out.map(({ firstSeq, lastSeq }) => ({ firstSeq, lastSeq }))
}

test('seeded: pages of any size and budget list every update exactly once, newest first, versions in their place; an ample budget gives the bursts of one pass', async () => {
  const seed = testSeed()
  console.log(`history moments seed: ${seed} (SEED=${seed} replays)`)
  const random = prng(seed)
  for (let round = 0; round < 40; round++) {
    let t = 1_000_000
    const store = new MemoryStore({ now: () => t })
    const doc = new Y.Doc()
    const updates: Uint8Array[] = []
    doc.on('update', (u: Uint8Array) => updates.push(u))
    const n = 1 + Math.floor(random() * 120)
    for (let i = 0; i < n; i++) {
      t += [0, 1, 5, 400, 999, 1000, 1500, 30_000][Math.floor(random() * 8)]!
      doc.getText('text').insert(0, 'x')
      await store.append('r', [updates.pop()!], random() < 0.5 ? { user: random() < 0.5 ? 'ana' : 'rui' } : undefined)
      if (random() < 0.05) await store.putVersion('r', { at: t, seq: i + 1, state: Y.encodeStateAsUpdate(doc) })
    }
    const { entries } = await store.readLog('r')
    const versions = await store.listVersions('r')
    const options: MomentOptions = {
      ...DEFAULT_MOMENT_OPTIONS,
      limit: 1 + Math.floor(random() * 10),
      maxEntries: 1 + Math.floor(random() * 40),
      chunk: 1 + Math.floor(random() * 30),
      maxSpan: [60_000, 2000][Math.floor(random() * 2)]!,
    }
    const read = (range: { afterSeq: number; untilAt?: number }) => store.readLog('r', range)
    const listed: Moment[] = []
    let cursor: string | undefined
    let pages = 0
    do {
      const page = await momentsPage(read, entries.length, versions, cursor ? parseCursor(cursor) : undefined, options)
      assert.ok(page.moments.length > 0 && page.moments.length <= options.limit, `round ${round}: a page holds 1..limit moments`)
      listed.push(...page.moments)
      cursor = page.next
      assert.ok(++pages <= n + versions.length + 1, `round ${round}: paging ends`)
    } while (cursor)
    const context = `round ${round} (seed ${seed}, ${JSON.stringify(options)})`
    for (let i = 1; i < listed.length; i++) assert.ok(listed[i - 1]!.at >= listed[i]!.at, `${context}: newest first`)
    assert.deepEqual(listed.filter((m) => m.kind === 'version').map((m) => (m as { id: number }).id).sort((a, b) => a - b), versions.map((v) => v.id), `${context}: every version once`)
    const bursts = listed.filter((m): m is EditsMoment => m.kind === 'edits')
    const seqs = bursts.flatMap((b) => Array.from({ length: b.lastSeq - b.firstSeq + 1 }, (_, k) => b.lastSeq - k))
    assert.deepEqual(seqs, Array.from({ length: n }, (_, k) => n - k), `${context}: every update once, newest first`)
    assert.equal(bursts.reduce((s, b) => s + b.updates, 0), n)
    for (const b of bursts) assert.equal(b.at, entries[b.lastSeq - 1]!.at, `${context}: a moment's instant is its newest update's`)
    const ample = await momentsPage(read, entries.length, [], undefined, { ...options, limit: 1000, maxEntries: 10_000 })
    assert.deepEqual(ample.moments.map((m) => ({ firstSeq: (m as EditsMoment).firstSeq, lastSeq: (m as EditsMoment).lastSeq })), referenceBursts(entries, options.gap, options.maxSpan), context)
    assert.equal(ample.next, undefined)
  }
})

test('a page reads a bounded part of the log, not the whole window', async () => {
  let t = 1_000_000
  const store = new MemoryStore({ now: () => t })
  const doc = new Y.Doc()
  let last: Uint8Array | undefined
  doc.on('update', (u: Uint8Array) => { last = u })
  for (let i = 0; i < 20_000; i++) {
    t += 2000
    doc.getText('text').insert(0, 'x')
    await store.append('r', [last!])
  }
  let read = 0
  const counting = async (range: { afterSeq: number; untilAt?: number }) => {
    const log = await store.readLog('r', range)
    read += log.entries.length
    return log
  }
  const first = await momentsPage(counting, 20_000, [], undefined, DEFAULT_MOMENT_OPTIONS)
  assert.equal(first.moments.length, DEFAULT_MOMENT_OPTIONS.limit)
  assert.ok(read <= DEFAULT_MOMENT_OPTIONS.chunk, `the first page read ${read} entries`)
  read = 0
  const second = await momentsPage(counting, 0, [], parseCursor(first.next!), DEFAULT_MOMENT_OPTIONS)
  assert.equal((second.moments[0] as EditsMoment).lastSeq, 20_000 - DEFAULT_MOMENT_OPTIONS.limit)
  assert.ok(read <= 2 * DEFAULT_MOMENT_OPTIONS.chunk, `the second page read ${read} entries`)
})
