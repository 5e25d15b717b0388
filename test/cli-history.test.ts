/**
 * History retention: over weeks of simulated time (an injected clock), a room keeps one
 * version per slot of each tier and nothing more; the bound holds at every moment; the
 * server records versions of changed rooms on its own; bad retention specs are refused.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import pino from 'pino'
import { HistoryKeeper, parseRetention, retentionBound, versionsToDrop, DEFAULT_RETENTION, type HistoryRoom, type RetentionTier } from '../server/operator/history.js'
import { LevelStore } from '../server/persistence/leveldb.js'
import { MemoryStore } from '../server/persistence/memory.js'
import type { VersionedStore, VersionInfo } from '../server/persistence/store.js'
import { UsageError } from '../server/errors.js'
import { startServer } from '../server/index.js'
import { connect, prng, synced, tempDir, testSeed, waitFor } from './helpers/index.js'
/** waitFor with a generous default timeout: the CPU is shared with other test runs. */
const wait = <T>(check: () => T | Promise<T>, options: Parameters<typeof waitFor>[1] = {}): Promise<T> => waitFor(check, { timeout: 15_000, ...options })

const MIN = 60_000
const HOUR = 60 * MIN
const DAY = 24 * HOUR

/**
 * What the policy promises at `now`, given every time a version was recorded: in each
 * tier, every slot lying wholly inside the tier's age window that received a version
 * holds exactly one; nothing is older than the last tier; the newest is always kept.
 */
function checkPromise(kept: VersionInfo[], recorded: number[], tiers: RetentionTier[], now: number, seed: number): void {
  const last = tiers[tiers.length - 1]!.age
  assert.ok(kept.length <= retentionBound(tiers), `at most ${retentionBound(tiers)} versions, have ${kept.length} (seed ${seed})`)
  assert.equal(Math.max(...kept.map((v) => v.at)), Math.max(...recorded), 'the newest version is kept')
  for (const v of kept) assert.ok(now - v.at <= last || v.at === Math.max(...recorded), `version at ${new Date(v.at).toISOString()} is past retention`)
  let from = 0
  for (const [i, tier] of tiers.entries()) {
    const startSlot = Math.ceil((now - tier.age) / tier.every)
    const endSlot = Math.floor((now - from) / tier.every) - 1
    for (let slot = startSlot; slot <= endSlot; slot++) {
      const lo = slot * tier.every
      const hi = lo + tier.every
      const had = recorded.some((at) => at >= lo && at < hi)
      const have = kept.filter((v) => v.at >= lo && v.at < hi).length
      assert.equal(have, had ? 1 : 0, `tier ${i} slot ${new Date(lo).toISOString()}: ${have} versions, recorded ${had} (seed ${seed})`)
    }
    from = tier.age
  }
}

/** `checkEvery`: check the bound (and that quiet ticks record nothing) every this many steps. */
async function simulate(store: VersionedStore, seed: number, checkEvery = 1): Promise<void> {
  const random = prng(seed)
  const tiers = parseRetention(DEFAULT_RETENTION)
  let now = Date.parse('2026-01-01T00:00:00Z')
  const keeper = new HistoryKeeper(store, { interval: MIN, retention: tiers, log: pino({ level: 'silent' }), now: () => now })
  const doc = new Y.Doc()
  let seq = 0
  const room: HistoryRoom = { name: 'room', doc, get lastApplied() { return seq }, isDestroyed: false }
  keeper.start(() => [room])
  const recorded: number[] = []
  const end = now + 40 * DAY
  let step = 0
  while (now < end) {
    step++
    // Bursts of editing with quiet spells from minutes to a day: every tier sees gaps.
    const quiet = random() < 0.05 ? Math.floor(random() * DAY) : Math.floor(random() * 15 * MIN)
    now += quiet + MIN
    doc.getText('text').insert(0, 'x')
    seq++
    await keeper.tick()
    recorded.push(now)
    if (step % checkEvery !== 0) continue
    const versions = await store.listVersions('room')
    assert.equal(versions[versions.length - 1]!.at, now, 'the change was recorded')
    assert.ok(versions.length <= retentionBound(tiers), `bound holds at ${new Date(now).toISOString()} (seed ${seed})`)
    // A tick without changes records nothing.
    await keeper.tick()
    assert.equal((await store.listVersions('room')).length, versions.length)
  }
  await keeper.close()
  assert.ok(recorded.length > 500, `simulated ${recorded.length} versions`)
  checkPromise(await store.listVersions('room'), recorded, tiers, now, seed)
  // What is kept can be read back, and is the room as of that version.
  const versions = await store.listVersions('room')
  const oldest = await store.getVersion('room', versions[0]!.id)
  const d = new Y.Doc()
  Y.applyUpdate(d, oldest!.state)
  assert.equal(d.getText('text').length, oldest!.seq)
}

test('retention over 40 simulated days keeps the promised versions and no more (memory store)', async () => {
  const seed = testSeed()
  await simulate(new MemoryStore(), seed)
})

test('retention over 40 simulated days keeps the promised versions and no more (LevelDB)', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const store = await LevelStore.open(dir.path, { sync: false })
  t.after(() => store.close())
  await simulate(store, testSeed(), 25)
})

