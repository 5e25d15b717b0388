/**
 * Issue 18: history to the second. Every stored update records when (and by whom); within
 * the exact window `export --at T`, `revert --to T` and `diff` give exactly the document
 * made of every update stored at or before T. Clocks are injected: no test waits on time.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { startServer } from '../server/index.js'
import { LevelStore } from '../server/persistence/leveldb.js'
import { MemoryStore } from '../server/persistence/memory.js'
import { isHistoryLogStore, type Store } from '../server/persistence/store.js'
import { Operations } from '../server/operator/operations.js'
import { docToJson } from '../server/operator/doc-ops.js'
import { docFromUpdates } from '../server/room/yjs-log.js'
import { foldLogBefore, stateAt } from '../server/operator/history-log.js'
import { HistoryKeeper, parseRetention, versionsToDrop } from '../server/operator/history.js'
import { signToken } from '../server/transport/auth.js'
import { createLogger } from '../server/log.js'
import { connect, prng, synced, tempDir, testSeed, waitFor } from './helpers/index.js'
import { cli } from './helpers/cli.js'

const wait = <T>(check: () => T | Promise<T>, message: string): Promise<T> => waitFor(check, { timeout: 20_000, message })
const iso = (ms: number): string => new Date(ms).toISOString()
/** JSON with sorted keys: a Y.Map's key order depends on the order its entries were integrated. */
const canonical = (value: unknown): string => JSON.stringify(value, (_k, v: unknown) => (v !== null && typeof v === 'object' && !Array.isArray(v)
  ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  : v))
const json = (doc: Y.Doc): string => canonical(docToJson(doc))
const jsonOfState = (state: Uint8Array): string => json(docFromUpdates([state]))

/** A clock the test moves by hand; it starts a minute in the past so every instant used is a past one for the CLI too. */
function manualClock(): { now: () => number; advance: (ms: number) => number; value: () => number } {
  let t = Math.floor(Date.now() / 1000) * 1000 - 60_000
  return { now: () => t, advance: (ms) => (t += ms), value: () => t }
}

/** Three writes of each shared type; after the first the document must come back exactly. */
const KINDS: Record<string, Array<(doc: Y.Doc) => void>> = {
  text: [
    (d) => d.getText('text').insert(0, 'version one.'),
    (d) => d.getText('text').insert(12, ' then damage'),
    (d) => d.getText('text').delete(0, 8),
  ],
  map: [
    (d) => d.getMap('meta').set('title', 'First'),
    (d) => { d.getMap('meta').set('title', 'Second'); d.getMap('meta').set('extra', [1, 2]) },
    (d) => d.getMap('meta').delete('title'),
  ],
  xml: [
    (d) => { const p = new Y.XmlElement('p'); p.insert(0, [new Y.XmlText('one')]); d.getXmlFragment('xml').insert(0, [p]) },
    (d) => d.getXmlFragment('xml').insert(1, [new Y.XmlElement('hr')]),
    (d) => d.getXmlFragment('xml').delete(0, 1),
  ],
}

/** Captures the updates `change` makes on `doc`. */
function updatesOf(doc: Y.Doc, change: (d: Y.Doc) => void): Uint8Array[] {
  const out: Uint8Array[] = []
  const on = (u: Uint8Array): void => { out.push(u) }
  doc.on('update', on)
  doc.transact(() => change(doc))
  doc.off('update', on)
  return out
}

