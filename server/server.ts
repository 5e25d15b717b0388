/**
 * Composition: store → rooms → transport → HTTP, and one event bus (server/base/events.ts)
 * that every consumer subscribes to here, in `subscribe`. `startServer` is both what
 * `coedit serve` runs and the public API (embedding, on its own port or on the app's
 * HTTP server: attach.ts; headless tests).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { DEFAULT_CONFIG, validateConfig, type ServerConfig } from './config.js'
import { CoeditError } from './errors.js'
import { Redactor, redactUrl } from './base/redact.js'
import { createRequestHandler, editorRoutes, type RequestHandler, type Route } from './http/http.js'
import { createLogger, type Logger } from './log.js'
import { LevelStore } from './persistence/leveldb.js'
import { MemoryStore } from './persistence/memory.js'
import { isReplicaStore, type ReplicaStore, type Store } from './persistence/store.js'
// Cluster mode only: loaded on demand (pg and ioredis add ~20 MB to every process otherwise).
import type { Cluster } from './cluster/cluster.js'
import { RoomRegistry } from './room/registry.js'
import { userOf } from './room/room.js'
import { Transport, rejectUpgrade } from './transport/transport.js'
import { adminRoutes } from './http/admin.js'
import { bearerAuthorizer, historyRoutes } from './http/history-api.js'
import { HistoryKeeper, parseRetention } from './operator/history.js'
import { securityOptions } from './transport/security.js'
import { Ops } from './observability/ops.js'
import { createContainment, type FaultSpec } from './base/containment.js'
import { ConnectionGuard, SERVER_FULL_MESSAGE } from './transport/connections.js'
import { hostCheck } from './http/host-check.js'
import { HocuspocusHub } from './transport/hocuspocus.js'
import { clientAddress, originAllowed } from './transport/auth.js'
import { checkRoomName } from './room/room-name.js'
import { Rooms, type RoomsEvents } from './embedding/rooms-api.js'
import { BearerGuard, type BearerEvents } from './http/bearer.js'
import { opsRoutes } from './http/ops-routes.js'
import { attachment, underPath } from './transport/attach.js'
import { Events } from './base/events.js'
import { PathTrace } from './base/path-trace.js'
import type { StoreEvents } from './persistence/store.js'
import type { RoomEvents } from './room/room.js'
import type { RegistryBeforeEvents, RegistryEvents } from './room/registry.js'
import type { TransportEvents } from './transport/transport.js'
import type { WebhookEvents } from './observability/webhooks.js'
import type { Metrics } from './observability/metrics.js'
import type { Webhooks } from './observability/webhooks.js'
import { Authorizer, authRequestOf } from './transport/authorizer.js'
import { subscribeHooks, type Hooks } from './embedding/hooks.js'

export type { Hooks } from './embedding/hooks.js'

/** Every event of the server (each declared beside the code that emits it). */
export type ServerEvents = StoreEvents & RoomEvents & RegistryEvents & TransportEvents & WebhookEvents & RoomsEvents & BearerEvents
export type ServerBus = Events<ServerEvents, RegistryBeforeEvents>
import { Documents, type ServerDocuments } from './embedding/documents.js'
import { documentApiRoutes, type ApiAuthorize } from './http/document-api.js'

export interface StartOptions extends Partial<ServerConfig> {
  /**
   * Where documents live: 'leveldb' (in `dataDir`), 'memory' (gone with the process),
   * or a `Store` of your own. Default: 'leveldb' if `dataDir` is given, else 'memory'.
   */
  storage?: 'leveldb' | 'memory' | Store
  /** A pino logger; default: one at `logLevel` (which defaults to 'silent' here) on stdout. */
  logger?: Logger
  /**
   * Test seam: make these contained paths throw (see server/base/containment.ts), to prove that
   * an exception there ends at most one connection or room: `relay` (every room) or
   * `relay:ROOM` (that room only). Never set it in production.
   */
  faults?: readonly FaultSpec[]
  /** Test seam: the clock the store stamps updates with and history runs on. Default Date.now. */
  clock?: () => number
  /** Your code, called as the server works (server/embedding/hooks.ts). Each hook is optional and may be async. */
  hooks?: Hooks
  /**
   * Your app's HTTP(S) server to attach to instead of listening: coedit answers the
   * WebSocket upgrades under `path` and leaves every other request and upgrade to your app
   * (mount `handleRequest` for the probes, metrics, status page and admin API). `close()`
   * then leaves your server running. Refused beside it: port, host, tlsCert, tlsKey,
   * headersTimeout, requestTimeout, maxConnections (your server's to set).
   */
  server?: Server | HttpsServer
  /** With `server`: the path coedit's WebSockets live under (`/collab`: rooms at `/collab/ROOM`, Hocuspocus at `/collab`). Default '/'. */
  path?: string
}

