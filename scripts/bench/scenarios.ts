/**
 * The workloads. Each starts a fresh server (fresh data directory), drives it with
 * protocol-level clients, and returns its metrics; `null` means "does not apply".
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as Y from 'yjs'
import { LoadClient, PregeneratedWriter, Writer, fetchDoc, marksInText, scanMarks } from './client.js'
import { ServerProcess, diskBytes, type ServerSpec } from './servers.js'
import { Samples, pool, prng, settle, sleep, tick } from './stats.js'

export type Metrics = Record<string, number | null>

export interface Sizes {
  /** Repetitions of the timing scenarios (S1, S2, S5). */
  reps: number
  /** Repetitions of S3 and S4 (memory and cold load vary little; they are also the slowest to set up). */
  repsStatic: number
  s1: { readers: number[]; rate: number; seconds: number }
  s2: { rooms: number; clients: number; rate: number; seconds: number }
  s3: { connections: number; rooms: number }
  /** `settleMs`: the data directory must stay unchanged this long before the restart. */
  s4: { edits: number; chunk: number; settleMs: number }
  /**
   * `prepare`: updates made in advance (more are made on demand); `limit`: at most this many
   * updates in the window (smoke runs); `idleMs`: after the restart, give up waiting for
   * content once nothing arrived for this long.
   */
  s5: { readers: number; seconds: number; killAfter: number; prepare: number; limit: number; idleMs: number }
  /** Longest wait for stragglers after the load stops, ms. */
  drainMs: number
  /**
   * Stop waiting for stragglers once nothing arrived for this long, ms. Timed runs give up
   * soon (what is late counts as not delivered); the smoke run checks correctness (everything
   * arrives) and must not fail because a loaded machine held an fsync for a few seconds.
   */
  idleMs: number
}

export const FULL: Sizes = {
  reps: 3,
  repsStatic: 1,
  s1: { readers: [50, 200], rate: 500, seconds: 6 },
  s2: { rooms: 200, clients: 5, rate: 5, seconds: 20 },
  s3: { connections: 5000, rooms: 1000 },
  s4: { edits: 100_000, chunk: 100, settleMs: 3000 },
  s5: { readers: 10, seconds: 10, killAfter: 2, prepare: 400_000, limit: Infinity, idleMs: 5000 },
  drainMs: 6_000,
  idleMs: 3_000,
}

export const QUICK: Sizes = {
  reps: 1,
  repsStatic: 1,
  s1: { readers: [50], rate: 500, seconds: 3 },
  s2: { rooms: 40, clients: 5, rate: 5, seconds: 5 },
  s3: { connections: 1000, rooms: 200 },
  s4: { edits: 10_000, chunk: 100, settleMs: 2000 },
  s5: { readers: 10, seconds: 3, killAfter: 1, prepare: 120_000, limit: Infinity, idleMs: 3000 },
  drainMs: 4_000,
  idleMs: 3_000,
}

/** Tiny sizes for the CI smoke test: exercises every code path, measures nothing. */
export const SMOKE: Sizes = {
  reps: 1,
  repsStatic: 1,
  s1: { readers: [5], rate: 100, seconds: 1 },
  s2: { rooms: 4, clients: 3, rate: 5, seconds: 1 },
  s3: { connections: 40, rooms: 10 },
  s4: { edits: 1000, chunk: 100, settleMs: 1000 },
  s5: { readers: 3, seconds: 1, killAfter: 0.5, prepare: 4000, limit: 2000, idleMs: 2000 },
  drainMs: 120_000,
  idleMs: 60_000,
}

export interface RunContext {
  spec: ServerSpec
  /** Core to pin the server to (undefined: no pinning). */
  cpu: string | undefined
  sizes: Sizes
  /** Skip S6's kill -9 (so a profiled server exits normally and writes its profile). */
  noKill?: boolean
  /** --trace: S1 and S2 run coedit with --trace-path and report its stage breakdown (`path.STAGE.p50`). */
  trace?: boolean
  log: (line: string) => void
}

