/**
 * --trace-path FILE: each client update's time along the server's path, written as a
 * per-stage breakdown when the server stops. Shape only: no timing is asserted.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import * as Y from 'yjs'
import { startServer } from '../server/index.js'
import { encodeSyncUpdate } from '../server/room/protocol.js'
import { PathTrace, STAGES, type PathSummary } from '../server/base/path-trace.js'
import { tempDir, waitFor } from './helpers/index.js'
import { RawClient } from './helpers/raw-client.js'

const STAGE_KEYS = [...STAGES, 'total']

function edits(n: number): Uint8Array[] {
  const doc = new Y.Doc()
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  for (let i = 0; i < n; i++) doc.getText('text').insert(i, 'x')
  return updates
}

test('--trace-path writes, at shutdown, p50/p99/mean of every stage for the updates that went the whole path', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const file = join(dir.path, 'path.json')
  const server = await startServer({ port: 0, dataDir: join(dir.path, 'data'), tracePath: file, logLevel: 'silent' })
  let closed = false
  t.after(async () => { if (!closed) await server.close() })
  const writer = await RawClient.open(`${server.url}/traced`)
  const reader = await RawClient.open(`${server.url}/traced`)
  t.after(() => { writer.close(); reader.close() })
  const updates = edits(5)
  for (const u of updates) writer.send(encodeSyncUpdate(u))
  // Hostile or useless input is not counted and does not break the trace: a malformed
  // update (closes that connection) and an update the room already has (nothing to store).
  const hostile = await RawClient.open(`${server.url}/traced`)
  t.after(() => hostile.close())
  hostile.send(encodeSyncUpdate(updates[0]!))
  hostile.send(encodeSyncUpdate(new Uint8Array([0xff, 0xff, 0xff])))
  await waitFor(() => reader.messages.filter((m) => m.type === 'sync-update').length >= updates.length, { message: 'every update relayed' })
  assert.equal(existsSync(file), false, 'written at shutdown, not before')
  await server.close()
  closed = true
  const summary = JSON.parse(readFileSync(file, 'utf8')) as PathSummary
  assert.equal(summary.updates, updates.length)
  assert.deepEqual(Object.keys(summary.stages).sort(), [...STAGE_KEYS].sort())
  for (const key of STAGE_KEYS) {
    const s = summary.stages[key as keyof PathSummary['stages']]
    for (const q of ['p50', 'p99', 'mean'] as const) assert.ok(Number.isFinite(s[q]) && s[q] >= 0, `${key}.${q} = ${s[q]}`)
    assert.ok(s.p50 <= s.p99, `${key}: p50 ${s.p50} > p99 ${s.p99}`)
  }
  assert.ok(summary.stages.total.p99 >= summary.stages.fsync.p50, 'the total covers the stages')
})

test('without --trace-path nothing is written', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const server = await startServer({ port: 0, dataDir: join(dir.path, 'data'), logLevel: 'silent' })
  const writer = await RawClient.open(`${server.url}/plain`)
  const reader = await RawClient.open(`${server.url}/plain`)
  for (const u of edits(2)) writer.send(encodeSyncUpdate(u))
  await waitFor(() => reader.messages.filter((m) => m.type === 'sync-update').length >= 2, { message: 'relayed' })
  writer.close()
  reader.close()
  await server.close()
  assert.equal(server.config.tracePath, '')
  assert.deepEqual(readdirSync(dir.path), ['data'])
})

test('an update that stopped on the way (not stored, or not relayed) is left out; an empty trace has zeros', () => {
  const trace = new PathTrace()
  const marks = trace.start()
  PathTrace.mark(marks, 'validate')
  trace.done(marks)
  const summary = trace.summary()
  assert.equal(summary.updates, 0)
  assert.deepEqual(summary.stages.total, { p50: 0, p99: 0, mean: 0 })
})

test('bench --trace: the breakdown table has a row per stage, the server total and the client figure, p50 and p99 per traced run', async () => {
  const { renderPathTable } = await import('../scripts/bench/report.js')
  const median: Record<string, number | null> = { p50: 1.5, p99: 4 }
  for (const key of STAGE_KEYS) Object.assign(median, { [`path.${key}.p50`]: 0.25, [`path.${key}.p99`]: 1 })
  const traced = { scenario: 'S2', id: 'S2', params: {}, server: 'coedit' as const, label: 'coedit', reps: 3, failed: 0, median, min: median, max: median }
  const untraced = { ...traced, server: 'ywss' as const, label: 'y-websocket-server+leveldb', median: { p50: 1, p99: 2 } }
  const table = renderPathTable([traced, untraced]).split('\n')
  assert.equal(table[0], '| stage | S2 coedit p50 | p99 |')
  for (const stage of STAGES) assert.ok(table.includes(`| ${stage} | 0.250 | 1.000 |`), stage)
  assert.ok(table.includes('| server total (receive → write) | 0.250 | 1.000 |'))
  assert.ok(table.includes('| client end-to-end | 1.500 | 4.000 |'))
  assert.match(renderPathTable([untraced]), /no traced run/)
})
