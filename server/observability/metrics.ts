/**
 * Prometheus metrics (prom-client), one registry per server instance: several servers in
 * one process (tests, embedders) never share or clash over a metric.
 *
 * The hot path (every message in and out) only bumps plain numbers; they are handed to
 * prom-client when scraped, so a broadcast to a thousand peers costs a thousand additions,
 * not a thousand label lookups.
 *
 * Connections and messages are counted per wire protocol (`protocol` label: `y-websocket`
 * or `hocuspocus`, the two dialects of one port); a Hocuspocus frame is classified by the
 * message after its document address.
 *
 * Process metrics (event-loop lag, heap, RSS, GC) describe the process, not a server, and
 * their collectors cannot be stopped: they live in one registry per process, started with
 * the first server, and every server's scrape includes them.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import {
  MESSAGE_AUTH, MESSAGE_AWARENESS, MESSAGE_COEDIT, MESSAGE_QUERY_AWARENESS, MESSAGE_SYNC,
  SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE,
} from '../room/protocol.js'
import { HP_PING, HP_PONG, HP_STATELESS, HP_SYNC_STATUS } from '../transport/protocol-hocuspocus.js'
import type { UpdateOrigin } from '../room/room.js'
import { WIRE_PROTOCOLS, type WireProtocol } from '../transport/transport.js'

export const METRIC_PREFIX = 'coedit_'

let processRegistry: Registry | undefined

function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry()
    collectDefaultMetrics({ register: processRegistry, prefix: METRIC_PREFIX })
  }
  return processRegistry
}

/** `stateless` and `sync_status` are Hocuspocus messages; `coedit` is y-websocket's opt-in extension. */
export const MESSAGE_KINDS = [
  'sync_step1', 'sync_step2', 'sync_update', 'awareness', 'auth', 'query_awareness', 'coedit', 'other',
  'stateless', 'sync_status',
] as const
const OTHER = 7

/** The label of a y-websocket frame, from its first bytes (every type and subtype below 128 is one byte). */
export function messageKindIndex(m: Uint8Array): number {
  return kindAt(m, 0, 'y-websocket')
}

/**
 * The label of a Hocuspocus frame: the message after the document address (a varString).
 * Its sync, awareness, auth and query types have y-websocket's numbers. Any bytes at all
 * are classified (as `other` if they make no sense): the frame has not been decoded yet.
 */
export function hocuspocusKindIndex(m: Uint8Array): number {
  if (m.length === 1 && (m[0] === HP_PING || m[0] === HP_PONG)) return OTHER
  let length = 0
  let i = 0
  for (let shift = 0; ; shift += 7) {
    const b = m[i++]
    if (b === undefined || shift > 28) return OTHER
    length += (b & 0x7f) * 2 ** shift
    if (b < 0x80) break
  }
  return kindAt(m, i + length, 'hocuspocus')
}

function kindAt(m: Uint8Array, at: number, protocol: WireProtocol): number {
  const type = m[at]
  if (type === MESSAGE_SYNC) {
    const sub = m[at + 1]
    return sub === SYNC_STEP1 ? 0 : sub === SYNC_STEP2 ? 1 : sub === SYNC_UPDATE ? 2 : OTHER
  }
  if (type === MESSAGE_AWARENESS) return 3
  if (type === MESSAGE_AUTH) return 4
  if (type === MESSAGE_QUERY_AWARENESS) return 5
  if (protocol === 'y-websocket') return type === MESSAGE_COEDIT ? 6 : OTHER
  return type === HP_STATELESS ? 8 : type === HP_SYNC_STATUS ? 9 : OTHER
}

function countIndex(m: Uint8Array, protocol: WireProtocol): number {
  return protocol === 'hocuspocus' ? KINDS + hocuspocusKindIndex(m) : messageKindIndex(m)
}

/** delivered; failed (one attempt, retried later); dropped (gave up after the last retry, or superseded in a full queue). */
export type WebhookResult = 'delivered' | 'failed' | 'dropped'

