/**
 * Operations, composed: metrics, webhooks, probes and the status page. They hear the
 * core only through the server's events (subscribed in server.ts) and serve HTTP routes.
 */
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { clientAddress } from '../transport/auth.js'
import { BearerGuard, bearerOf, refuse, type BearerEvents } from '../http/bearer.js'
import type { Logger } from 'pino'
import type { ServerConfig } from '../config.js'
import { sendJson, sendText, type Route } from '../http/http.js'
import { Metrics, type TrafficTotals } from './metrics.js'
import type { Store } from '../persistence/store.js'
import { probeRoutes } from './probes.js'
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

export interface OpsOptions {
  config: ServerConfig
  /** The LevelDB directory, whose size is the storage size; undefined for other stores. */
  dataDir: string | undefined
  log: Logger
  /** Where the webhook notice builder reports an exception. */
  containment?: Containment
  /** Where webhook delivery results go. */
  events: EventSink<WebhookEvents & BearerEvents>
}

interface Sample {
  t: number
  totals: TrafficTotals
}

export class Ops {
  readonly metrics: Metrics
  readonly webhooks: Webhooks | undefined
  /** Checks the bearer tokens of /metrics, /status.json and the admin API, and limits guessing. */
  readonly tokens: BearerGuard
  private readonly options: OpsOptions
  private readonly startedAt = Date.now()
  private shuttingDown = false
  private store: Store | undefined
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
    this.tokens = new BearerGuard({
      addressOf: (req) => clientAddress(req, config.trustProxy),
      events: options.events,
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
    this.store = store
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

  routes(): Route[] {
    const { config } = this.options
    return [
      probeRoutes(() => this.store, { shuttingDown: () => this.shuttingDown }),
      async (req, res, url) => {
        if (url.pathname !== '/metrics') return false
        const auth = this.tokens.check(req, config.metricsToken)
        if (!auth.ok) {
          refuse(res, auth, 'coedit metrics')
          sendText(res, auth.status, auth.status === 429 ? 'too many wrong tokens\n' : 'unauthorized\n')
          return true
        }
        const { contentType, body } = await this.metrics.exposition()
        sendText(res, 200, body, contentType)
        return true
      },
      async (req, res, url) => {
        switch (url.pathname) {
          case '/status.json': {
            // Room names are share links and people's names are personal: only the admin token
            // shows them. Loopback is not trusted for this (a reverse proxy on this host is loopback).
            // Without a token (or without --admin-token) the figures are aggregate only.
            if (!config.adminToken || bearerOf(req) === undefined) {
              sendJson(res, 200, await this.status(false))
              return true
            }
            const auth = this.tokens.check(req, config.adminToken)
            if (!auth.ok) {
              refuse(res, auth, 'coedit admin')
              sendJson(res, auth.status, auth.status === 429
                ? { error: 'too many wrong tokens', code: 'TOO_MANY_ATTEMPTS' }
                : { error: 'unauthorized', code: 'ADMIN_TOKEN_REQUIRED' })
              return true
            }
            sendJson(res, 200, await this.status(true))
            return true
          }
          default:
            return false
        }
      },
    ]
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
        : this.store ? this.store.listRooms().then((rooms) => rooms.reduce((n, r) => n + r.bytes, 0)) : Promise.resolve(undefined)
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