export interface CoeditServer {
  /**
   * WebSocket base URL: `new WebsocketProvider(server.url, room, doc)`. Attached, it ends
   * with the path and is read from your server's address (which must be listening by then).
   */
  readonly url: string
  /** HTTP base URL of the editor and probes (attached: of your server). */
  readonly httpUrl: string
  readonly port: number
  readonly host: string
  readonly store: Store
  readonly registry: RoomRegistry
  readonly config: ServerConfig
  /** List, delete and disconnect rooms (rooms-api.ts). */
  readonly rooms: Rooms
  /**
   * coedit's HTTP routes as a handler to mount in your app: `/healthz`, `/readyz`, `/metrics`,
   * `/status`, `/status.json`, the document and history APIs under `/api/` and, with
   * `adminToken`, `/admin/...` (listening on its own, the editor too). A request none of
   * them answers goes to `next` (or gets a 404 without it).
   */
  readonly handleRequest: RequestHandler
  /** Read and change rooms from this process, through the path of a client's update (README "Embedding and hooks"). */
  readonly documents: ServerDocuments
  /** Stops accepting, stores everything, closes connections with 1001, closes storage (never your server). */
  close(): Promise<void>
}

/** Where documents live: a store coedit opens (and closes), or the caller's own. */
async function openStore(mode: 'memory' | 'leveldb' | 'postgres' | Store, config: ServerConfig, events: ServerBus, clock: (() => number) | undefined): Promise<Store> {
  if (mode === 'memory') return new MemoryStore({ now: clock })
  if (mode === 'leveldb') return LevelStore.open(config.dataDir, { sync: config.fsync, events, now: clock })
  if (mode === 'postgres') return (await import('./persistence/postgres.js')).PostgresStore.open({ connectionString: config.postgres, schema: config.postgresSchema, events, now: clock })
  return mode
}

/** Cluster mode: the Redis bus and replication over `store`; closes the store if Redis cannot be reached. */
async function joinCluster(store: ReplicaStore, config: ServerConfig, log: Logger): Promise<Cluster> {
  try {
    return await (await import('./cluster/cluster.js')).Cluster.start(store, {
      redisUrl: config.redis, redisPrefix: config.redisPrefix, healInterval: config.healInterval, livenessTtl: config.livenessTtl,
    }, log)
  } catch (err) {
    await store.close()
    // No `cause`: the driver's error can quote the URL, password and all.
    throw new CoeditError('REDIS_FAILED', `cannot connect to Redis at ${redactUrl(config.redis)}: ${new Redactor([config.redis]).text((err as Error).message)}`)
  }
}

/** Listens on `config.port`/`host`; a port in use or any other failure as a coded error. */
async function listen(http: Server | HttpsServer, config: ServerConfig): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject)
      http.listen(config.port, config.host, () => {
        http.off('error', reject)
        resolve()
      })
    })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE') throw new CoeditError('PORT_IN_USE', `port ${config.port} on ${config.host} is already in use`, { cause: err })
    throw new CoeditError('LISTEN_FAILED', `cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`, { cause: err })
  }
}