export async function withServer<T>(ctx: RunContext, fn: (server: ServerProcess, dataDir: string) => Promise<T>): Promise<T> {
  const dataDir = mkdtempSync(join(tmpdir(), `coedit-bench-${ctx.spec.kind}-`))
  const server = await ServerProcess.start(ctx.spec, dataDir, ctx.cpu)
  const servers = [server]
  try {
    return await fn(server, dataDir)
  } finally {
    for (const s of servers) await s.stop()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

/**
 * withServer for S1 and S2: with --trace, coedit writes its update path breakdown at
 * shutdown (server/base/path-trace.ts), added to the metrics as `path.STAGE.p50` / `.p99` (ms).
 */
async function withTracedServer(ctx: RunContext, fn: (server: ServerProcess) => Promise<Metrics>): Promise<Metrics> {
  if (!ctx.trace || !ctx.spec.traces) return withServer(ctx, fn)
  const dataDir = mkdtempSync(join(tmpdir(), `coedit-bench-${ctx.spec.kind}-`))
  const file = join(dataDir, 'path-trace.json')
  const server = await ServerProcess.start(ctx.spec, join(dataDir, 'data'), ctx.cpu, ['--trace-path', file])
  try {
    const metrics = await fn(server)
    await server.stop()
    if (!existsSync(file)) {
      // Killed at stop()'s timeout (a shutdown storing a long backlog): the run's figures stand.
      ctx.log(`  ${ctx.spec.label}: no path trace written (the server did not stop in time)`)
      return metrics
    }
    const { updates, stages } = JSON.parse(readFileSync(file, 'utf8')) as { updates: number; stages: Record<string, { p50: number; p99: number }> }
    const path: Metrics = { 'path.updates': updates }
    for (const [stage, { p50, p99 }] of Object.entries(stages)) Object.assign(path, { [`path.${stage}.p50`]: p50, [`path.${stage}.p99`]: p99 })
    return { ...metrics, ...path }
  } finally {
    await server.stop()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

export async function connectAll(url: string, rooms: string[], ctx: RunContext, make: (room: string, i: number) => ConstructorParameters<typeof LoadClient>[3]): Promise<LoadClient[]> {
  return pool(rooms, 100, async (room, i) => {
    const client = new LoadClient(url, room, ctx.spec.dialect, make(room, i))
    await client.ready
    return client
  })
}

export function closeAll(clients: LoadClient[]): void {
  for (const c of clients) c.close()
}

/** Sends `rate` updates/s for `seconds`, spread evenly (one timer per ms at most). */
async function paced(seconds: number, rate: number, send: () => void): Promise<number> {
  const total = Math.round(seconds * rate)
  const started = performance.now()
  let sent = 0
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate) + 1)
    while (sent < due) {
      send()
      sent++
    }
    await sleep(1)
  }
  return sent
}

/** S1: one writer at `rate`, `readers` readers, one room. */
export async function fanOut(ctx: RunContext, readers: number): Promise<Metrics> {
  const { rate, seconds } = ctx.sizes.s1
  return withTracedServer(ctx, async (server) => {
    const latency = new Samples()
    const counts = new Array<number>(readers).fill(0)
    const clients = await connectAll(server.url, Array.from({ length: readers }, () => 's1'), ctx, (_room, i) => ({
      onUpdate: (update) => {
        const now = performance.now()
        scanMarks(update, (writer, _seq, sentAt) => {
          if (writer !== 0) return
          counts[i]!++
          latency.push(now - sentAt)
        })
      },
    }))
    const writerClient = new LoadClient(server.url, 's1', ctx.spec.dialect)
    await writerClient.ready
    const writer = new Writer(0)
    server.resetCpu()
    const sent = await paced(seconds, rate, () => writerClient.sendUpdate(writer.next()))
    const sum = (): number => counts.reduce((a, b) => a + b, 0)
    await settle(sum, () => sum() >= sent * readers, ctx.sizes.idleMs, ctx.sizes.drainMs)
    const cpu = server.cpuSeconds()
    const [p50, p99] = latency.quantiles([0.5, 0.99])
    closeAll([...clients, writerClient])
    return { delivered: sum() / (sent * readers), p50, p99, cpu, peakRssMB: server.peakRssKB() / 1024, updates: sent }
  })
}

/** S2's writers' Yjs client IDs: S2_CLIENT_BASE + client index. */
const S2_CLIENT_BASE = 0x100000

/** S2: many rooms, every client types at `rate` and reads the others. */
export async function manyRooms(ctx: RunContext): Promise<Metrics> {
  const { rooms, clients: perRoom, rate, seconds } = ctx.sizes.s2
  return withTracedServer(ctx, async (server) => {
    const latency = new Samples()
    const n = rooms * perRoom
    const received = new Array<number>(n).fill(0)
    const names = Array.from({ length: n }, (_, i) => `s2-${Math.floor(i / perRoom)}`)
    const clients = await connectAll(server.url, names, ctx, (_room, i) => ({
      onUpdate: (update) => {
        const now = performance.now()
        scanMarks(update, (writer, _seq, sentAt) => {
          if (writer === i) return
          received[i]!++
          latency.push(now - sentAt)
        })
      },
    }))
    const sent = new Array<number>(n).fill(0)
    // At least one: a sweep spreads a fixed total rate over many rooms (under 1 update/s each).
    const perClient = Math.max(1, Math.round(seconds * rate))
    // Updates made in advance and stamped as they go (one Yjs client each): a thousand Y.Docs
    // typing at once cost this load generator, not the server, most of the start-up p99.
    const writers = clients.map((_, i) => {
      const w = new PregeneratedWriter(i, S2_CLIENT_BASE + i)
      w.prepare(perClient)
      return w
    })
    server.resetCpu()
    const random = prng(2)
    await Promise.all(clients.map(async (client, i) => {
      // Random phase, so the clients do not all type in the same millisecond.
      await sleep(random() * (1000 / rate))
      const started = performance.now()
      while (sent[i]! < perClient) {
        client.sendUpdate(writers[i]!.next())
        sent[i]!++
        await sleep(Math.max(0, started + (sent[i]! * 1000) / rate - performance.now()))
      }
    }))
    const expected = sent.reduce((a, b) => a + b, 0) * (perRoom - 1)
    const sum = (): number => received.reduce((a, b) => a + b, 0)
    await settle(sum, () => sum() >= expected, ctx.sizes.idleMs, ctx.sizes.drainMs)
    const cpu = server.cpuSeconds()
    const [p50, p99] = latency.quantiles([0.5, 0.99])
    closeAll(clients)
    return { delivered: sum() / expected, p50, p99, cpu, peakRssMB: server.peakRssKB() / 1024, updates: expected / (perRoom - 1) }
  })
}

/** S3: idle connections after the handshake. */
export async function idleConnections(ctx: RunContext): Promise<Metrics> {
  const { connections, rooms } = ctx.sizes.s3
  return withServer(ctx, async (server) => {
    await sleep(300)
    const before = server.rssKB()
    const started = performance.now()
    const names = Array.from({ length: connections }, (_, i) => `s3-${i % rooms}`)
    const clients = await connectAll(server.url, names, ctx, () => ({ timeout: 60_000 }))
    const connectSeconds = (performance.now() - started) / 1000
    await sleep(1000)
    const after = server.rssKB()
    const peak = server.peakRssKB()
    closeAll(clients)
    return { rssPerConnKB: (after - before) / connections, connectSeconds, peakRssMB: peak / 1024 }
  })
}

let s4Cache: { edits: number; updates: Uint8Array[]; length: number } | undefined

/** The S4 document: `edits` single-character inserts at seeded random positions, as updates of `chunk` edits. */
function coldDocument(edits: number, chunk: number): { updates: Uint8Array[]; length: number } {
  if (s4Cache?.edits === edits) return s4Cache
  const doc = new Y.Doc()
  const text = doc.getText('t')
  const random = prng(4)
  const updates: Uint8Array[] = []
  const pending: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => pending.push(u))
  for (let i = 0; i < edits; i++) {
    text.insert(Math.floor(random() * (text.length + 1)), String.fromCharCode(97 + Math.floor(random() * 26)))
    if (pending.length >= chunk) updates.push(Y.mergeUpdates(pending.splice(0)))
  }
  if (pending.length > 0) updates.push(Y.mergeUpdates(pending.splice(0)))
  s4Cache = { edits, updates, length: text.length }
  return s4Cache
}