/** What the metrics read rather than count: asked at scrape time. */
export interface MetricsSources {
  connections(): Readonly<Record<WireProtocol, number>>
  roomsLoaded(): number
  /** Bytes the store occupies; undefined if unknown. */
  storageBytes(): Promise<number | undefined>
  webhookQueue(): number
}

/** Plain totals for the status page's rate chart. */
export interface TrafficTotals {
  messagesIn: number
  messagesOut: number
  bytesIn: number
  bytesOut: number
  updatesApplied: number
}

const KINDS = MESSAGE_KINDS.length
/** One count per (protocol, kind), at protocol index × KINDS + kind index. */
const kindCounts = (): number[] => new Array<number>(WIRE_PROTOCOLS.length * KINDS).fill(0)

/**
 * The counters and histograms. Fed by the server's events (server.ts subscribes each
 * method to its event) and by the containment (`error`).
 */
export class Metrics {
  readonly registry = new Registry()
  private readonly messagesIn = kindCounts()
  private readonly bytesIn = kindCounts()
  private readonly messagesOut = kindCounts()
  private readonly bytesOut = kindCounts()
  private readonly applied_ = new Map<string, number>()
  /** This server's metrics and the process's, as one scrape. */
  private readonly scraped: Registry

  private readonly opened_: Counter<'protocol'>
  private readonly closes: Counter<'protocol' | 'code'>
  private readonly errors: Counter<'kind'>
  private readonly writeSeconds: Histogram
  private readonly batchSize: Histogram
  private readonly batchSeconds: Histogram
  private readonly compactions: Counter
  private readonly loads: Counter
  private readonly unloads: Counter
  private readonly loadSeconds: Histogram
  private readonly webhooks: Counter<'result'>

  constructor(sources: MetricsSources) {
    const registers = [this.registry]
    const p = METRIC_PREFIX
    new Gauge({
      name: `${p}connections`, help: 'Open WebSocket connections, by protocol', labelNames: ['protocol'], registers,
      collect() {
        const counts = sources.connections()
        for (const protocol of WIRE_PROTOCOLS) this.set({ protocol }, counts[protocol])
      },
    })
    new Gauge({ name: `${p}rooms_loaded`, help: 'Rooms held in memory', registers, collect() { this.set(sources.roomsLoaded()) } })
    new Gauge({
      name: `${p}storage_bytes`, help: 'Bytes the store occupies (LevelDB: its directory)', registers,
      async collect() {
        const bytes = await sources.storageBytes()
        if (bytes !== undefined) this.set(bytes)
      },
    })
    this.opened_ = new Counter({ name: `${p}connections_opened_total`, help: 'WebSocket connections accepted, by protocol', labelNames: ['protocol'], registers })
    // Zeros from the first scrape, so rate() works at once.
    for (const protocol of WIRE_PROTOCOLS) this.opened_.inc({ protocol }, 0)
    this.closes = new Counter({ name: `${p}connections_closed_total`, help: 'WebSocket connections closed, by protocol and close code', labelNames: ['protocol', 'code'], registers })
    this.errors = new Counter({ name: `${p}errors_total`, help: 'Errors, by kind', labelNames: ['kind'], registers })
    this.trafficCounter(`${p}messages_received_total`, 'Messages received, by protocol and type', this.messagesIn)
    this.trafficCounter(`${p}received_bytes_total`, 'Bytes received, by protocol and message type', this.bytesIn)
    this.trafficCounter(`${p}messages_sent_total`, 'Messages sent, by protocol and type', this.messagesOut)
    this.trafficCounter(`${p}sent_bytes_total`, 'Bytes sent, by protocol and message type', this.bytesOut)
    const applied = this.applied_
    const reportedApplied = new Map<string, number>()
    new Counter({
      name: `${p}updates_applied_total`, help: 'Document updates stored and applied, by origin', labelNames: ['origin'], registers,
      collect() {
        for (const [origin, n] of applied) {
          this.inc({ origin }, n - (reportedApplied.get(origin) ?? 0))
          reportedApplied.set(origin, n)
        }
      },
    })
    this.writeSeconds = new Histogram({
      name: `${p}persistence_write_seconds`, help: 'Time from handing an update to the store until it is durable', registers,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    })
    this.batchSize = new Histogram({
      name: `${p}persistence_batch_size`, help: 'Updates per write batch (LevelDB group commit)', registers,
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
    })
    this.batchSeconds = new Histogram({
      name: `${p}persistence_batch_seconds`, help: 'Duration of one write batch (LevelDB group commit, fsync included)', registers,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    })
    this.compactions = new Counter({ name: `${p}compactions_total`, help: 'Update logs folded into one stored state', registers })
    this.loads = new Counter({ name: `${p}room_loads_total`, help: 'Rooms loaded from storage', registers })
    this.unloads = new Counter({ name: `${p}room_unloads_total`, help: 'Rooms unloaded after their grace period', registers })
    this.loadSeconds = new Histogram({
      name: `${p}room_load_seconds`, help: 'Time to load a room from storage', registers,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    })
    this.webhooks = new Counter({ name: `${p}webhook_deliveries_total`, help: 'Webhook delivery attempts, by result', labelNames: ['result'], registers })
    new Gauge({ name: `${p}webhook_queue`, help: 'Webhook deliveries waiting or in flight', registers, collect() { this.set(sources.webhookQueue()) } })
    this.scraped = Registry.merge([this.registry, processMetrics()])
  }