export async function startServer(options: StartOptions = {}): Promise<CoeditServer> {
  const { storage, logger, faults, clock, hooks, server: _server, path: _path, ...overrides } = options
  // Before anything opens: a bad combination is refused with nothing to undo.
  const attached = attachment(options as Record<string, unknown>)
  const config: ServerConfig = { ...DEFAULT_CONFIG, port: 0, logLevel: 'silent', ...stripUndefined(overrides) }
  validateConfig(config)
  const log = logger ?? createLogger(config.logLevel)
  const retention = parseRetention(config.historyRetention)
  const security = securityOptions(config)
  const clustered = config.postgres !== '' && config.redis !== ''
  const mode = clustered ? 'postgres' : storage ?? (options.dataDir !== undefined ? 'leveldb' : 'memory')
  // Counts through `ops`, created next: nothing is reported before the server is composed.
  const containment = createContainment({ log, count: (path) => ops.metrics.error(path), inject: faults })
  const events: ServerBus = new Events(containment)
  const ops = new Ops({ config, log, containment, events, dataDir: mode === 'leveldb' ? config.dataDir : undefined })
  // Checks the bearer tokens of /metrics, /status.json and the admin API, and limits guessing.
  const tokens = new BearerGuard({ addressOf: (req) => clientAddress(req, config.trustProxy), events })
  const store = await openStore(mode, config, events, clock)
  const ownsStore = typeof mode === 'string'
  if (store instanceof LevelStore && store.repairedLogs.length > 0) {
    // An older coedit wrote these rooms (a downgrade, then this upgrade): their exact window restarts now.
    log.warn({ event: 'history_log_restarted', rooms: store.repairedLogs.map((r) => r.room), at: store.repairedLogs[0]!.at },
      `an older coedit wrote to ${store.repairedLogs.length} room(s) without recording when: their history is exact from now on; earlier instants come from versions`)
  }
  const cluster = clustered && isReplicaStore(store) ? await joinCluster(store, config, log) : undefined

  const history = new HistoryKeeper(store, { interval: config.historyInterval, retention, log, containment, exactWindow: config.historyExact, now: clock })
  const pathTrace = config.tracePath ? new PathTrace() : undefined
  const registry = new RoomRegistry(store, {
    echo: config.echo,
    awarenessInterval: config.awarenessInterval,
    compactEvery: config.compactEvery,
    roomGrace: config.roomGrace,
    maxRooms: config.maxRooms,
    maxDocumentSize: config.maxDocumentSize,
    maxClockAdvance: config.maxClockAdvance,
    maxAwarenessSize: config.maxAwarenessSize,
    maxAwarenessDepth: config.maxAwarenessDepth,
    maxAwarenessClients: config.maxAwarenessClients,
    maxAwarenessRoomSize: config.maxAwarenessRoomSize,
    maxNestingDepth: config.maxNestingDepth,
    containment,
    events,
    sharedStore: cluster !== undefined,
    ...(pathTrace ? { pathTrace } : {}),
  }, log)

  // The one place that decides who may open a room (hook, tokens or everyone), for every way in.
  const authorizer = new Authorizer({ hook: hooks?.authenticate, tokens: security.tokens, timeout: config.authTimeout, containment, log })
  const checkName = (name: string): ReturnType<typeof checkRoomName> => checkRoomName(name, config.maxRoomNameLength, security.transport.roomNamePattern)
  const documents = new Documents({ registry, checkName })
  subscribe(events, { metrics: ops.metrics, webhooks: ops.webhooks, history, cluster, documents, hooks, log })
  // The document API asks the same Authorizer as WebSocket clients: hook, tokens, or open to all.
  const authorizeApi: ApiAuthorize = async (req, room, token) => {
    const result = await authorizer.authorize({ room, token, request: authRequestOf(req, clientAddress(req, config.trustProxy)) })
    if (!result.ok) return result
    return { ok: true, access: result.grant.access, ...(result.grant.user === undefined ? {} : { user: result.grant.user }) }
  }
  const hocuspocus = new HocuspocusHub({
    join: (room, peer) => registry.join(room, peer),
    authorize: (request) => authorizer.authorize(request),
    checkName,
    stateless: hooks?.stateless,
    containment,
    log,
    maxDocuments: HOCUSPOCUS_MAX_DOCUMENTS,
    maxQueuedBytes: HOCUSPOCUS_MAX_QUEUED_BYTES,
  })
  const transport = new Transport(registry, {
    maxMessageSize: config.maxMessageSize, pingInterval: config.pingInterval, maxNewRoomsPerMinute: config.maxNewRoomsPerMinute,
    ...security.transport, hocuspocus, events, authorizer, basePath: attached?.path,
  }, log)
  ops.attach(store, registry, () => transport.connectionsByProtocol())
  history.start(() => registry.rooms)
  const rooms = new Rooms({
    store, registry, history, log,
    checkName,
    events,
  })
  let closing = false

  const routes: Route[] = [
    ...opsRoutes({ ops, tokens, metricsToken: config.metricsToken, adminToken: config.adminToken }),
    // The history panel's three paths under /api/rooms/ROOM first: the document API answers the rest of /api.
    historyRoutes({
      authorize: bearerAuthorizer(authorizer, config.trustProxy), store, registry, history, containment, now: clock,
      originAllowed: (req) => originAllowed(req, security.transport.origins ?? [], config.trustProxy),
      maxRoomNameLength: config.maxRoomNameLength, roomNamePattern: security.transport.roomNamePattern,
    }),
    documentApiRoutes({
      documents, authorize: authorizeApi, origins: security.transport.origins ?? [], trustProxy: config.trustProxy, maxBodySize: config.maxMessageSize,
      maxMessagesPerSecond: config.maxMessagesPerSecond, maxBytesPerSecond: config.maxBytesPerSecond, maxNewRoomsPerMinute: config.maxNewRoomsPerMinute,
      loopbackExempt: config.loopbackExempt, log,
    }),
    // Attached, the page's WebSocket (the origin's root) would not reach coedit: no editor.
    ...(attached ? [] : [editorRoutes()]),
    ...(config.adminToken ? [adminRoutes({ token: config.adminToken, tokens, store, registry, history, rooms, containment, maxImportSize: config.maxMessageSize, now: clock,
      maxRestoreSize: config.maxRestoreSize, maxRoomNameLength: config.maxRoomNameLength, roomNamePattern: security.transport.roomNamePattern,
    })] : []),
  ]
  // Attached, which names reach the app's server is the app's business (see host-check.ts).
  const hostAllowed = attached ? undefined : hostCheck(config)
  const handleRequest = createRequestHandler(routes, log, { hostAllowed, hsts: attached ? attached.tls : security.tls !== undefined })
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (closing) {
      socket.destroy()
      return
    }
    if (hostAllowed && !hostAllowed(req)) {
      rejectUpgrade(socket, 403, 'host not allowed')
      log.info({ event: 'upgrade_refused', status: 403, code: 'HOST_FORBIDDEN', reason: 'host not allowed' }, 'upgrade refused')
      return
    }
    transport.handleUpgrade(req, socket, head)
  }
  /** All of close() but the HTTP server's part: `stopAccepting` runs once readiness has gone (and --shutdown-delay passed). */
  const shutdown = async (stopAccepting: () => void): Promise<void> => {
    closing = true
    // Not ready before anything closes, and (with --shutdown-delay) for long enough that a load balancer notices.
    ops.beginShutdown()
    if (config.shutdownDelay > 0) await new Promise((resolve) => setTimeout(resolve, config.shutdownDelay))
    stopAccepting()
    // Writes already handed to a room are stored by flushAll; later ones are refused.
    documents.close()
    await registry.flushAll()
    transport.closeAll()
    await transport.drained(2000)
    await registry.closeAll()
    await ops.close()
    await history.close()
    await cluster?.close()
    if (ownsStore) await store.close()
    if (pathTrace) {
      try {
        pathTrace.write(config.tracePath)
        log.info({ event: 'path_trace_written', file: config.tracePath }, 'update path breakdown written')
      } catch (err) {
        log.error({ event: 'path_trace_failed', file: config.tracePath, err: (err as Error).message }, 'cannot write the update path breakdown')
      }
    }
  }
  if (attached) return attach(attached, { onUpgrade, handleRequest, store, registry, rooms, documents, config, log, shutdown })
  const timeouts = {
    // Node's defaults (60 s for headers, checked every 30 s) let a client that trickles its
    // headers hold a socket for about 73 s. Upgrades are requests until their headers are in.
    headersTimeout: config.headersTimeout,
    requestTimeout: Math.max(config.requestTimeout, config.headersTimeout),
    // Often enough that the timeouts mean what they say, rarely enough to cost nothing.
    connectionsCheckingInterval: Math.max(100, Math.min(1000, config.headersTimeout)),
  }
  // --max-connections bounds the sockets of a server coedit owns (attached, the app's server is the app's to bound).
  const guard = new ConnectionGuard({ maxConnections: config.maxConnections, maxConnectionsPerIp: config.maxConnectionsPerIp, loopbackExempt: config.loopbackExempt, tls: security.tls !== undefined }, log)
  const guarded = (req: IncomingMessage, res: ServerResponse): void => {
    if (guard.admits(req, res)) handleRequest(req, res)
  }
  const http: Server | HttpsServer = security.tls
    ? createHttpsServer({ ...security.tls, ...timeouts }, guarded)
    : createServer(timeouts, guarded)
  guard.attach(http)
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!closing && guard.refusesUpgrade(socket)) {
      rejectUpgrade(socket, 503, SERVER_FULL_MESSAGE)
      return
    }
    onUpgrade(req, socket, head)
  })
  http.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // --headers-timeout / --request-timeout: say so (node would, were this listener not here).
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' && socket.writable) {
      socket.end('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      setTimeout(() => socket.destroy(), 1000).unref()
      return
    }
    socket.destroy()
  })

  try {
    await listen(http, config)
  } catch (err) {
    await ops.close()
    await cluster?.close()
    if (ownsStore) await store.close()
    throw err
  }
  const port = (http.address() as AddressInfo).port
  const urlHost = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host.includes(':') ? `[${config.host}]` : config.host
  log.info({ event: 'listening', host: config.host, port, dataDir: mode === 'leveldb' ? config.dataDir : undefined }, `coedit listening on ${security.tls ? 'https' : 'http'}://${urlHost}:${port}`)

  let closed: Promise<void> | undefined
  const close = (): Promise<void> => {
    closed ??= (async () => {
      let httpClosed: Promise<void> | undefined
      await shutdown(() => { httpClosed = new Promise<void>((resolve) => http.close(() => resolve())) })
      http.closeAllConnections()
      await httpClosed
      log.info({ event: 'stopped' }, 'coedit stopped')
    })()
    return closed
  }

  return {
    url: `${security.tls ? 'wss' : 'ws'}://${urlHost}:${port}`,
    httpUrl: `${security.tls ? 'https' : 'http'}://${urlHost}:${port}`,
    port,
    host: config.host,
    store,
    registry,
    config,
    rooms,
    handleRequest,
    documents,
    close,
  }
}

