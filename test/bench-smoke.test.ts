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

/** Minimal well-formedness: one root <svg>, every tag closed in order, no bare `&` or `<` in text. */
function checkSvg(svg: string): Map<string, string[]> {
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]*>/)
  assert.match(svg.trimEnd(), /<\/svg>$/)
  const stack: string[] = []
  let roots = 0
  const polylines = new Map<string, string[]>()
  let metric: string | undefined
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)([^<>]*?)(\/?)>/g)) {
    const [, close, name, attrs, selfClose] = m
    if (close) {
      assert.equal(stack.pop(), name, `</${name}> closes the wrong element`)
      continue
    }
    if (stack.length === 0) roots++
    if (name === 'g' && /data-metric="([^"]*)"/.test(attrs!)) {
      metric = /data-metric="([^"]*)"/.exec(attrs!)![1]!
      polylines.set(metric, [])
    }
    if (name === 'polyline') {
      assert.ok(metric, 'a polyline outside a metric panel')
      polylines.get(metric)!.push(/data-server="([^"]*)"/.exec(attrs!)?.[1] ?? '')
      assert.match(attrs!, /points="(-?[\d.]+,-?[\d.]+( -?[\d.]+,-?[\d.]+)*)?"/)
    }
    if (!selfClose) stack.push(name!)
  }
  assert.equal(stack.length, 0, `unclosed: ${stack.join(', ')}`)
  assert.equal(roots, 1)
  const text = svg.replace(/<[^<>]*>/g, '')
  assert.doesNotMatch(text, /&(?!(amp|lt|gt|quot);)|</, 'unescaped text')
  return polylines
}

interface SweepJson {
  sweep: string
  x: { key: string; values: number[] }
  servers: Array<{ kind: string; label: string }>
  panels: Array<{ key: string; label: string }>
  points: Array<{ x: number; server: string; failed: number; skipped?: string; metrics: Record<string, number | null> }>
}

for (const [sweep, xs, keys] of [
  ['s1', [2, 4], ['p50', 'p99', 'cpuPerUpdateUs', 'peakRssMB']],
  ['session', [0.5, 1], ['p50', 'p99', 'cpuPerUpdateUs', 'rssMB', 'storedMB']],
] as const) {
  test(`npm run bench --sweep ${sweep} --smoke: JSON of every point on every server, and an SVG with a line per server and metric`, { timeout: 240_000 }, async (t) => {
    const dir = await tempDir('coedit-bench-sweep-')
    t.after(() => dir.remove())
    const out = join(dir.path, `${sweep}.json`)
    const svgPath = join(dir.path, `${sweep}-chart.svg`)
    const run = await runScript('scripts/bench/index.ts', ['--sweep', sweep, '--smoke', '--servers', SERVERS.join(','), '--out', out, '--svg', svgPath], {}, 230_000)
    assert.equal(run.code, 0, `sweep failed:\n${run.stderr}`)
    const result = JSON.parse(readFileSync(out, 'utf8')) as SweepJson
    assert.equal(result.sweep, sweep)
    assert.deepEqual(result.x.values, xs)
    assert.deepEqual(result.servers.map((s) => s.kind), SERVERS)
    assert.deepEqual(result.panels.map((p) => p.key), keys)
    assert.equal(result.points.length, xs.length * SERVERS.length)
    for (const x of xs) {
      for (const server of SERVERS) {
        const point = result.points.find((p) => p.x === x && p.server === server)
        assert.ok(point, `no point ${x} for ${server}`)
        assert.equal(point.failed, 0, `${sweep} ${x} failed on ${server}:\n${run.stderr}`)
        for (const key of keys) assert.ok(key in point.metrics, `${sweep} ${x} ${server}: no ${key}`)
      }
    }
    // Correctness, not speed: coedit delivered everything at every point.
    for (const p of result.points.filter((q) => q.server === 'coedit')) assert.equal(p.metrics.delivered, 1, `coedit at ${p.x}`)
    const lines = checkSvg(readFileSync(svgPath, 'utf8'))
    assert.deepEqual([...lines.keys()], keys)
    const labels = result.servers.map((s) => s.label)
    for (const [metric, servers] of lines) assert.deepEqual(servers, labels, `one line per server in ${metric}`)
  })
}

test('the sweep chart escapes labels and leaves a gap where a metric does not apply', async () => {
  const { renderChart } = await import('../scripts/bench/chart.js')
  const svg = renderChart({
    title: 'a <b> & "c"', subtitle: '</svg>', xLabel: 'x & y',
    panels: [
      { key: 'p<1>', label: 'ms & <µs>', logY: true, series: [{ name: '<script>', points: [[1, 1], [10, 100]] }, { name: 'none', points: [[1, null], [10, null]] }] },
      { key: 'flat', label: 'zero', logY: false, series: [{ name: '<script>', points: [[1, 0], [10, 0]] }, { name: 'none', points: [] }] },
    ],
  })
  const lines = checkSvg(svg)
  assert.deepEqual([...lines.values()], [['&lt;script&gt;', 'none'], ['&lt;script&gt;', 'none']])
  assert.match(svg, /data-server="none"[^>]*points=""/)
})

test('bench: an unknown sweep, bad --points, or --svg without --sweep, is refused before anything runs', async () => {
  const bad = await runScript('scripts/bench/index.ts', ['--sweep', 'S9'], {}, 60_000)
  assert.notEqual(bad.code, 0)
  assert.match(bad.stderr, /unknown sweep s9 \(one of s1, s2, s4, session\)/)
  const svg = await runScript('scripts/bench/index.ts', ['--svg', 'x.svg'], {}, 60_000)
  assert.notEqual(svg.code, 0)
  assert.match(svg.stderr, /--svg and --points go with --sweep/)
  const points = await runScript('scripts/bench/index.ts', ['--sweep', 's4', '--points', '10,-1'], {}, 60_000)
  assert.notEqual(points.code, 0)
  assert.match(points.stderr, /--points takes positive numbers/)
})
