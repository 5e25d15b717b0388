/**
 * `npm run bench -- --sweep s1|s2|s4|session [--quick|--smoke] [--points a,b,…] [--servers …] [--out f.json] [--svg f.svg]`
 *
 * One scenario over a range of sizes, every server at every point (interleaved, the
 * rotation shifting at every point), written as JSON and as an SVG chart with the servers
 * on the same axes (log x). `--points` replaces the sweep's sizes (e.g. to stop below a point
 * that does not fit the machine). See README "Performance", "How cost grows".
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { renderChart, type Panel } from './chart.js'
import { coldLoad, fanOut, manyRooms, type Metrics, type RunContext, type Sizes } from './scenarios.js'
import { ROOT, SPECS, type ServerKind } from './servers.js'
import { session, type SessionSizes } from './session.js'

export interface SweepSizes {
  s1: { readers: number[] }
  /** `totalRate`: updates/s over all clients, the same at every point (spread over more rooms). */
  s2: { rooms: number[]; clients: number; totalRate: number; seconds: number }
  s4: { edits: number[] }
  session: SessionSizes
}

export const SWEEP_FULL: SweepSizes = {
  s1: { readers: [10, 50, 200, 800] },
  // 100 rooms × 5 clients × 5 updates/s is S2's own per-client rate; then the same typing spread thinner.
  s2: { rooms: [100, 400, 1600, 6400], clients: 5, totalRate: 2500, seconds: 20 },
  s4: { edits: [10_000, 100_000, 1_000_000] },
  session: { minutes: [7.5, 15, 30, 60], authors: 3, readers: 5, keysPerSecond: 4, speedup: 60, markEvery: 10, seed: 17 },
}

export const SWEEP_QUICK: SweepSizes = {
  s1: { readers: [10, 50, 200] },
  s2: { rooms: [20, 80, 320], clients: 5, totalRate: 500, seconds: 5 },
  s4: { edits: [1_000, 10_000] },
  session: { minutes: [2, 4, 8], authors: 3, readers: 5, keysPerSecond: 4, speedup: 60, markEvery: 10, seed: 17 },
}

export const SWEEP_SMOKE: SweepSizes = {
  s1: { readers: [2, 4] },
  s2: { rooms: [2, 4], clients: 3, totalRate: 30, seconds: 1 },
  s4: { edits: [200, 400] },
  session: { minutes: [0.5, 1], authors: 2, readers: 2, keysPerSecond: 4, speedup: 60, markEvery: 10, seed: 17 },
}

interface SweepDef {
  scenario: string
  xKey: string
  xLabel: string
  xs: (s: SweepSizes) => number[]
  /** Why a point cannot run on this machine, if it cannot. */
  skip?: (s: SweepSizes, x: number) => string | undefined
  /** One Metrics per x. */
  run: (ctx: RunContext, s: SweepSizes, xs: number[]) => Promise<Metrics[]>
  panels: Array<{ key: string; label: string; logY: boolean }>
}

const perUpdate = (m: Metrics, cpu: string, n: string): number | null => {
  const c = m[cpu]
  const u = m[n]
  return typeof c === 'number' && typeof u === 'number' && u > 0 ? (c * 1e6) / u : null
}

const LATENCY = [
  { key: 'p50', label: 'p50 latency, ms', logY: true },
  { key: 'p99', label: 'p99 latency, ms', logY: true },
  { key: 'cpuPerUpdateUs', label: 'server CPU per update, µs', logY: false },
]

/** Each point on its own fresh server. */
const pointwise = (one: (ctx: RunContext, s: SweepSizes, x: number) => Promise<Metrics>) =>
  async (ctx: RunContext, s: SweepSizes, xs: number[]): Promise<Metrics[]> => {
    const out: Metrics[] = []
    for (const x of xs) out.push(await one(ctx, s, x))
    return out
  }

/** Soft limit of open files: a point with more client sockets than that cannot run here. */
function openFileLimit(): number {
  const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
  return m ? Number(m[1]) : Infinity
}