for (const [kind, writes] of Object.entries(KINDS)) {
  test(`offline CLI: three writes 2 s apart, seconds after the room was created; revert --to an instant between the first two restores exactly the first (${kind})`, async (t) => {
    const dir = await tempDir()
    t.after(() => dir.remove())
    const clock = manualClock()
    const store = await LevelStore.open(dir.path, { now: clock.now })
    const doc = new Y.Doc()
    const times: number[] = []
    let first = ''
    for (const write of writes) {
      times.push(clock.value())
      await store.append('r', updatesOf(doc, write))
      if (!first) first = json(doc)
      clock.advance(2000)
    }
    await store.close()
    const d = ['--data', dir.path]
    assert.equal((await cli(['history', 'r', ...d])).stderr.includes('no versions recorded yet'), true, 'no version exists: only the log can answer')
    const between = iso(times[0]! + 1000)
    const exported = await cli(['export', 'r', '--format', 'json', '--at', between, ...d])
    assert.equal(exported.code, 0, exported.stderr)
    assert.equal(canonical(JSON.parse(exported.out)), first)
    // At the very millisecond of the second write it is in; one ms before it is not.
    const atSecond = await cli(['export', 'r', '--format', 'json', '--at', iso(times[1]!), ...d])
    assert.notEqual(canonical(JSON.parse(atSecond.out)), first)
    assert.equal(canonical(JSON.parse((await cli(['export', 'r', '--format', 'json', '--at', iso(times[1]! - 1), ...d])).out)), first)
    const reverted = await cli(['revert', 'r', '--to', between, ...d])
    assert.equal(reverted.code, 0, reverted.stderr)
    assert.match(reverted.stderr, /\(exact\)/)
    const now = await cli(['export', 'r', '--format', 'json', ...d])
    assert.equal(canonical(JSON.parse(now.out)), first)
  })
}

test('through a running server: revert --to 5s on a room created seconds ago, for text, map and XML; the version before the revert is kept', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const clock = manualClock()
  const server = await startServer({ dataDir: dir.path, adminToken: 'tok', clock: clock.now })
  t.after(() => server.close())
  const auth = ['--server', server.httpUrl, '--token', 'tok']
  for (const [kind, writes] of Object.entries(KINDS)) {
    const room = `live-${kind}`
    const client = connect(server.url, room)
    const watcher = connect(server.url, room)
    t.after(() => { client.destroy(); watcher.destroy() })
    await Promise.all([synced(client), synced(watcher)])
    const start = clock.value()
    let first = ''
    let stored = 0
    for (const write of writes) {
      client.doc.transact(() => write(client.doc))
      stored++
      await wait(async () => (await server.store.load(room)).lastSeq >= stored, `${room}: write ${stored} stored`)
      if (!first) first = json(client.doc)
      clock.advance(2000)
    }
    // Now = start + 6 s: "5s" ago is 1 s after the first write, before the second.
    assert.equal(clock.value(), start + 6000)
    const res = await cli(['revert', room, '--to', '5s', ...auth, '--json'])
    assert.equal(res.code, 0, res.stderr)
    const result = JSON.parse(res.out) as { exact: boolean; version: { at: number } }
    assert.equal(result.exact, true)
    assert.equal(result.version.at, start + 1000)
    await wait(() => json(watcher.doc) === first, `${room}: the other client sees exactly the first write`)
    assert.equal(json(client.doc), first)
    const versions = JSON.parse((await cli(['history', room, '--json', ...auth])).out) as Array<{ pinned?: boolean; seq: number }>
    assert.ok(versions.some((v) => v.pinned && v.seq === 3), 'the state before the revert is a pinned version')
  }
})