interface AttachParts {
  onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void
  handleRequest: RequestHandler
  store: Store
  registry: RoomRegistry
  rooms: Rooms
  documents: ServerDocuments
  config: ServerConfig
  log: Logger
  /** Everything `close()` does but touch the app's server. */
  shutdown: (stopAccepting: () => void) => Promise<void>
}

/** The attached server: upgrades under the path are coedit's, the rest stays the app's. */
function attach(attached: NonNullable<ReturnType<typeof attachment>>, parts: AttachParts): CoeditServer {
  const { server, path } = attached
  const listener = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    let pathname: string | undefined
    try {
      pathname = new URL(req.url ?? '/', 'http://localhost').pathname
    } catch {
      pathname = undefined
    }
    if (pathname === undefined || underPath(pathname, path) === undefined) {
      // Another upgrade listener (the app's own WebSocket server) may own it; with none,
      // nothing would ever answer it, and node no longer does once anyone listens.
      if (server.listenerCount('upgrade') === 1) rejectUpgrade(socket, 404, 'not found')
      return
    }
    parts.onUpgrade(req, socket, head)
  }
  server.on('upgrade', listener)
  const address = (): AddressInfo => {
    const a = server.address()
    if (a === null || typeof a === 'string') throw new CoeditError('NOT_LISTENING', 'the server coedit is attached to is not listening on a TCP port (yet)')
    return a
  }
  const host = (): string => {
    const h = address().address
    return h === '0.0.0.0' || h === '::' ? '127.0.0.1' : h.includes(':') ? `[${h}]` : h
  }
  const suffix = path === '/' ? '' : path
  let closed: Promise<void> | undefined
  parts.log.info({ event: 'attached', path }, `coedit attached to the app's server under ${path}`)
  return {
    get url() { return `${attached.tls ? 'wss' : 'ws'}://${host()}:${address().port}${suffix}` },
    get httpUrl() { return `${attached.tls ? 'https' : 'http'}://${host()}:${address().port}` },
    get port() { return address().port },
    get host() { return address().address },
    store: parts.store,
    registry: parts.registry,
    config: parts.config,
    rooms: parts.rooms,
    handleRequest: parts.handleRequest,
    documents: parts.documents,
    close: () => {
      closed ??= (async () => {
        await parts.shutdown(() => server.off('upgrade', listener))
        parts.log.info({ event: 'stopped' }, 'coedit stopped')
      })()
      return closed
    },
  }
}

