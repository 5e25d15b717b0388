/**
 * `npm run bench [-- --quick] [--servers a,b] [--only S1,S5] [--reps n] [--out file.json] [--trace]`
 *
 * --trace: coedit runs S1 and S2 with --trace-path, and a second table shows where an
 * update's time goes inside the server, stage by stage (server/base/path-trace.ts).
 * --servers coedit-base with BENCH_BASE=/other/checkout: that checkout's coedit alongside.
 * `npm run bench -- --sweep s1|s2|s4|session [--quick] [--points a,b] [--servers a,b] [--out f.json] [--svg f.svg]` (sweep.ts)
 *
 * Runs the same workloads against coedit and its peers in one run (server on core 0,
 * this load generator on core 1, peers interleaved), prints one JSON line per scenario
 * and server, then one table with ratios. See README "Performance".
 */
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg } from 'node:os'
import { FULL, QUICK, SMOKE, ceiling, coldLoad, fanOut, idleConnections, manyRooms, type Metrics, type RunContext, type Sizes } from './scenarios.js'
import { SPECS, buildServers, ensurePeers, type ServerKind } from './servers.js'
import { renderPathTable, renderTable, type Aggregate } from './report.js'
import { median } from './stats.js'
import { SWEEPS, runSweep } from './sweep.js'

interface Options {
  sizes: Sizes
  mode: 'full' | 'quick' | 'smoke'
  servers: ServerKind[]
  only: Set<string> | undefined
  out: string | undefined
  noKill: boolean
  trace: boolean
  sweep: string | undefined
  svg: string | undefined
  points: number[] | undefined
}

const DEFAULT_SERVERS: ServerKind[] = ['coedit', 'ywss', 'hocuspocus', 'raw']

