/**
 * Composition: store → rooms → transport → HTTP. `startServer` is both what
 * `coedit serve` runs and the public API for headless tests.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { DEFAULT_CONFIG, type ServerConfig } from './config.js'
import { CoeditError } from './errors.js'
import { Redactor, redactUrl } from './redact.js'
import { createRequestHandler, editorRoutes, type Route } from './http.js'
import { createLogger, type Logger } from './log.js'
import { LevelStore } from './persistence/leveldb.js'
import { MemoryStore } from './persistence/memory.js'
import type { Store } from './persistence/store.js'
// Cluster mode only: loaded on demand (pg and ioredis add ~20 MB to every process otherwise).
import type { PostgresStore } from './persistence/postgres.js'
import type { Cluster } from './cluster/cluster.js'
import { RoomRegistry } from './registry.js'
import { Transport, rejectUpgrade } from './transport.js'
import { adminRoutes } from './admin.js'
import { HistoryKeeper, parseRetention } from './history.js'
import { securityOptions } from './security.js'
import { Ops } from './ops.js'
import { createContainment, type FaultSpec } from './containment.js'
import { ConnectionGuard, SERVER_FULL_MESSAGE } from './connections.js'
import { hostCheck } from './host-check.js'
import { HocuspocusHub, type StatelessEvent } from './hocuspocus.js'
import { OPEN_GRANT } from './auth.js'
import { checkRoomName } from './room-name.js'

export interface StartOptions extends Partial<ServerConfig> {
  /**
   * Where documents live: 'leveldb' (in `dataDir`), 'memory' (gone with the process),
   * or a `Store` of your own. Default: 'leveldb' if `dataDir` is given, else 'memory'.
   */
  storage?: 'leveldb' | 'memory' | Store
  /** A pino logger; default: one at `logLevel` (which defaults to 'silent' here) on stdout. */
  logger?: Logger
  /**
   * Test seam: make these contained paths throw (see server/containment.ts), to prove that
   * an exception there ends at most one connection or room: `relay` (every room) or
   * `relay:ROOM` (that room only). Never set it in production.
   */
  faults?: readonly FaultSpec[]
  /** Test seam: the clock the store stamps updates with and history runs on. Default Date.now. */
  clock?: () => number
  /** Your code, called as the server works. Each hook is optional and may be async. */
  hooks?: Hooks
}

export interface Hooks {
  /**
   * A Hocuspocus client's stateless message (`provider.sendStateless(payload)`). Call
   * `event.broadcast(payload)` to pass it to the room's other Hocuspocus connections.
   * An exception or rejection is logged and counted (coedit_errors_total{kind="hook"}).
   */
  stateless?: (event: StatelessEvent) => void | Promise<void>
}

export interface CoeditServer {
  /** WebSocket base URL: `new WebsocketProvider(server.url, room, doc)`. */
  readonly url: string
  /** HTTP base URL of the editor and probes. */
  readonly httpUrl: string
  readonly port: number
  readonly host: string
  readonly store: Store
  readonly registry: RoomRegistry
  readonly config: ServerConfig
  /** Stops accepting, stores everything, closes connections with 1001, closes storage. */
  close(): Promise<void>
}