/** Waits until the data directory stops changing (a server that stores after relaying). */
async function quiescent(dir: string, stableMs: number, maxMs: number): Promise<void> {
  const started = Date.now()
  let last = -1
  let since = Date.now()
  while (Date.now() - started < maxMs) {
    const size = diskBytes(dir)
    if (size !== last) {
      last = size
      since = Date.now()
    } else if (Date.now() - since >= stableMs) {
      return
    }
    await sleep(250)
  }
}

/** S4: cold load of a large, fragmented document after a restart. */
export async function coldLoad(ctx: RunContext): Promise<Metrics> {
  if (!ctx.spec.persistent) return { coldLoadMs: null, storedMB: null, complete: null, uploadCpu: null, loadedRssMB: null, edits: null }
  const { updates, length } = coldDocument(ctx.sizes.s4.edits, ctx.sizes.s4.chunk)
  const dataDir = mkdtempSync(join(tmpdir(), `coedit-bench-${ctx.spec.kind}-`))
  let uploadCpu = 0
  try {
    let server = await ServerProcess.start(ctx.spec, dataDir, ctx.cpu)
    try {
      const uploader = new LoadClient(server.url, 's4', ctx.spec.dialect)
      await uploader.ready
      for (const u of updates) {
        uploader.sendUpdate(u)
        while (uploader.bufferedAmount > 1 << 20) await tick()
      }
      const uploaded = await fetchDoc(server.url, 's4', ctx.spec.dialect, (d) => d.getText('t').length >= length, 120_000)
      uploader.close()
      if (!uploaded.complete) throw new Error(`${ctx.spec.label}: upload incomplete`)
      // Hocuspocus debounces its store by 2 s; y-websocket-server stores after relaying.
      await quiescent(dataDir, ctx.sizes.s4.settleMs, 60_000)
      // Includes storing: a server that stores after relaying does it while we wait above.
      uploadCpu = server.cpuSeconds()
    } finally {
      await server.stop()
    }
    const storedMB = diskBytes(dataDir) / (1 << 20)
    const split = ctx.spec.kind.startsWith('coedit') ? await historyBytes(dataDir) : { historyMB: null, documentMB: null }
    server = await ServerProcess.start(ctx.spec, dataDir, ctx.cpu)
    try {
      await sleep(300)
      const loaded = await fetchDoc(server.url, 's4', ctx.spec.dialect, (d) => d.getText('t').length >= length, 60_000)
      return {
        coldLoadMs: loaded.complete ? loaded.ms : null, storedMB, ...split, complete: loaded.complete ? 1 : 0,
        // What holding the loaded document costs (the sweep's memory curve).
        uploadCpu, loadedRssMB: server.peakRssKB() / 1024, edits: ctx.sizes.s4.edits,
      }
    } finally {
      await server.stop()
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true })
  }
}