test('seeded random edits by two authors: export --at T equals the document of exactly the updates stored up to T, across compactions, versions and folds', async () => {
  const seed = testSeed()
  console.log(`# seed ${seed} (SEED=${seed} to replay)`)
  const random = prng(seed)
  for (const backend of ['memory', 'leveldb'] as const) {
    const clock = manualClock()
    const dir = backend === 'leveldb' ? await tempDir() : undefined
    const store: Store = backend === 'memory' ? new MemoryStore({ now: clock.now }) : await LevelStore.open(dir!.path, { now: clock.now })
    try {
      assert.ok(isHistoryLogStore(store))
      const authors = [new Y.Doc(), new Y.Doc()]
      const model: Array<{ at: number; update: Uint8Array }> = []
      const server = new Y.Doc()
      let seq = 0
      for (let i = 0; i < 300; i++) {
        const a = Math.floor(random() * 2)
        const doc = authors[a]!
        const text = doc.getText('text')
        const updates = updatesOf(doc, (d) => {
          const r = random()
          if (r < 0.6 || text.length === 0) text.insert(Math.floor(random() * (text.length + 1)), String.fromCharCode(97 + Math.floor(random() * 26)))
          else if (r < 0.85) text.delete(Math.floor(random() * text.length), 1)
          else d.getMap('m').set(`k${Math.floor(random() * 5)}`, i)
        })
        for (const u of updates) {
          seq = await store.append('room', [u], { user: `author-${a}` })
          model.push({ at: clock.value(), update: u })
          Y.applyUpdate(server, u)
        }
        // Sometimes the authors sync (so each builds on the other's text).
        if (random() < 0.2) {
          const [x, y] = authors as [Y.Doc, Y.Doc]
          Y.applyUpdate(y, Y.encodeStateAsUpdate(x, Y.encodeStateVector(y)))
          Y.applyUpdate(x, Y.encodeStateAsUpdate(y, Y.encodeStateVector(x)))
        }
        // What the server does meanwhile: compactions and versions (through seq, as the keeper records them).
        if (random() < 0.05) await store.compact('room', Y.encodeStateAsUpdate(server), seq)
        if (random() < 0.05 && 'putVersion' in store) await (store as LevelStore).putVersion('room', { at: clock.value(), seq, state: Y.encodeStateAsUpdate(server) })
        clock.advance(Math.floor(random() * 3) === 0 ? 0 : Math.floor(random() * 1500))
      }
      // Fold the first third of the time away (the window's far side).
      const t0 = model[0]!.at
      const end = clock.value()
      const cut = t0 + Math.floor((end - t0) / 3)
      await foldLogBefore(store, 'room', cut)
      const ops = new Operations(store)
      const modelAt = (T: number): string => json(docFromUpdates(model.filter((m) => m.at <= T).map((m) => m.update)))
      for (let k = 0; k < 20; k++) {
        const T = cut + Math.floor(random() * (end - cut + 1000))
        const exact = await stateAt(store, 'room', T)
        assert.ok(exact, `${backend}: T=${T} is inside the log`)
        assert.equal(jsonOfState(exact.state), modelAt(T), `${backend}: the room at T=${T} (seed ${seed})`)
        const exported = new TextDecoder().decode(await ops.export('room', 'json', undefined, iso(T)))
        assert.equal(canonical(JSON.parse(exported)), modelAt(T), `${backend}: export --at ${iso(T)} (seed ${seed})`)
      }
      // Before the base's instant the log cannot answer exactly.
      const log = await store.readLog('room')
      assert.ok(log.base, 'the fold left a base')
      assert.equal(await stateAt(store, 'room', log.base.at - 1), undefined)
    } finally {
      await store.close()
      await dir?.remove()
    }
  }
})

test('the keeper folds the log beyond --history-exact and keeps a version pinned by a revert while inside it', async () => {
  const clock = manualClock()
  const store = new MemoryStore({ now: clock.now })
  const log = createLogger('silent')
  const keeper = new HistoryKeeper(store, { interval: 60_000, retention: parseRetention('1h:1m,1d:10m'), log, now: clock.now, exactWindow: 3_600_000 })
  const doc = new Y.Doc()
  for (let i = 0; i < 5; i++) {
    await store.append('r', updatesOf(doc, (d) => d.getText('text').insert(0, String(i))))
    clock.advance(20 * 60_000)
  }
  // Now = 100 min after the first write: the window (1 h) reaches back to minute 40.
  await keeper.foldLog('r')
  const after = await store.readLog('r')
  assert.deepEqual(after.entries.map((e) => e.seq), [3, 4, 5], 'entries older than the window are folded')
  assert.equal(after.base?.upTo, 2)
  const windowStart = clock.value() - 3_600_000
  assert.ok(await stateAt(store, 'r', windowStart), 'every instant of the window stays exact')
  await keeper.close()

  // Retention: three versions in one 1-minute slot; the older, pinned one stays while inside the window.
  const slot = Math.floor(clock.value() / 60_000) * 60_000 - 60_000
  const versions = [
    { id: 1, at: slot + 10_000, seq: 4, bytes: 1, pinned: true },
    { id: 2, at: slot + 20_000, seq: 5, bytes: 1 },
    { id: 3, at: slot + 30_000, seq: 6, bytes: 1 },
  ]
  // (The newest version of all is always kept on top of its slot's.)
  assert.deepEqual(versionsToDrop(versions, parseRetention('1h:1m'), clock.value(), 0), [1], 'without a window the pinned one is thinned out')
  assert.ok(!versionsToDrop(versions, parseRetention('1h:1m'), clock.value(), 3_600_000).includes(1), 'pinned and inside the window: kept')
  assert.ok(versionsToDrop(versions, parseRetention('1h:1m'), clock.value() + 2 * 3_600_000, 3_600_000).includes(1), 'pinned but past the window: retention as usual')
})