export async function startServer(options: StartOptions = {}): Promise<CoeditServer> {
  const { storage, logger, faults, clock, hooks, ...overrides } = options
  const config: ServerConfig = { ...DEFAULT_CONFIG, port: 0, logLevel: 'silent', ...stripUndefined(overrides) }
  const log = logger ?? createLogger(config.logLevel)
  const retention = parseRetention(config.historyRetention)
  const security = securityOptions(config)
  const clustered = config.postgres !== '' && config.redis !== ''
  const mode = clustered ? 'postgres' : storage ?? (options.dataDir !== undefined ? 'leveldb' : 'memory')
  // Counts through `ops`, created next: nothing is reported before the server is composed.
  const containment = createContainment({ log, count: (path) => ops.metrics.error(path), inject: faults })
  const ops = new Ops({ config, log, containment, dataDir: mode === 'leveldb' ? config.dataDir : undefined })
  const store: Store = mode === 'memory' ? new MemoryStore({ now: clock })
    : mode === 'leveldb' ? await LevelStore.open(config.dataDir, { sync: config.fsync, observer: ops.metrics, now: clock })
    : mode === 'postgres' ? await (await import('./persistence/postgres.js')).PostgresStore.open({ connectionString: config.postgres, schema: config.postgresSchema, observer: ops.metrics, now: clock })
    : mode
  const ownsStore = typeof mode === 'string'
  let cluster: Cluster | undefined
  if (clustered) {
    try {
      cluster = await (await import('./cluster/cluster.js')).Cluster.start(store as PostgresStore, {
        redisUrl: config.redis, redisPrefix: config.redisPrefix, healInterval: config.healInterval, livenessTtl: config.livenessTtl,
      }, log)
    } catch (err) {
      await store.close()
      // No `cause`: the driver's error can quote the URL, password and all.
      throw new CoeditError('REDIS_FAILED', `cannot connect to Redis at ${redactUrl(config.redis)}: ${new Redactor([config.redis]).text((err as Error).message)}`)
    }
  }

  const history = new HistoryKeeper(store, { interval: config.historyInterval, retention, log, containment, exactWindow: config.historyExact, now: clock })
  const registry = new RoomRegistry(store, {
    echo: config.echo,
    awarenessInterval: config.awarenessInterval,
    compactEvery: config.compactEvery,
    onCompacted: (room, state, upTo, final) => history.compacted(room, state, upTo, final),
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
    replication: cluster,
    lifecycle: cluster && { loaded: (room) => cluster.attach(room), unloaded: (room) => cluster.detach(room) },
    observer: ops.registryObserver,
  }, log)
  const auth = security.transport.auth
  const hocuspocus = new HocuspocusHub({
    join: (room, peer) => registry.join(room, peer),
    authorize: auth ? (token, room) => auth.authorize(token, room) : async () => ({ ok: true, grant: OPEN_GRANT }),
    checkName: (name) => checkRoomName(name, config.maxRoomNameLength, security.transport.roomNamePattern),
    stateless: hooks?.stateless,
    containment,
    log,
    maxDocuments: HOCUSPOCUS_MAX_DOCUMENTS,
    maxQueuedBytes: HOCUSPOCUS_MAX_QUEUED_BYTES,
  })
  const transport = new Transport(registry, {
    maxMessageSize: config.maxMessageSize, pingInterval: config.pingInterval, maxNewRoomsPerMinute: config.maxNewRoomsPerMinute,
    ...security.transport, hocuspocus, observer: ops.metrics,
  }, log)
  ops.attach(store, registry, () => transport.connectionCount)
  history.start(() => registry.rooms)
  let closing = false

  const routes: Route[] = [
    ...ops.routes(),
    editorRoutes(),
    ...(config.adminToken ? [adminRoutes({ token: config.adminToken, tokens: ops.tokens, store, registry, history, containment, maxImportSize: config.maxMessageSize, now: clock,
      maxRestoreSize: config.maxRestoreSize, maxRoomNameLength: config.maxRoomNameLength, roomNamePattern: security.transport.roomNamePattern,
    })] : []),
  ]
  const hostAllowed = hostCheck(config)
  const handler = createRequestHandler(routes, log, { hostAllowed, hsts: security.tls !== undefined })
  const timeouts = {
    // Node's defaults (60 s for headers, checked every 30 s) let a client that trickles its
    // headers hold a socket for about 73 s. Upgrades are requests until their headers are in.
    headersTimeout: config.headersTimeout,
    requestTimeout: Math.max(config.requestTimeout, config.headersTimeout),
    // Often enough that the timeouts mean what they say, rarely enough to cost nothing.
    connectionsCheckingInterval: Math.max(100, Math.min(1000, config.headersTimeout)),
  }
  const guard = new ConnectionGuard({ maxConnections: config.maxConnections, maxConnectionsPerIp: config.maxConnectionsPerIp, loopbackExempt: config.loopbackExempt, tls: security.tls !== undefined }, log)
  const guarded = (req: IncomingMessage, res: ServerResponse): void => {
    if (guard.admits(req, res)) handler(req, res)
  }
  const http: Server | HttpsServer = security.tls
    ? createHttpsServer({ ...security.tls, ...timeouts }, guarded)
    : createServer(timeouts, guarded)
  guard.attach(http)
  http.on('upgrade', (req, socket, head) => {
    if (closing) {
      socket.destroy()
      return
    }
    if (guard.refusesUpgrade(socket)) {
      rejectUpgrade(socket, 503, SERVER_FULL_MESSAGE)
      return
    }
    if (hostAllowed && !hostAllowed(req)) {
      rejectUpgrade(socket, 403, 'host not allowed')
      log.info({ event: 'upgrade_refused', status: 403, code: 'HOST_FORBIDDEN', reason: 'host not allowed' }, 'upgrade refused')
      return
    }
    transport.handleUpgrade(req, socket, head)
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
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject)
      http.listen(config.port, config.host, () => {
        http.off('error', reject)
        resolve()
      })
    })
  } catch (err) {
    await ops.close()
    await cluster?.close()
    if (ownsStore) await store.close()
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE') throw new CoeditError('PORT_IN_USE', `port ${config.port} on ${config.host} is already in use`, { cause: err })
    throw new CoeditError('LISTEN_FAILED', `cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`, { cause: err })
  }
  const port = (http.address() as AddressInfo).port
  const urlHost = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host.includes(':') ? `[${config.host}]` : config.host
  log.info({ event: 'listening', host: config.host, port, dataDir: mode === 'leveldb' ? config.dataDir : undefined }, `coedit listening on ${security.tls ? 'https' : 'http'}://${urlHost}:${port}`)

  let closed: Promise<void> | undefined
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true
      // Not ready before anything closes, and (with --shutdown-delay) for long enough that a load balancer notices.
      ops.beginShutdown()
      if (config.shutdownDelay > 0) await new Promise((resolve) => setTimeout(resolve, config.shutdownDelay))
      const httpClosed = new Promise<void>((resolve) => http.close(() => resolve()))
      await registry.flushAll()
      transport.closeAll()
      await transport.drained(2000)
      await registry.closeAll()
      await ops.close()
      await history.close()
      await cluster?.close()
      if (ownsStore) await store.close()
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
    close,
  }
}

/** As Hocuspocus' own server: documents per socket, and bytes held for documents not yet authenticated. */
const HOCUSPOCUS_MAX_DOCUMENTS = 100
const HOCUSPOCUS_MAX_QUEUED_BYTES = 5 * 1024 * 1024

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}