/**
 * What of a coedit data directory is the history log (issue 18: its base and the updates it
 * keeps, bytes before LevelDB's compression) and what the document itself takes (its state
 * as one update), in MB. Read from a copy, so the cold load that follows meets the directory
 * as the server left it.
 */
async function historyBytes(dataDir: string): Promise<{ historyMB: number; documentMB: number }> {
  const { LevelStore } = await import('../../server/persistence/leveldb.js')
  const copy = mkdtempSync(join(tmpdir(), 'coedit-bench-history-'))
  try {
    cpSync(dataDir, copy, { recursive: true })
    rmSync(join(copy, 'LOCK'), { force: true })
    const store = await LevelStore.open(copy, { sync: false })
    try {
      const log = await store.readLog('s4')
      const history = (log.base?.state.length ?? 0) + log.entries.reduce((n, e) => n + e.update.length, 0)
      const { updates } = await store.load('s4')
      const doc = new Y.Doc()
      Y.transact(doc, () => { for (const u of updates) Y.applyUpdate(doc, u) })
      return { historyMB: history / (1 << 20), documentMB: Y.encodeStateAsUpdate(doc).length / (1 << 20) }
    } finally {
      await store.close()
    }
  } finally {
    rmSync(copy, { recursive: true, force: true })
  }
}

/** Shared by every S5 run: making the updates is not part of what is measured. */
const s5Writer = new PregeneratedWriter(0)