export const SWEEPS: Record<string, SweepDef> = {
  s1: {
    scenario: 'S1', xKey: 'readers', xLabel: 'readers (1 writer, 500 updates/s)',
    xs: (s) => s.s1.readers,
    skip: (_s, x) => (x + 100 > openFileLimit() ? `${x} sockets exceed the open-file limit ${openFileLimit()}` : undefined),
    run: pointwise(async (ctx, _s, readers) => {
      const m = await fanOut(ctx, readers)
      const us = perUpdate(m, 'cpu', 'updates')
      return { ...m, cpuPerUpdateUs: us, cpuPerDeliveryUs: us === null ? null : us / readers }
    }),
    panels: [...LATENCY, { key: 'peakRssMB', label: 'peak RSS, MB', logY: false }],
  },
  s2: {
    scenario: 'S2', xKey: 'rooms', xLabel: 'rooms (× 5 clients, same total updates/s)',
    xs: (s) => s.s2.rooms,
    skip: (s, rooms) => {
      const sockets = rooms * s.s2.clients
      return sockets + 100 > openFileLimit() ? `${sockets} client sockets exceed the open-file limit ${openFileLimit()}` : undefined
    },
    run: pointwise(async (ctx, s, rooms) => {
      const { clients, totalRate, seconds } = s.s2
      const m = await manyRooms({ ...ctx, sizes: { ...ctx.sizes, s2: { rooms, clients, seconds, rate: totalRate / (rooms * clients) } } })
      return { ...m, cpuPerUpdateUs: perUpdate(m, 'cpu', 'updates') }
    }),
    panels: [...LATENCY, { key: 'peakRssMB', label: 'peak RSS, MB', logY: false }],
  },
  s4: {
    scenario: 'S4', xKey: 'edits', xLabel: 'edits in the document',
    xs: (s) => s.s4.edits,
    run: pointwise(async (ctx, _s, edits) => {
      const m = await coldLoad({ ...ctx, sizes: { ...ctx.sizes, s4: { ...ctx.sizes.s4, edits } } })
      return { ...m, cpuPerEditUs: perUpdate(m, 'uploadCpu', 'edits') }
    }),
    panels: [
      { key: 'coldLoadMs', label: 'cold load after restart, ms', logY: true },
      { key: 'storedMB', label: 'stored on disk, MB', logY: true },
      { key: 'cpuPerEditUs', label: 'server CPU per edit (upload and store), µs', logY: false },
      { key: 'loadedRssMB', label: 'peak RSS after the cold load, MB', logY: false },
    ],
  },
  session: {
    scenario: 'session', xKey: 'minutes', xLabel: 'simulated minutes of typing',
    xs: (s) => s.session.minutes,
    run: async (ctx, s) => (await session(ctx, s.session)).map((m) => ({ ...m, cpuPerUpdateUs: perUpdate(m, 'cpu', 'updates') })),
    panels: [...LATENCY, { key: 'rssMB', label: 'RSS at the checkpoint, MB', logY: false }, { key: 'storedMB', label: 'stored on disk, MB', logY: false }],
  },
}

export interface SweepPoint {
  x: number
  server: ServerKind
  label: string
  failed: number
  skipped?: string
  error?: string
  metrics: Metrics
}

export interface SweepResult {
  info: Record<string, unknown>
  sweep: string
  scenario: string
  x: { key: string; label: string; values: number[] }
  sizes: unknown
  servers: Array<{ kind: ServerKind; label: string }>
  panels: Array<{ key: string; label: string }>
  points: SweepPoint[]
  elapsed: number
}

export interface SweepOptions {
  name: string
  mode: 'full' | 'quick' | 'smoke'
  servers: ServerKind[]
  sizes: Sizes
  cpu: string | undefined
  out: string | undefined
  svg: string | undefined
  /** Replaces the sweep's x values. */
  points?: number[] | undefined
  info: Record<string, unknown>
  log: (line: string) => void
}