function parseArgs(argv: string[]): Options {
  let sizes = FULL
  let mode: Options['mode'] = 'full'
  let servers = DEFAULT_SERVERS
  let only: Set<string> | undefined
  let out: string | undefined
  let reps: number | undefined
  let noKill = false
  let trace = false
  let sweep: string | undefined
  let svg: string | undefined
  let points: number[] | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const value = (): string => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${arg} needs a value`)
      return v
    }
    if (arg === '--quick') { sizes = QUICK; mode = 'quick' }
    else if (arg === '--smoke') { sizes = SMOKE; mode = 'smoke' }
    else if (arg === '--servers') {
      const v = value()
      servers = v === 'all' ? Object.keys(SPECS) as ServerKind[] : v.split(',') as ServerKind[]
    }
    else if (arg === '--only') only = new Set(value().toUpperCase().split(','))
    else if (arg === '--reps') reps = Number(value())
    else if (arg === '--out') out = value()
    else if (arg === '--no-kill') noKill = true
    else if (arg === '--trace') trace = true
    else if (arg === '--sweep') sweep = value().toLowerCase()
    else if (arg === '--svg') svg = value()
    else if (arg === '--points') {
      points = value().split(',').map(Number)
      if (points.some((n) => !Number.isFinite(n) || n <= 0)) throw new Error('--points takes positive numbers: 10000,100000')
    }
    else throw new Error(`unknown option ${arg}`)
  }
  for (const s of servers) if (!(s in SPECS)) throw new Error(`unknown server ${s} (one of ${Object.keys(SPECS).join(', ')})`)
  if ((svg !== undefined || points !== undefined) && sweep === undefined) throw new Error('--svg and --points go with --sweep')
  if (sweep !== undefined && !(sweep in SWEEPS)) throw new Error(`unknown sweep ${sweep} (one of ${Object.keys(SWEEPS).join(', ')})`)
  return { sizes: reps ? { ...sizes, reps, repsStatic: reps } : sizes, mode, servers, only, out, noKill, trace, sweep, svg, points }
}

function machine(): Record<string, string | number> {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8')
  return {
    cores: cpus().length,
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    node: process.version,
    loadavg: loadavg().map((l) => l.toFixed(2)).join(' '),
    date: new Date().toISOString(),
  }
}

/** Pins this process (all threads) to `cpu`; returns the core for the servers, if any. */
function pin(): string | undefined {
  if (availableParallelism() < 2) return undefined
  try {
    execFileSync('taskset', ['-a', '-cp', '1', String(process.pid)], { stdio: 'ignore' })
    return '0'
  } catch {
    return undefined
  }
}

interface Job {
  id: string
  scenario: string
  params: Record<string, number>
  run: (ctx: RunContext) => Promise<Metrics>
}

function jobs(sizes: Sizes, only: Set<string> | undefined): Job[] {
  const list: Job[] = [
    ...sizes.s1.readers.map((readers) => ({
      id: `S1/${readers}`, scenario: 'S1', params: { readers, rate: sizes.s1.rate, seconds: sizes.s1.seconds },
      run: (ctx: RunContext) => fanOut(ctx, readers),
    })),
    { id: 'S2', scenario: 'S2', params: { ...sizes.s2 }, run: manyRooms },
    { id: 'S3', scenario: 'S3', params: { ...sizes.s3 }, run: idleConnections },
    { id: 'S4', scenario: 'S4', params: { ...sizes.s4 }, run: coldLoad },
    { id: 'S5', scenario: 'S5', params: { ...sizes.s5 }, run: ceiling },
  ]
  return list.filter((j) => !only || only.has(j.scenario) || (j.scenario === 'S5' && only.has('S6')))
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2))
  const started = Date.now()
  const host = machine()
  const cpu = pin()
  const info = { ...host, mode: options.mode, reps: options.sizes.reps, repsStatic: options.sizes.repsStatic, pinned: cpu !== undefined }
  const log = (line: string): void => { process.stderr.write(`${line}\n`) }
  log(`bench: ${JSON.stringify(info)}`)
  if (options.servers.some((k) => SPECS[k].peer)) ensurePeers(log)
  await buildServers(options.servers)
  if (options.sweep !== undefined) {
    const result = await runSweep({ name: options.sweep, mode: options.mode, servers: options.servers, sizes: options.sizes, cpu, out: options.out, svg: options.svg, points: options.points, info, log })
    process.exitCode = result.points.some((p) => p.failed > 0) ? 1 : 0
    return
  }
  const list = jobs(options.sizes, options.only)
  const results = new Map<string, Metrics[]>()
  for (let rep = 0; rep < options.sizes.reps; rep++) {
    for (const job of list) {
      if ((job.scenario === 'S3' || job.scenario === 'S4') && rep >= options.sizes.repsStatic) continue
      // Interleave: each repetition starts the rotation at a different server.
      const order = options.servers.map((_, i) => options.servers[(i + rep) % options.servers.length]!)
      for (const kind of order) {
        const spec = SPECS[kind]
        const t0 = Date.now()
        let metrics: Metrics
        try {
          metrics = await job.run({ spec, cpu, sizes: options.sizes, noKill: options.noKill, trace: options.trace, log })
        } catch (err) {
          log(`  ${job.id} ${spec.label}: FAILED ${(err as Error).message}`)
          metrics = { failed: 1 }
        }
        log(`  rep ${rep + 1} ${job.id.padEnd(6)} ${spec.label.padEnd(28)} ${((Date.now() - t0) / 1000).toFixed(1)}s ${JSON.stringify(round(metrics))}`)
        const key = `${job.id}|${kind}`
        results.set(key, [...(results.get(key) ?? []), metrics])
      }
    }
  }
  const aggregates: Aggregate[] = []
  for (const job of list) {
    for (const kind of options.servers) {
      const runs = results.get(`${job.id}|${kind}`) ?? []
      const agg = aggregate(job, kind, runs)
      aggregates.push(agg)
      console.log(JSON.stringify(agg))
      if (job.scenario === 'S5' && agg.median.seen !== undefined) {
        console.log(JSON.stringify({
          scenario: 'S6', server: kind, label: SPECS[kind].label, durableBeforeRelay: SPECS[kind].durableBeforeRelay,
          sustainedPerSec: agg.median.throughput, seen: agg.median.seen, present: agg.median.present, lost: agg.max.lost,
          lostPerRep: runs.map((r) => r.lost ?? null),
        }))
      }
    }
  }
  const elapsed = (Date.now() - started) / 1000
  console.log('')
  console.log(renderTable(aggregates, options.servers, info))
  if (options.trace) console.log(`\n${renderPathTable(aggregates)}`)
  console.log(`\n${options.mode} run, ${options.sizes.reps} repetition(s) of S1, S2, S5 and ${options.sizes.repsStatic} of S3, S4, ${elapsed.toFixed(0)} s; command: npm run bench${options.mode === 'full' ? '' : ` -- --${options.mode}`}`)
  if (options.out) writeFileSync(options.out, JSON.stringify({ info, elapsed, aggregates }, null, 2))
  const failed = aggregates.some((a) => a.failed > 0)
  process.exitCode = failed ? 1 : 0
}

function round(m: Metrics): Metrics {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v === null ? null : Math.round(v * 1000) / 1000]))
}

function aggregate(job: Job, kind: ServerKind, runs: Metrics[]): Aggregate {
  const keys = new Set(runs.flatMap((r) => Object.keys(r)))
  keys.delete('failed')
  const med: Metrics = {}
  const min: Metrics = {}
  const max: Metrics = {}
  for (const k of keys) {
    const values = runs.map((r) => r[k]).filter((v): v is number => typeof v === 'number')
    med[k] = values.length ? median(values) : null
    min[k] = values.length ? Math.min(...values) : null
    max[k] = values.length ? Math.max(...values) : null
  }
  return {
    scenario: job.scenario, id: job.id, params: job.params, server: kind, label: SPECS[kind].label,
    reps: runs.length, failed: runs.filter((r) => r.failed).length,
    median: round(med), min: round(min), max: round(max),
  }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
