/**
 * What the exact window costs on disk (issue 18): one hour of steady typing (RATE updates a
 * second, one character each, 60 characters a line) into a LevelDB store, compacted as the
 * server does (every 500 updates), then the data directory's size with the history log
 * (what --history-exact keeps) and without it (the same typing with the log folded away).
 *
 *   node --import tsx scripts/bench/history-cost.ts [RATE=5] [HOURS=1]
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as Y from 'yjs'
import { LevelStore } from '../../server/persistence/leveldb.js'
import { foldLogBefore } from '../../server/operator/history-log.js'

const rate = Number(process.argv[2] ?? 5)
const hours = Number(process.argv[3] ?? 1)

async function du(dir: string): Promise<number> {
  let n = 0
  for (const f of await readdir(dir)) n += (await stat(join(dir, f))).size
  return n
}

async function run(keepLog: boolean): Promise<{ bytes: number; updates: number; docBytes: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'coedit-history-cost-'))
  let now = Date.UTC(2026, 0, 1)
  const store = await LevelStore.open(dir, { sync: false, now: () => now })
  const doc = new Y.Doc()
  const text = doc.getText('text')
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  const total = Math.round(rate * 3600 * hours)
  let seq = 0
  for (let i = 0; i < total; i++) {
    // Letters from a fixed pseudo-random sequence: typed text compresses less than "abc...".
    text.insert(text.length, i % 60 === 59 ? '\n' : String.fromCharCode(97 + ((i * 7919 + (i >> 3) * 104729) % 26)))
    seq = await store.append('doc', updates.splice(0), { user: 'typist@example.com' })
    now += 1000 / rate
    if (seq % 500 === 0) await store.compact('doc', Y.encodeStateAsUpdate(doc), seq)
    if (!keepLog && seq % 500 === 0) await foldLogBefore(store, 'doc', now)
  }
  await store.compact('doc', Y.encodeStateAsUpdate(doc), seq)
  if (!keepLog) await foldLogBefore(store, 'doc', now + 1)
  // Let LevelDB fold its write-ahead log and levels, as it does over time.
  const db = (store as unknown as { db: { compactRange(a: string, b: string): Promise<void> } }).db
  await db.compactRange('\u0000', '\uffff')
  await store.close()
  const bytes = await du(dir)
  await rm(dir, { recursive: true, force: true })
  return { bytes, updates: total, docBytes: Y.encodeStateAsUpdate(doc).length }
}

const withLog = await run(true)
const without = await run(false)
const mib = (n: number): string => (n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(2)} MiB`)
console.log(`${withLog.updates} updates (${rate}/s for ${hours} h), document ${mib(withLog.docBytes)}`)
console.log(`data directory with the history log: ${mib(withLog.bytes)}; folded away: ${mib(without.bytes)}`)
console.log(`history log: ${mib((withLog.bytes - without.bytes) / hours)} per hour, ${((withLog.bytes - without.bytes) / withLog.updates).toFixed(1)} bytes per update`)
