/**
 * Operations, composed: metrics, webhooks and the status page's data. They hear the core
 * only through the server's events (subscribed in server.ts); their HTTP routes (probes,
 * /metrics, /status.json) are server/http/ops-routes.ts.
 */
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { Metrics, type TrafficTotals } from './metrics.js'
import type { Store } from '../persistence/store.js'
import type { RoomRegistry } from '../room/registry.js'
import { Webhooks, type WebhookEvents } from './webhooks.js'
import type { Containment } from '../base/containment.js'
import type { EventSink } from '../base/events.js'
import type { WireProtocol } from '../transport/transport.js'

/** The status chart: one point every SAMPLE_MS, for the last WINDOW_MS. */
const SAMPLE_MS = 2000
const WINDOW_MS = 10 * 60_000
/** Storage size is read at most this often (a directory walk or a scan of every room). */
const STORAGE_CACHE_MS = 5000
/** Rooms listed on the status page (busiest first), and people named per room: a room with huge presence cannot make the page huge. */
export const STATUS_ROOMS = 200
export const STATUS_USERS = 50
/** Longest name shown for a person. */
const STATUS_NAME_LENGTH = 64
/** How long shutdown waits for webhooks still being delivered. */
const WEBHOOK_DRAIN_MS = 2000

/** The options ops reads (the composition passes the whole ServerConfig, server/config.ts). */
export interface OpsConfig {
  webhook: string
  webhookSecret: string
  webhookDebounce: number
  webhookIncludeText: boolean
  webhookRetries: number
  webhookBackoff: number
  webhookTimeout: number
  webhookMaxQueue: number
  adminToken: string
}

export interface OpsOptions {
  config: OpsConfig
  /** The LevelDB directory, whose size is the storage size; undefined for other stores. */
  dataDir: string | undefined
  log: Logger
  /** Where the webhook notice builder reports an exception. */
  containment?: Containment
  /** Where webhook delivery results go. */
  events: EventSink<WebhookEvents>
}

interface Sample {
  t: number
  totals: TrafficTotals
}

export class Ops {
  readonly metrics: Metrics
  readonly webhooks: Webhooks | undefined
  private readonly options: OpsOptions
  private readonly startedAt = Date.now()
  private shuttingDown = false
  private attachedStore: Store | undefined
  private registry: RoomRegistry | undefined
  private connections: () => Record<WireProtocol, number> = () => ({ 'y-websocket': 0, hocuspocus: 0 })
  private samples: Sample[] = []
  private sampler: NodeJS.Timeout | undefined
  private storage: { at: number; bytes: Promise<number | undefined> } | undefined

  constructor(options: OpsOptions) {
    this.options = options
    const { config, log } = options
    this.metrics = new Metrics({
      connections: () => this.connections(),
      roomsLoaded: () => this.registry?.loadedCount ?? 0,
      storageBytes: () => this.storageBytes(),
      webhookQueue: () => this.webhooks?.queued ?? 0,
    })
    const urls = config.webhook.split(',').filter((u) => u !== '')
    this.webhooks = urls.length === 0 ? undefined : new Webhooks({
      urls,
      secret: config.webhookSecret,
      debounce: config.webhookDebounce,
      includeText: config.webhookIncludeText,
      retries: config.webhookRetries,
      backoff: config.webhookBackoff,
      timeout: config.webhookTimeout,
      maxQueue: config.webhookMaxQueue,
    }, log.child({ component: 'webhooks' }), options.events, options.containment)
  }

  /** What exists only once the server is composed; starts sampling traffic for the status chart. */
  attach(store: Store, registry: RoomRegistry, connections: () => Record<WireProtocol, number>): void {
    this.attachedStore = store
    this.registry = registry
    this.connections = connections
    const sample = (): void => {
      this.samples.push({ t: Date.now(), totals: this.metrics.totals() })
      if (this.samples.length > WINDOW_MS / SAMPLE_MS + 1) this.samples.shift()
    }
    sample()
    this.sampler = setInterval(sample, SAMPLE_MS)
    this.sampler.unref()
  }