export async function runSweep(o: SweepOptions): Promise<SweepResult> {
  const def = SWEEPS[o.name]
  if (!def) throw new Error(`unknown sweep ${o.name} (one of ${Object.keys(SWEEPS).join(', ')})`)
  const sizes = o.mode === 'full' ? SWEEP_FULL : o.mode === 'quick' ? SWEEP_QUICK : SWEEP_SMOKE
  const started = Date.now()
  const allXs = o.points ?? def.xs(sizes)
  const points: SweepPoint[] = []
  for (const x of allXs) {
    const why = def.skip?.(sizes, x)
    if (why) {
      o.log(`  sweep ${o.name}: ${def.xKey} ${x} skipped: ${why}`)
      for (const kind of o.servers) points.push({ x, server: kind, label: SPECS[kind].label, failed: 0, skipped: why, metrics: {} })
    }
  }
  const xs = allXs.filter((x) => !def.skip?.(sizes, x))
  // Point sweeps rotate the server order at every point; the session is one run per server.
  const rounds = def.scenario === 'session' ? [xs] : xs.map((x) => [x])
  for (const [r, round] of rounds.entries()) {
    const order = o.servers.map((_, i) => o.servers[(i + r) % o.servers.length]!)
    for (const kind of order) {
      const spec = SPECS[kind]
      const t0 = Date.now()
      let results: Metrics[]
      let error: string | undefined
      try {
        results = await def.run({ spec, cpu: o.cpu, sizes: o.sizes, log: o.log }, sizes, round)
      } catch (err) {
        error = (err as Error).message
        results = round.map(() => ({}))
      }
      round.forEach((x, i) => {
        const metrics = round2(results[i] ?? {})
        points.push({ x, server: kind, label: spec.label, failed: error ? 1 : 0, ...(error ? { error } : {}), metrics })
        o.log(`  sweep ${o.name} ${def.xKey}=${x} ${spec.label.padEnd(28)} ${error ? `FAILED ${error}` : JSON.stringify(metrics)}`)
      })
      o.log(`    (${((Date.now() - t0) / 1000).toFixed(1)} s)`)
    }
  }
  points.sort((a, b) => a.x - b.x || o.servers.indexOf(a.server) - o.servers.indexOf(b.server))
  const result: SweepResult = {
    info: o.info, sweep: o.name, scenario: def.scenario,
    x: { key: def.xKey, label: def.xLabel, values: allXs },
    sizes: { ...sizes[o.name as keyof SweepSizes] },
    servers: o.servers.map((kind) => ({ kind, label: SPECS[kind].label })),
    panels: def.panels.map(({ key, label }) => ({ key, label })),
    points,
    elapsed: (Date.now() - started) / 1000,
  }
  const base = o.mode === 'full' ? `sweep-${o.name}` : `sweep-${o.name}-${o.mode}`
  const out = o.out ?? join(ROOT, 'docs', 'bench', `${base}.json`)
  const svg = o.svg ?? out.replace(/\.json$/, '') + '.svg'
  mkdirSync(dirname(out), { recursive: true })
  mkdirSync(dirname(svg), { recursive: true })
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`)
  writeFileSync(svg, sweepChart(result))
  o.log(`sweep ${o.name}: ${out}, ${svg}, ${result.elapsed.toFixed(0)} s`)
  return result
}

/** The chart of a sweep's JSON (also usable on a saved result). */
export function sweepChart(r: SweepResult): string {
  const def = SWEEPS[r.sweep]!
  const panels: Panel[] = def.panels.map((p) => ({
    ...p,
    series: r.servers.map((s) => ({
      name: s.label,
      points: r.points.filter((pt) => pt.server === s.kind && !pt.skipped && !pt.failed)
        .map((pt): [number, number | null, boolean] => [pt.x, typeof pt.metrics[p.key] === 'number' ? pt.metrics[p.key] as number : null, saturated(pt)]),
    })),
  }))
  const skipped = [...new Set(r.points.filter((p) => p.skipped).map((p) => p.x))]
  const open = r.points.some(saturated) ? '; hollow: delivered under 99% within the drain (saturated; CPU counts only what it got through)' : ''
  const load = typeof r.info.loadavg === 'string' ? `, load average at start ${r.info.loadavg}` : ''
  return renderChart({
    title: `coedit bench sweep ${r.sweep} (${r.scenario}): how cost grows`,
    subtitle: `${String(r.info.date ?? '').slice(0, 16)} ${String(r.info.mode ?? '')}${load}${skipped.length ? `; not run (does not fit): ${skipped.join(', ')}` : ''}${open}`,
    xLabel: r.x.label,
    panels,
  })
}

/** Not everything reached the readers before the drain ended: the server fell behind the load. */
function saturated(p: SweepPoint): boolean {
  const d = p.metrics.delivered
  return typeof d === 'number' && d < 0.99
}

function round2(m: Metrics): Metrics {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v === null ? null : Math.round(v * 1000) / 1000]))
}
