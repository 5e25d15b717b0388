/**
 * The LevelDB store gives back the space of what it rewrote (issue 17): replaced states,
 * versions and the write-ahead log do not pile up on disk. Orders of magnitude only.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import * as Y from 'yjs'
import { LevelStore } from '../server/persistence/leveldb.js'
import { tempDir } from './helpers/index.js'
import { prng } from './helpers/prng.js'

function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0)
}

test('LevelStore: a room compacted many times takes about its live size on disk once closed', async (t) => {
  const seed = Number(process.env.SEED ?? Date.now() % 1e9)
  t.diagnostic(`SEED=${seed}`)
  const random = prng(seed)
  const dir = await tempDir()
  t.after(() => dir.remove())
  const doc = new Y.Doc()
  const text = doc.getText('t')
  let store = await LevelStore.open(dir.path)
  let seq = 0
  let written = 0
  // 40 rounds of 50 updates, each round compacted: every compaction rewrites the whole state.
  // Two sessions: a fresh database's first table lands on its deepest level, whose own
  // garbage LevelDB drops only when a later table is merged into it (the second close).
  for (let round = 0; round < 40; round++) {
    if (round === 20) {
      await store.close()
      store = await LevelStore.open(dir.path)
    }
    const updates: Uint8Array[] = []
    const take = (u: Uint8Array): void => { updates.push(u) }
    doc.on('update', take)
    for (let i = 0; i < 50; i++) {
      const chars = Array.from({ length: 40 }, () => String.fromCharCode(97 + Math.floor(random() * 26))).join('')
      text.insert(Math.floor(random() * (text.length + 1)), chars)
    }
    doc.off('update', take)
    seq = await store.append('r', updates)
    const state = Y.encodeStateAsUpdate(doc)
    await store.compact('r', state, seq)
    written += state.length + updates.reduce((n, u) => n + u.length, 0)
    if (round % 10 === 9) await store.putVersion('r', { at: round, seq, state })
  }
  await store.close()
  const onDisk = dirBytes(dir.path)
  const state = Y.encodeStateAsUpdate(doc)
  t.diagnostic(`on disk ${onDisk} bytes, state ${state.length}, written ${written}`)
  assert.ok(written > 10 * state.length, 'the test rewrites the state many times over')
  // Live: the state, the history log's updates (about a state's worth) and 4 versions (2.5
  // states): under 5 states. Without the range compaction the write-ahead log and level-0
  // tables hold every state written: over 20.
  assert.ok(onDisk < state.length * 10, `${onDisk} bytes on disk for a ${state.length}-byte state`)
  // And nothing was lost: the room reads back.
  store = await LevelStore.open(dir.path)
  try {
    const loaded = await store.load('r')
    const back = new Y.Doc()
    for (const u of loaded.updates) Y.applyUpdate(back, u)
    assert.equal(back.getText('t').toString(), text.toString())
  } finally {
    await store.close()
  }
})