interface Subscribers {
  metrics: Metrics
  webhooks: Webhooks | undefined
  history: HistoryKeeper
  cluster: Cluster | undefined
  documents: Documents
  hooks: Hooks | undefined
  log: Logger
}

/**
 * Every subscriber to the server's events, in one place. A listener's exception is
 * contained and counted (coedit_errors_total{kind="hook"}); none is awaited but the
 * cluster's attach, which a room's load waits for before anyone is served.
 */
function subscribe(events: ServerBus, { metrics, webhooks, history, cluster, documents, hooks, log }: Subscribers): void {
  // Metrics: traffic, sockets, storage, rooms.
  events.on('message.received', ({ message, protocol }) => metrics.received(message, protocol), 'metrics')
  events.on('message.sent', ({ message, protocol }) => metrics.sent(message, protocol), 'metrics')
  events.on('socket.opened', ({ protocol }) => metrics.opened(protocol), 'metrics')
  events.on('socket.closed', ({ code, protocol }) => metrics.closed(code, protocol), 'metrics')
  events.on('socket.error', () => metrics.error('connection'), 'metrics')
  events.on('store.batch', ({ updates, ms }) => metrics.batchWritten(updates, ms), 'metrics')
  events.on('store.settled', ({ ms, ok }) => metrics.stored(ms, ok), 'metrics')
  // Counted where they happen: another process's updates are that process's to count.
  events.on('update.applied', ({ origin }) => { if (origin.source !== 'remote') metrics.applied(origin) }, 'metrics')
  events.on('room.compacted', ({ updates }) => { if (updates > 0) metrics.compacted(true) }, 'metrics')
  events.on('room.compactionFailed', () => metrics.compacted(false), 'metrics')
  events.on('room.loaded', ({ ms }) => metrics.roomLoaded(ms), 'metrics')
  // Other load failures are counted by the containment (kind room_load) as they are reported.
  events.on('room.loadFailed', ({ code }) => { if (code === 'TOO_MANY_ROOMS') metrics.roomLoadFailed() }, 'metrics')
  events.on('room.unloaded', ({ reason }) => { if (reason === 'idle' || reason === 'evicted') metrics.roomUnloaded() }, 'metrics')
  events.on('webhook.result', ({ result }) => metrics.webhook(result), 'metrics')

  // The HTTP token guard: an address locked out after too many wrong tokens.
  events.on('token.lockout', ({ address }) => log.warn({ event: 'token_lockout', address }, 'too many wrong tokens: address refused for a minute'), 'log')

  // Webhooks: a notice per room per window, listing the authors; the process that stored a change sends it.
  if (webhooks) {
    events.on('update.applied', ({ room, origin }) => { if (origin.source !== 'remote') webhooks.changed(room, userOf(origin)?.id) }, 'webhooks')
    events.on('room.unloaded', ({ room, reason }) => { if (reason === 'idle' || reason === 'evicted') webhooks.unloading(room) }, 'webhooks')
  }

  // History: a version from a compaction (at most one per --history-interval, and the last at unload).
  events.on('room.compacted', ({ room, state, upTo, final }) => history.compacted(room, state, upTo, final), 'history')

  // Cluster replication: subscribe a room before it is served; publish what this process stored.
  if (cluster) {
    events.before('room.loaded', ({ room }) => cluster.attach(room))
    events.on('room.unloaded', ({ room }) => cluster.detach(room), 'cluster')
    events.on('update.applied', ({ room, seq, update, origin }) => { if (origin.source !== 'remote') cluster.published(room, seq, update) }, 'cluster')
    events.on('awareness.local', ({ room, update }) => cluster.awareness(room, update), 'cluster')
    events.on('room.gap', ({ room }) => cluster.gap(room), 'cluster')
    // The other processes end their copy of a room this one deleted (their writes for it are refused anyway).
    events.on('room.deleted', ({ room, generation }) => cluster.deleted(room, generation), 'cluster')
    // rooms.disconnect closes the room's connections on every process.
    events.on('room.disconnected', ({ room, code, reason }) => cluster.disconnect(room, { code, reason }), 'cluster')
  }

  // Server-side documents: no client ID of a deleted room is reused (see Documents.roomDeleted).
  events.on('room.deleted', () => documents.roomDeleted(), 'documents')
  events.on('room.unloaded', ({ reason }) => { if (reason === 'deleted') documents.roomDeleted() }, 'documents')

  // The embedder's hooks (authenticate and stateless are asked directly: server/transport/authorizer.ts, server/transport/hocuspocus.ts).
  if (hooks) subscribeHooks(events, hooks, log)
}

/** As Hocuspocus' own server: documents per socket, and bytes held for documents not yet authenticated. */
const HOCUSPOCUS_MAX_DOCUMENTS = 100
const HOCUSPOCUS_MAX_QUEUED_BYTES = 5 * 1024 * 1024

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}
