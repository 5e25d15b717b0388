/**
 * `npm run bench` must not rot: run it at tiny sizes against every server and check the
 * shape of what it reports and the figures that are correctness, not speed (everything
 * delivered, nothing a reader saw lost by coedit after kill -9). No timing is asserted.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from './helpers/index.js'
import { runScript } from './helpers/child-server.js'
import { peersInstalled } from '../scripts/bench/servers.js'

interface Aggregate {
  id: string
  server: string
  failed: number
  median: Record<string, number | null>
}

// The peer servers are a separate install (scripts/bench/peers, better-sqlite3 compiles for
// minutes), which `npm test` never starts by itself: without it, coedit and raw ws only.
// CI installs it first (.ci/run), so there the full run is mandatory.
const withPeers = peersInstalled()
if (!withPeers && process.env.CI) throw new Error('CI: the bench peers are not installed (npm run bench:install)')
if (!withPeers) console.log('# bench smoke: y-websocket-server and Hocuspocus skipped; `npm run bench:install` enables them')
const SERVERS = withPeers ? ['coedit', 'ywss', 'hocuspocus', 'raw'] : ['coedit', 'raw']

test('npm run bench --smoke: every scenario against every server, one table', { timeout: 240_000 }, async (t) => {
  const dir = await tempDir('coedit-bench-smoke-')
  t.after(() => dir.remove())
  const out = join(dir.path, 'bench.json')
  const run = await runScript('scripts/bench/index.ts', ['--smoke', '--servers', SERVERS.join(','), '--out', out], {}, 230_000)
  assert.equal(run.code, 0, `bench failed:\n${run.stderr}`)
  const { aggregates } = JSON.parse(readFileSync(out, 'utf8')) as { aggregates: Aggregate[] }
  const get = (id: string, server: string): Aggregate => {
    const a = aggregates.find((x) => x.id === id && x.server === server)
    assert.ok(a, `no result for ${id} on ${server}`)
    assert.equal(a.failed, 0, `${id} failed on ${server}:\n${run.stderr}`)
    return a
  }
  for (const server of SERVERS) {
    for (const id of ['S1/5', 'S2', 'S3', 'S4', 'S5']) get(id, server)
  }
  // Correctness figures of coedit (not timings).
  assert.equal(get('S1/5', 'coedit').median.delivered, 1)
  assert.equal(get('S2', 'coedit').median.delivered, 1)
  assert.equal(get('S5', 'coedit').median.delivered, 1)
  assert.equal(get('S4', 'coedit').median.complete, 1)
  const s6 = get('S5', 'coedit').median
  assert.ok((s6.seen ?? 0) > 0, 'readers saw nothing before the kill')
  assert.equal(s6.lost, 0, `coedit lost ${s6.lost} of ${s6.seen} updates readers had seen`)
  // The human table and the S6 line are printed.
  assert.match(run.stdout, /\| S5: updates\/s delivered to all readers \|/)
  assert.match(run.stdout, /"scenario":"S6","server":"coedit"/)
})

test('the table shows the worst repetition of S6, so one lossy repetition of three cannot hide behind the median', async () => {
  const { renderTable } = await import('../scripts/bench/report.js')
  const metrics = (lost: number): Record<string, number | null> => ({ throughput: 1000, delivered: 1, cpu: 1, peakRssMB: 1, lost })
  const aggregate = (server: 'coedit' | 'hocuspocus', median: number, max: number) => ({
    scenario: 'S5', id: 'S5', params: {}, server, label: server, reps: 3, failed: 0,
    median: metrics(median), min: metrics(0), max: metrics(max),
  })
  // `as never`: Metrics has fields of every scenario; the S5 rows read only the ones given here.
  const table = renderTable([aggregate('coedit', 0, 451_234), aggregate('hocuspocus', 10, 20)] as never, ['coedit', 'hocuspocus'], {})
  const row = table.split('\n').find((l) => l.startsWith('| S6'))
  assert.ok(row, table)
  const cells = row.split('|').map((c) => c.trim())
  assert.match(cells[2]!, /^451234/, `coedit's worst repetition is shown: ${row}`)
  assert.match(cells[3]!, /^20/, `the peer's worst repetition is shown: ${row}`)
})