/**
 * S5: one writer as fast as the socket allows, `readers` readers; updates/s that reached
 * every reader within the window. Then S6 in the same room: the writer goes on at full
 * speed, the server is killed with SIGKILL mid-stream and restarted, and every update any
 * reader saw must still be there.
 */
export async function ceiling(ctx: RunContext): Promise<Metrics> {
  const { readers, seconds, killAfter } = ctx.sizes.s5
  const dataDir = mkdtempSync(join(tmpdir(), `coedit-bench-${ctx.spec.kind}-`))
  let server = await ServerProcess.start(ctx.spec, dataDir, ctx.cpu)
  const clients: LoadClient[] = []
  try {
    const counts = new Array<number>(readers).fill(0)
    const maxSeq = new Array<number>(readers).fill(0)
    let windowEnd = Infinity
    const inWindow = new Array<number>(readers).fill(0)
    clients.push(...await connectAll(server.url, Array.from({ length: readers }, () => 's5'), ctx, (_room, i) => ({
      onUpdate: (update) => {
        const inside = performance.now() <= windowEnd
        scanMarks(update, (writer, seq) => {
          if (writer !== 0) return
          counts[i]!++
          if (inside) inWindow[i]!++
          if (seq > maxSeq[i]!) maxSeq[i] = seq
        })
      },
    })))
    const writerClient = new LoadClient(server.url, 's5', ctx.spec.dialect)
    await writerClient.ready
    clients.push(writerClient)
    const writer = s5Writer
    writer.rewind()
    writer.prepare(ctx.sizes.s5.prepare)
    const blast = async (ms: number, stop?: () => boolean): Promise<void> => {
      const end = performance.now() + ms
      while (performance.now() < end && !stop?.() && writer.seq < ctx.sizes.s5.limit) {
        for (let n = 0; n < 64 && writerClient.bufferedAmount < 256 * 1024; n++) writerClient.sendUpdate(writer.next())
        await tick()
      }
    }
    server.resetCpu()
    const started = performance.now()
    windowEnd = started + seconds * 1000
    await blast(seconds * 1000)
    const sent = writer.seq
    const min = (): number => Math.min(...counts)
    await settle(min, () => min() >= sent, Math.max(5000, ctx.sizes.idleMs), ctx.sizes.drainMs)
    const metrics: Metrics = {
      throughput: Math.min(...inWindow) / seconds,
      sentPerSec: sent / seconds,
      delivered: min() / sent,
      cpu: server.cpuSeconds(),
      // Work per update rather than a rate: on a loaded machine the rate measures the
      // scheduler, the server's CPU seconds per update it got to every reader much less so.
      cpuMsPerKUpdates: min() > 0 ? server.cpuSeconds() * 1e6 / min() : null,
      peakRssMB: server.peakRssKB() / 1024,
      seen: null, present: null, lost: null,
    }
    if (!ctx.spec.persistent || ctx.noKill) return metrics

    // S6: kill -9 while the writer is going at full speed.
    let killed = false
    const limit = ctx.sizes.s5.limit
    if (Number.isFinite(limit)) writer.prepare(limit)
    ctx.sizes = { ...ctx.sizes, s5: { ...ctx.sizes.s5, limit: writer.seq + limit } }
    const blasting = blast(killAfter * 1000 + 5000, () => killed)
    await sleep(killAfter * 1000)
    await server.kill9()
    killed = true
    await blasting
    const seen = Math.max(...maxSeq)
    closeAll(clients)
    clients.length = 0
    server = await ServerProcess.start(ctx.spec, dataDir, ctx.cpu)
    const has = (doc: Y.Doc): boolean => doc.getText('t').toString().includes(`TS:0:${seen}:`)
    // y-websocket-server answers with an empty document first and sends the content later.
    const restored = await fetchDoc(server.url, 's5', ctx.spec.dialect, has, 30_000, ctx.sizes.s5.idleMs)
    const present = new Set(marksInText(restored.doc.getText('t').toString()).filter((m) => m.writer === 0).map((m) => m.seq))
    let lost = 0
    for (let seq = 1; seq <= seen; seq++) if (!present.has(seq)) lost++
    return { ...metrics, seen, present: seen - lost, lost }
  } finally {
    closeAll(clients)
    await server.stop()
    rmSync(dataDir, { recursive: true, force: true })
  }
}