test('the token\'s sub is recorded as the user of a connection\'s updates; a hostile sub is ignored', async (t) => {
  const secret = 'a-secret-of-at-least-thirty-two-bytes!!'
  const server = await startServer({ authSecret: secret, adminToken: 'tok' })
  t.after(() => server.close())
  const auth = ['--server', server.httpUrl, '--token', 'tok']
  const tokens = [
    await signToken({ rooms: ['r'], access: 'write', ttl: 60_000, secret, sub: 'ana@example.com' }),
    await signToken({ rooms: ['r'], access: 'write', ttl: 60_000, secret, sub: 'evil\u001b[2Jname' }),
    await signToken({ rooms: ['r'], access: 'write', ttl: 60_000, secret, sub: 'x'.repeat(10_000) }),
  ]
  let count = 0
  for (const token of tokens) {
    const c = connect(server.url, 'r', { params: { token } })
    t.after(() => c.destroy())
    await synced(c)
    c.text.insert(0, 'x')
    count++
    await wait(async () => (await server.store.load('r')).lastSeq >= count, 'stored')
  }
  const res = await cli(['history', 'r', '--activity', '--json', ...auth])
  assert.equal(res.code, 0, res.stderr)
  const activity = JSON.parse(res.out) as Array<{ updates: number; users: string[] }>
  assert.equal(activity.reduce((n, b) => n + b.updates, 0), 3)
  assert.deepEqual([...new Set(activity.flatMap((b) => b.users))], ['ana@example.com'])
  const text = await cli(['history', 'r', ...auth])
  assert.match(text.out, /ana@example\.com/)
  assert.doesNotMatch(text.out, /\u001b/)
})

test('a running server compacting many times inside the window stays exact at every instant', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const clock = manualClock()
  const server = await startServer({ dataDir: dir.path, adminToken: 'tok', clock: clock.now, compactEvery: 5 })
  t.after(() => server.close())
  const client = connect(server.url, 'busy')
  t.after(() => client.destroy())
  await synced(client)
  const texts: Array<{ at: number; text: string }> = []
  for (let i = 0; i < 40; i++) {
    client.text.insert(client.text.length, String.fromCharCode(97 + (i % 26)))
    await wait(async () => (await server.store.load('busy')).lastSeq >= i + 1, `update ${i + 1} stored`)
    texts.push({ at: clock.value(), text: client.text.toString() })
    clock.advance(1000)
  }
  const stored = await server.store.load('busy')
  assert.ok(stored.pendingUpdates < 40, `compacted meanwhile (${stored.pendingUpdates} updates pending)`)
  const auth = ['--server', server.httpUrl, '--token', 'tok']
  for (const i of [0, 4, 5, 17, 33, 39]) {
    const res = await cli(['export', 'busy', '--at', iso(texts[i]!.at + 500), ...auth])
    assert.equal(res.code, 0, res.stderr)
    assert.equal(res.out, texts[i]!.text, `the room 0.5 s after update ${i + 1}`)
  }
})
