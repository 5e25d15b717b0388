/**
 * Cluster figures for the README's capacity model, measured in one run:
 *  - end-to-end latency writer → reader on the same process and across processes
 *    (cluster mode), next to a single-process LevelDB server;
 *  - PostgreSQL transactions and Redis commands per second per 1,000 active users.
 *
 * Usage: tsx scripts/bench/cluster.ts [--quick]   (needs PostgreSQL and Redis, see README)
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { Redis } from 'ioredis'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

// Each provider adds a process 'exit' listener.
process.setMaxListeners(1000)

const POSTGRES_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const quick = process.argv.includes('--quick')
const ROOT = new URL('../..', import.meta.url).pathname

interface Server { child: ChildProcess; port: number; url: string }

function startServer(args: string[], core: number): Promise<Server> {
  const child = spawn('taskset', ['-c', String(core), process.execPath, '--import', 'tsx', 'scripts/coedit.ts', 'serve', '--port', '0', '--log-level', 'info', ...args], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'],
  })
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)))
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { event?: string; port?: number }
        if (entry.event === 'listening' && entry.port) resolve({ child, port: entry.port, url: `ws://127.0.0.1:${entry.port}` })
      } catch { /* not a log line */ }
    })
  })
}

function provider(url: string, room: string): { doc: Y.Doc; p: WebsocketProvider } {
  const doc = new Y.Doc()
  // ws implements the WebSocket API the provider needs; its types differ from the DOM's.
  const p = new WebsocketProvider(url, room, doc, { WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket, disableBc: true })
  return { doc, p }
}

async function until(check: () => boolean, timeout = 20_000): Promise<void> {
  const deadline = Date.now() + timeout
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 10))
  }
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN
}

/** One writer at `rate` updates/s; each reader records writer→reader latency. */
async function latency(writerUrl: string, readerUrls: Record<string, string>, seconds: number, rate: number): Promise<Record<string, { p50: number; p99: number; n: number }>> {
  const room = `lat-${randomBytes(4).toString('hex')}`
  const writer = provider(writerUrl, room)
  const readers = Object.entries(readerUrls).map(([name, url]) => ({ name, ...provider(url, room), samples: [] as number[] }))
  await until(() => writer.p.synced && readers.every((r) => r.p.synced))
  for (const r of readers) {
    r.doc.getMap('bench').observe(() => {
      const sent = r.doc.getMap('bench').get('t') as number
      r.samples.push(performance.now() - sent)
    })
  }
  const end = Date.now() + seconds * 1000
  while (Date.now() < end) {
    writer.doc.getMap('bench').set('t', performance.now())
    await new Promise((r) => setTimeout(r, 1000 / rate))
  }
  await new Promise((r) => setTimeout(r, 500))
  const out: Record<string, { p50: number; p99: number; n: number }> = {}
  for (const r of readers) {
    out[r.name] = { p50: +pct(r.samples, 50).toFixed(2), p99: +pct(r.samples, 99).toFixed(2), n: r.samples.length }
    r.p.destroy()
  }
  writer.p.destroy()
  return out
}

async function main(): Promise<void> {
  const schema = `bench_${randomBytes(3).toString('hex')}`
  const prefix = `bench:${schema}:`
  const dataDir = await mkdtemp(join(tmpdir(), 'coedit-bench-'))
  const clusterArgs = ['--postgres', POSTGRES_URL, '--postgres-schema', schema, '--redis', REDIS_URL, '--redis-prefix', prefix]
  // Servers on core 0, this load generator on core 1.
  const single = await startServer(['--data', dataDir], 0)
  const a = await startServer(clusterArgs, 0)
  const b = await startServer(clusterArgs, 0)
  const seconds = quick ? 3 : 10
  try {
    const lat = {
      single: (await latency(single.url, { single: single.url }, seconds, 50)).single!,
      ...(await latency(a.url, { sameProcess: a.url, crossProcess: b.url }, seconds, 50)),
    }
    console.log(JSON.stringify({ scenario: 'cluster-latency', rate: 50, seconds, ...lat }))

    // Load per active user: users typing `rate` updates/s, spread over 2 processes.
    const users = quick ? 40 : 200
    const perRoom = 5
    const rate = 2
    const db = new pg.Client({ connectionString: POSTGRES_URL })
    await db.connect()
    const redis = new Redis(REDIS_URL)
    const clients = Array.from({ length: users }, (_, i) => provider(i % 2 ? b.url : a.url, `load-${Math.floor(i / perRoom)}`))
    await until(() => clients.every((c) => c.p.synced), 60_000)
    const stats = async (): Promise<{ xact: number; redisCmds: number; t: number }> => {
      const { rows } = await db.query<{ x: string }>('SELECT xact_commit AS x FROM pg_stat_database WHERE datname = current_database()')
      const info = await redis.info('stats')
      return { xact: Number(rows[0]!.x), redisCmds: Number(/total_commands_processed:(\d+)/.exec(info)![1]), t: performance.now() }
    }
    const before = await stats()
    const end = Date.now() + seconds * 1000
    let sent = 0
    while (Date.now() < end) {
      for (const c of clients) {
        c.doc.getText('text').insert(0, 'x')
        sent++
      }
      await new Promise((r) => setTimeout(r, 1000 / rate))
    }
    await new Promise((r) => setTimeout(r, 1000))
    const after = await stats()
    const secs = (after.t - before.t) / 1000
    const per1000 = 1000 / users
    console.log(JSON.stringify({
      scenario: 'cluster-load', users, updatesPerUserPerSecond: rate, processes: 2, seconds: +secs.toFixed(1), updatesSent: sent,
      postgresTxPerSecondPer1000Users: +(((after.xact - before.xact) / secs) * per1000).toFixed(0),
      redisCommandsPerSecondPer1000Users: +(((after.redisCmds - before.redisCmds) / secs) * per1000).toFixed(0),
      updatesPerSecondPer1000Users: +((sent / secs) * per1000).toFixed(0),
    }))
    for (const c of clients) c.p.destroy()
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {})
    await db.end()
    const keys = await redis.keys(`${prefix}*`)
    if (keys.length) await redis.del(...keys)
    redis.disconnect()
  } finally {
    for (const s of [single, a, b]) s.child.kill('SIGTERM')
    await new Promise((r) => setTimeout(r, 500))
    await rm(dataDir, { recursive: true, force: true })
  }
}

await main()
process.exit(0)