test('versionsToDrop: slots per tier, newest kept, nothing past the last tier', () => {
  const tiers = parseRetention('10m:1m,1h:10m')
  const now = 1_000 * HOUR
  const at = (ago: number, id: number): VersionInfo => ({ id, at: now - ago, seq: id, bytes: 1 })
  const versions = [
    at(2 * HOUR, 1), // past the last tier
    at(48 * MIN, 2), at(45 * MIN, 3), // one 10m slot: only the newer stays
    at(5 * MIN + 30_000, 4), at(5 * MIN + 10_000, 5), // one 1m slot
    at(0, 6),
  ]
  assert.deepEqual(versionsToDrop(versions, tiers, now).sort(), [1, 2, 4])
  assert.deepEqual(versionsToDrop([at(5 * DAY, 1)], tiers, now), [], 'a lone version is the newest: kept')
  assert.equal(retentionBound(tiers), 11 + 6)
})

test('parseRetention refuses malformed policies', () => {
  for (const bad of ['', '1h', '1h:1m,30m:1m', '1m:1h', '1h:0m', 'forever:1d', '1h:1m:1s']) {
    assert.throws(() => parseRetention(bad), UsageError, bad)
  }
  assert.deepEqual(parseRetention('2h:30s,1w:1d'), [{ age: 2 * HOUR, every: 30_000 }, { age: 7 * DAY, every: DAY }])
})

test('a running server records versions of changed rooms on its own, and at unload', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const server = await startServer({ dataDir: dir.path, historyInterval: 100, roomGrace: 50 })
  t.after(() => server.close())
  const store = server.store as LevelStore
  const client = connect(server.url, 'h')
  await synced(client)
  client.text.insert(0, 'a')
  await wait(async () => (await store.listVersions('h')).length === 1, { message: 'first version' })
  client.text.insert(1, 'b')
  await wait(async () => (await store.listVersions('h')).length === 2, { message: 'second version' })
  const seq = (await store.listVersions('h'))[1]!.seq
  // Quiet: no new versions, however many times the history timer looks (each look reads
  // the room's lastApplied once).
  const room = server.registry.rooms[0]!
  const lastApplied = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(room), 'lastApplied')!.get!
  let looks = 0
  Object.defineProperty(room, 'lastApplied', { configurable: true, get() { looks++; return lastApplied.call(room) as number } })
  await wait(() => looks >= 4, { message: 'the history timer to look at the quiet room' })
  assert.equal((await store.listVersions('h')).length, 2)
  // An edit right before the room unloads is recorded too (at compaction).
  client.text.insert(2, 'c')
  client.destroy()
  await wait(() => server.registry.loadedCount === 0, { message: 'room unloaded' })
  // Recorded from the compaction hook, which does not hold up the unload.
  const versions = await wait(async () => {
    const list = await store.listVersions('h')
    return list[list.length - 1]!.seq > seq ? list : undefined
  }, { message: 'a version of the final state' }) as VersionInfo[]
  const last = await store.getVersion('h', versions[versions.length - 1]!.id)
  const d = new Y.Doc()
  Y.applyUpdate(d, last!.state)
  assert.equal(d.getText('text').toString(), 'abc')
  await assert.rejects(startServer({ historyRetention: '1h' }), UsageError)
})

test('a room compacted many times within the history interval gets one version for them, and its final state at unload', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const server = await startServer({ dataDir: dir.path, historyInterval: 60_000, compactEvery: 10, roomGrace: 50 })
  t.after(() => server.close())
  const store = server.store as LevelStore
  let puts = 0
  const putVersion = store.putVersion.bind(store)
  store.putVersion = (...args) => { puts++; return putVersion(...args) }
  const client = connect(server.url, 'busy')
  t.after(() => client.destroy())
  await synced(client)
  const stored = (n: number) => async () => (await store.listRooms()).find((r) => r.name === 'busy' && r.lastSeq >= n)
  for (let i = 0; i < 200; i++) {
    client.text.insert(i, 'x')
    // In bursts of 20, each stored before the next, so the room compacts between them (every 10).
    if (i % 20 === 19) await wait(stored(i + 1), { message: `${i + 1} updates stored` })
  }
  await wait(stored(200), { message: '200 updates stored' })
  await server.registry.rooms[0]!.flushed()
  const info = (await store.listRooms()).find((r) => r.name === 'busy')!
  assert.ok(info.updates < 10, `the log was folded 20 times (${info.updates} updates left unfolded)`)
  assert.ok(puts <= 1, `at most one version stored for ~20 compactions, got ${puts}`)
  client.destroy()
  await wait(() => server.registry.loadedCount === 0, { message: 'room unloaded' })
  const versions = await wait(async () => {
    const list = await store.listVersions('busy')
    return list.length > 0 && list[list.length - 1]!.seq === 200 ? list : undefined
  }, { message: 'a version of the final state' }) as VersionInfo[]
  assert.ok(versions.length <= 2, `${versions.length} versions`)
  const last = await store.getVersion('busy', versions[versions.length - 1]!.id)
  const d = new Y.Doc()
  Y.applyUpdate(d, last!.state)
  assert.equal(d.getText('text').length, 200)
})