  /** The store, once the server is composed (the readiness probe asks it). */
  get store(): Store | undefined {
    return this.attachedStore
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown
  }

  /** First step of shutdown: /readyz answers 503 from now on, pending webhooks go out. */
  beginShutdown(): void {
    this.shuttingDown = true
    this.webhooks?.flushPending()
  }

  /** After the rooms are closed: lets webhooks finish (briefly) and stops the sampler. */
  async close(): Promise<void> {
    clearInterval(this.sampler)
    await this.webhooks?.close(WEBHOOK_DRAIN_MS)
  }

  /**
   * What /status.json serves: never document content. Aggregate figures for anyone; with
   * `rooms` (to the admin token) also the busiest rooms' names and the names of their people,
   * both capped (STATUS_ROOMS, STATUS_USERS) with the totals beside them.
   */
  async status(rooms: boolean): Promise<Record<string, unknown>> {
    const now = Date.now()
    const points = [...this.samples, { t: now, totals: this.metrics.totals() }]
    const rates = points.slice(1).map((p, i) => {
      const prev = points[i]!
      const seconds = Math.max(0.001, (p.t - prev.t) / 1000)
      const rate = (k: keyof TrafficTotals): number => Math.round(((p.totals[k] - prev.totals[k]) / seconds) * 100) / 100
      return {
        t: p.t, messagesIn: rate('messagesIn'), messagesOut: rate('messagesOut'),
        bytesIn: rate('bytesIn'), bytesOut: rate('bytesOut'), updates: rate('updatesApplied'),
      }
    })
    const memory = process.memoryUsage()
    return {
      time: now,
      uptime: Math.round((now - this.startedAt) / 1000),
      ready: !this.shuttingDown,
      // Tells the page whether asking for a token can show more.
      adminToken: this.options.config.adminToken !== '',
      connections: Object.values(this.connections()).reduce((a, b) => a + b, 0),
      roomsLoaded: this.registry?.loadedCount ?? 0,
      ...(rooms ? { rooms: this.busiestRooms() } : {}),
      storage: { kind: this.options.dataDir !== undefined ? 'leveldb' : 'other', bytes: (await this.storageBytes()) ?? null },
      memory: { rss: memory.rss, heapUsed: memory.heapUsed },
      webhooks: this.webhooks ? { queued: this.webhooks.queued } : null,
      rates: { sampleSeconds: SAMPLE_MS / 1000, points: rates },
    }
  }

  private busiestRooms(): Array<{ name: string; connections: number; users: string[]; userCount: number }> {
    const rooms = [...(this.registry?.rooms ?? [])]
      .sort((a, b) => b.size - a.size || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .slice(0, STATUS_ROOMS)
    return rooms.map((room) => {
      const users: string[] = []
      let userCount = 0
      for (const state of room.awareness.getStates().values()) {
        const name = (state as { user?: { name?: unknown } }).user?.name
        if (typeof name !== 'string') continue
        userCount++
        if (users.length < STATUS_USERS) users.push(name.slice(0, STATUS_NAME_LENGTH))
      }
      return { name: room.name, connections: room.size, users, userCount }
    })
  }

  private storageBytes(): Promise<number | undefined> {
    const now = Date.now()
    if (!this.storage || now - this.storage.at > STORAGE_CACHE_MS) {
      const dir = this.options.dataDir
      const bytes = dir !== undefined
        ? directoryBytes(dir)
        : this.attachedStore ? this.attachedStore.listRooms().then((rooms) => rooms.reduce((n, r) => n + r.bytes, 0)) : Promise.resolve(undefined)
      this.storage = { at: now, bytes: bytes.catch(() => undefined) }
    }
    return this.storage.bytes
  }
}

async function directoryBytes(dir: string): Promise<number> {
  let total = 0
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) total += await directoryBytes(path)
    // A file can vanish between the listing and the stat (LevelDB compaction).
    else total += await stat(path).then((s) => s.size, () => 0)
  }
  return total
}