  private trafficCounter(name: string, help: string, counts: number[]): void {
    const reported = kindCounts()
    new Counter({
      name, help, labelNames: ['protocol', 'type'], registers: [this.registry],
      collect() {
        counts.forEach((n, i) => {
          // Report every type, zeros included, so rate() works from the first scrape.
          this.inc({ protocol: WIRE_PROTOCOLS[Math.floor(i / KINDS)]!, type: MESSAGE_KINDS[i % KINDS]! }, n - reported[i]!)
          reported[i] = n
        })
      },
    })
  }

  /** The Prometheus text exposition: this server's metrics and the process's. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.scraped.contentType, body: await this.scraped.metrics() }
  }

  totals(): TrafficTotals {
    const sum = (a: number[]): number => a.reduce((x, y) => x + y, 0)
    return {
      messagesIn: sum(this.messagesIn),
      messagesOut: sum(this.messagesOut),
      bytesIn: sum(this.bytesIn),
      bytesOut: sum(this.bytesOut),
      updatesApplied: [...this.applied_.values()].reduce((x, y) => x + y, 0),
    }
  }

  // ---- sockets and traffic (the transport's events)
  opened(protocol: WireProtocol): void { this.opened_.inc({ protocol }) }
  closed(code: number, protocol: WireProtocol): void { this.closes.inc({ protocol, code: String(code) }) }
  received(m: Uint8Array, protocol: WireProtocol): void {
    const i = countIndex(m, protocol)
    this.messagesIn[i]!++
    this.bytesIn[i]! += m.length
  }
  sent(m: Uint8Array, protocol: WireProtocol): void {
    const i = countIndex(m, protocol)
    this.messagesOut[i]!++
    this.bytesOut[i]! += m.length
  }
  error(kind: string): void { this.errors.inc({ kind }) }

  // ---- rooms and the registry (their events)
  stored(ms: number, ok: boolean): void {
    if (ok) this.writeSeconds.observe(ms / 1000)
    else this.error('store_write')
  }
  applied(origin: UpdateOrigin): void {
    this.applied_.set(origin.source, (this.applied_.get(origin.source) ?? 0) + 1)
  }
  compacted(ok: boolean): void {
    if (ok) this.compactions.inc()
    else this.error('compaction')
  }
  roomLoaded(ms: number): void {
    this.loads.inc()
    this.loadSeconds.observe(ms / 1000)
  }
  roomLoadFailed(): void { this.error('room_load') }
  roomUnloaded(): void { this.unloads.inc() }

  // ---- store batches (the store's events)
  batchWritten(updates: number, ms: number): void {
    this.batchSize.observe(updates)
    this.batchSeconds.observe(ms / 1000)
  }

  // ---- webhooks
  webhook(result: WebhookResult): void {
    this.webhooks.inc({ result })
    if (result === 'dropped') this.error('webhook')
  }
}
