/**
 * Server configuration: every option in one table with its flag, environment
 * variable, default and help text. Parsed once at the entry point and passed down;
 * nothing reads the environment anywhere else.
 */
import { helpRows, parseFlags, type FlagSpecs } from './operator/args.js'
import { CoeditError, UsageError } from './errors.js'
import type { SecurityConfig } from './transport/security.js'
import type { OpsConfig } from './observability/ops.js'
import { webhookKey } from './observability/webhook-signature.js'
import { checkAuthSecret } from './transport/auth.js'
import { formatDuration, parseDuration } from './operator/duration.js'
import { DEFAULT_RETENTION } from './operator/history.js'
import { DEFAULT_EXACT_WINDOW } from './operator/history-log.js'
import { MAX_ROOM_NAME_LENGTH, roomNamePattern } from './room/room-name.js'
import { DEFAULT_MAX_NESTING_DEPTH } from './room/update-checks.js'
import { LOG_LEVELS, type LogLevel } from './log.js'

/**
 * Every option of `coedit serve`. The transport's security options and the operations
 * options are declared by the modules that read them (SecurityConfig, OpsConfig): one list.
 */
export interface ServerConfig extends SecurityConfig, OpsConfig {
  port: number
  host: string
  dataDir: string
  pingInterval: number
  maxMessageSize: number
  authTimeout: number
  maxDocumentSize: number
  maxConnections: number
  headersTimeout: number
  requestTimeout: number
  maxNewRoomsPerMinute: number
  maxRestoreSize: number
  maxRooms: number
  maxClockAdvance: number
  maxAwarenessSize: number
  maxAwarenessDepth: number
  maxAwarenessClients: number
  maxAwarenessRoomSize: number
  maxNestingDepth: number
  roomGrace: number
  awarenessInterval: number
  compactEvery: number
  echo: boolean
  fsync: boolean
  tracePath: string
  postgres: string
  postgresSchema: string
  redis: string
  redisPrefix: string
  healInterval: number
  livenessTtl: number
  historyInterval: number
  historyRetention: string
  historyExact: number
  metricsToken: string
  shutdownDelay: number
  logLevel: LogLevel
}

type Kind = 'port' | 'string' | 'duration' | 'size' | 'count' | 'limit' | 'boolean' | 'level' | 'urls'

interface OptionSpec<K extends keyof ServerConfig = keyof ServerConfig> {
  key: K
  flag: string
  env: string
  kind: Kind
  default: ServerConfig[K]
  help: string
  /** Durations: the smallest accepted value in ms (default 1; 0 where "none" makes sense). */
  min?: number
}

const spec = <K extends keyof ServerConfig>(s: OptionSpec<K>): OptionSpec => s as unknown as OptionSpec

export const SERVE_OPTIONS: readonly OptionSpec[] = [
  spec({ key: 'port', flag: 'port', env: 'PORT', kind: 'port', default: 1234, help: 'TCP port (0 picks a free one)' }),
  spec({ key: 'host', flag: 'host', env: 'HOST', kind: 'string', default: '127.0.0.1', help: 'interface to listen on; 0.0.0.0 serves the LAN' }),
  spec({ key: 'dataDir', flag: 'data', env: 'DATA_DIR', kind: 'string', default: './data', help: 'LevelDB data directory' }),
  spec({ key: 'pingInterval', flag: 'ping-interval', env: 'PING_INTERVAL', kind: 'duration', default: 30_000, help: 'ping every connection this often; one that missed the last ping is closed' }),
  spec({ key: 'maxMessageSize', flag: 'max-message-size', env: 'MAX_MESSAGE_SIZE', kind: 'size', default: 16 * 1024 * 1024, help: 'largest accepted message; bigger ones close the connection with 1009 (document API and admin bodies: HTTP 413)' }),
  spec({ key: 'authSecret', flag: 'auth-secret', env: 'AUTH_SECRET', kind: 'string', default: '', help: 'require tokens signed with this HS256 secret (at least 32 bytes); prefer the env var, flags show in ps' }),
  spec({ key: 'authPublicKey', flag: 'auth-public-key', env: 'AUTH_PUBLIC_KEY', kind: 'string', default: '', help: 'require tokens signed for this PEM public key file (EC P-256 → ES256, RSA → RS256)' }),
  spec({ key: 'authTimeout', flag: 'auth-timeout', env: 'AUTH_TIMEOUT', kind: 'duration', default: 10_000, help: 'an authentication (a token check, or the authenticate hook of the embedding API) taking longer refuses the client (HTTP 503) and counts coedit_errors_total{kind="hook"}' }),
  spec({ key: 'allowedOrigins', flag: 'allowed-origins', env: 'ALLOWED_ORIGINS', kind: 'string', default: '', help: 'comma-separated browser origins allowed to connect besides the server\'s own (http://localhost:* = any port of a host, * = any); requests without Origin are not browsers and pass' }),
  spec({ key: 'trustProxy', flag: 'trust-proxy', env: 'TRUST_PROXY', kind: 'boolean', default: false, help: 'behind a reverse proxy: take the client address from X-Forwarded-For and the host from X-Forwarded-Host' }),
  spec({ key: 'loopbackExempt', flag: 'loopback-exempt', env: 'LOOPBACK_EXEMPT', kind: 'boolean', default: true, help: 'spare loopback addresses the per-address limits (--max-connections-per-ip, --max-new-rooms-per-minute, the document API\'s rates): they are local tools or a proxy on this host; --no-loopback-exempt limits them too' }),
  spec({ key: 'maxDocumentSize', flag: 'max-document-size', env: 'MAX_DOCUMENT_SIZE', kind: 'size', default: 64 * 1024 * 1024, help: 'refuse updates that would take a room\'s stored size past this (close 4413); the room stays usable' }),
  spec({ key: 'maxMessagesPerSecond', flag: 'max-messages-per-second', env: 'MAX_MESSAGES_PER_SECOND', kind: 'limit', default: 1000, help: 'per connection, token bucket holding 10 s worth; over it closes with 4429; document API: requests per client address, HTTP 429 (0 = no limit)' }),
  spec({ key: 'maxBytesPerSecond', flag: 'max-bytes-per-second', env: 'MAX_BYTES_PER_SECOND', kind: 'limit', default: 8 * 1024 * 1024, help: 'per connection, token bucket holding 10 s worth; over it closes with 4429; document API: body bytes per client address, HTTP 429 (0 = no limit)' }),
  spec({ key: 'maxConnectionsPerIp', flag: 'max-connections-per-ip', env: 'MAX_CONNECTIONS_PER_IP', kind: 'limit', default: 1000, help: 'open connections per client address, WebSockets and TCP connections not yet upgraded (loopback exempt); more are refused with HTTP 429 (0 = no limit)' }),
  spec({ key: 'maxConnections', flag: 'max-connections', env: 'MAX_CONNECTIONS', kind: 'limit', default: 10_000, help: 'open TCP connections (HTTP and WebSocket, every address); more get HTTP 503, or are closed under TLS; keep it below ulimit -n (0 = no limit)' }),
  spec({ key: 'headersTimeout', flag: 'headers-timeout', env: 'HEADERS_TIMEOUT', kind: 'duration', default: 5000, help: 'a request or WebSocket upgrade whose headers take longer to arrive is closed (408)' }),
  spec({ key: 'requestTimeout', flag: 'request-timeout', env: 'REQUEST_TIMEOUT', kind: 'duration', default: 30_000, help: 'an HTTP request (headers and body) taking longer to arrive is closed (408); raise it to restore large backups over slow links' }),
  spec({ key: 'maxNewRoomsPerMinute', flag: 'max-new-rooms-per-minute', env: 'MAX_NEW_ROOMS_PER_MINUTE', kind: 'limit', default: 60, help: 'rooms with nothing stored that one client address may open per minute (loopback exempt); more close with 4429 (document API: its own budget, HTTP 429) (0 = no limit)' }),
  spec({ key: 'maxRestoreSize', flag: 'max-restore-size', env: 'MAX_RESTORE_SIZE', kind: 'size', default: 1024 ** 3, help: 'largest backup accepted by POST /admin/restore; bigger ones get 413 (other admin bodies: --max-message-size)' }),
  spec({ key: 'maxRooms', flag: 'max-rooms', env: 'MAX_ROOMS', kind: 'count', default: 10_000, help: 'rooms loaded in memory; the least recently used idle room is unloaded to make space, else joins close with 1013' }),
  spec({ key: 'maxRoomNameLength', flag: 'max-room-name-length', env: 'MAX_ROOM_NAME_LENGTH', kind: 'count', default: MAX_ROOM_NAME_LENGTH, help: 'longest room name in UTF-16 code units; longer ones are closed with 4400 after the upgrade' }),
  spec({ key: 'roomNamePattern', flag: 'room-name-pattern', env: 'ROOM_NAME_PATTERN', kind: 'string', default: '', help: 'regular expression every room name must match in full (default: any name without control, bidi or invisible formatting characters)' }),
  spec({ key: 'maxClockAdvance', flag: 'max-clock-advance', env: 'MAX_CLOCK_ADVANCE', kind: 'count', default: 2 ** 26, help: 'an update may reach at most this many clock units beyond what the room has of each client; beyond: close 4400' }),
  spec({ key: 'maxAwarenessSize', flag: 'max-awareness-size', env: 'MAX_AWARENESS_SIZE', kind: 'size', default: 64 * 1024, help: 'largest awareness state (presence: cursor, name), in bytes of JSON; larger closes with 4400 AWARENESS_STATE_TOO_LARGE' }),
  spec({ key: 'maxAwarenessDepth', flag: 'max-awareness-depth', env: 'MAX_AWARENESS_DEPTH', kind: 'count', default: 64, help: 'deepest nesting of arrays and objects in an awareness state (editor cursors: 4); deeper closes with 4400 AWARENESS_TOO_DEEP' }),
  spec({ key: 'maxAwarenessClients', flag: 'max-awareness-clients', env: 'MAX_AWARENESS_CLIENTS', kind: 'count', default: 8, help: 'awareness client IDs one connection may introduce (a provider uses one per document); more closes with 4400 AWARENESS_TOO_MANY_CLIENTS' }),
  spec({ key: 'maxAwarenessRoomSize', flag: 'max-awareness-room-size', env: 'MAX_AWARENESS_ROOM_SIZE', kind: 'size', default: 4 * 1024 * 1024, help: 'bytes of all awareness states of a room (what a joiner is greeted with); a state that would pass it is dropped, the connection stays' }),
  spec({ key: 'maxNestingDepth', flag: 'max-nesting-depth', env: 'MAX_NESTING_DEPTH', kind: 'limit', default: DEFAULT_MAX_NESTING_DEPTH, help: 'refuse updates that would nest shared types (and JSON values in them) deeper than this: close 4400 TOO_DEEP; Yjs overflows the stack near 2,000 (0 = no limit)' }),
  spec({ key: 'maxBufferedBytes', flag: 'max-buffered-bytes', env: 'MAX_BUFFERED_BYTES', kind: 'size', default: 16 * 1024 * 1024, help: 'unsent bytes queued for one connection (besides its largest message) before it is closed with 4408' }),
  spec({ key: 'tlsCert', flag: 'tls-cert', env: 'TLS_CERT', kind: 'string', default: '', help: 'PEM certificate chain file: serve https:// and wss:// (with --tls-key)' }),
  spec({ key: 'tlsKey', flag: 'tls-key', env: 'TLS_KEY', kind: 'string', default: '', help: 'PEM private key file for --tls-cert' }),
  spec({ key: 'roomGrace', flag: 'room-grace', env: 'ROOM_GRACE', kind: 'duration', default: 10_000, help: 'keep a room in memory this long after its last connection left' }),
  spec({ key: 'awarenessInterval', flag: 'awareness-interval', env: 'AWARENESS_INTERVAL', kind: 'duration', default: 50, help: 'relay a room\'s awareness changes at most this often, merged' }),
  spec({ key: 'compactEvery', flag: 'compact-every', env: 'COMPACT_EVERY', kind: 'count', default: 500, help: 'fold a room\'s stored updates into one state after this many (and once they are a quarter of its bytes)' }),
  spec({ key: 'echo', flag: 'echo', env: 'ECHO', kind: 'boolean', default: true, help: 'send each stored update back to its sender too (y-websocket 4 "saved" status); --no-echo to turn off' }),
  spec({ key: 'fsync', flag: 'fsync', env: 'FSYNC', kind: 'boolean', default: true, help: 'fsync every write batch so it survives power loss, not only a process crash; --no-fsync trades that for latency' }),
  spec({ key: 'tracePath', flag: 'trace-path', env: 'TRACE_PATH', kind: 'string', default: '', help: 'time each update\'s way through the server (receive, validate, append, batch, fsync, apply, frame, write) and write the per-stage p50/p99 (JSON) to this file at shutdown; off when empty' }),
  spec({ key: 'postgres', flag: 'postgres', env: 'POSTGRES_URL', kind: 'string', default: '', help: 'cluster mode: PostgreSQL connection string for the shared store (with --redis)' }),
  spec({ key: 'postgresSchema', flag: 'postgres-schema', env: 'POSTGRES_SCHEMA', kind: 'string', default: 'coedit', help: 'cluster mode: schema of coedit\'s tables (created and migrated by coedit)' }),
  spec({ key: 'redis', flag: 'redis', env: 'REDIS_URL', kind: 'string', default: '', help: 'cluster mode: Redis URL of the bus between processes (with --postgres)' }),
  spec({ key: 'redisPrefix', flag: 'redis-prefix', env: 'REDIS_PREFIX', kind: 'string', default: 'coedit:', help: 'cluster mode: prefix of coedit\'s Redis keys and channels' }),
  spec({ key: 'healInterval', flag: 'heal-interval', env: 'HEAL_INTERVAL', kind: 'duration', default: 2000, help: 'cluster mode: check the store for updates the bus missed this often' }),
  spec({ key: 'livenessTtl', flag: 'liveness-ttl', env: 'LIVENESS_TTL', kind: 'duration', default: 6000, help: 'cluster mode: a process silent this long is dead; its clients\' presence is removed' }),
  spec({ key: 'adminToken', flag: 'admin-token', env: 'ADMIN_TOKEN', kind: 'string', default: '', help: 'turn on the admin HTTP API (/admin/...) for `coedit --server`, with this bearer token' }),
  spec({ key: 'historyInterval', flag: 'history-interval', env: 'HISTORY_INTERVAL', kind: 'duration', default: 60_000, help: 'record a version of each changed room this often (coedit history/revert)' }),
  spec({ key: 'historyRetention', flag: 'history-retention', env: 'HISTORY_RETENTION', kind: 'string', default: DEFAULT_RETENTION, help: 'versions kept: AGE:EVERY tiers, one version per EVERY while younger than AGE (units s m h d w)' }),
  spec({ key: 'historyExact', flag: 'history-exact', env: 'HISTORY_EXACT', kind: 'duration', min: 0, default: DEFAULT_EXACT_WINDOW, help: 'keep the log of every stored update (with its time and user) this long: export --at, revert --to and diff are exact to the millisecond within it' }),
  spec({ key: 'metricsToken', flag: 'metrics-token', env: 'METRICS_TOKEN', kind: 'string', default: '', help: 'require this bearer token on GET /metrics' }),
  spec({ key: 'webhook', flag: 'webhook', env: 'WEBHOOK', kind: 'urls', default: '', help: 'POST a signed notice here when a room\'s document changed; repeatable, or comma-separated (needs --webhook-secret)' }),
  spec({ key: 'webhookSecret', flag: 'webhook-secret', env: 'WEBHOOK_SECRET', kind: 'string', default: '', help: 'HMAC-SHA256 key of webhook signatures (Standard Webhooks: webhook-signature), at least 32 bytes, or whsec_<base64>; prefer the env var' }),
  spec({ key: 'webhookDebounce', flag: 'webhook-debounce', env: 'WEBHOOK_DEBOUNCE', kind: 'duration', default: 2000, help: 'at most one webhook per room per this window, sent at its end' }),
  spec({ key: 'webhookIncludeText', flag: 'webhook-include-text', env: 'WEBHOOK_INCLUDE_TEXT', kind: 'boolean', default: false, help: 'put the document\'s text (doc.getText(\'text\')) in webhooks' }),
  spec({ key: 'webhookRetries', flag: 'webhook-retries', env: 'WEBHOOK_RETRIES', kind: 'count', default: 5, help: 'retries of a failed webhook, with exponential backoff' }),
  spec({ key: 'webhookBackoff', flag: 'webhook-backoff', env: 'WEBHOOK_BACKOFF', kind: 'duration', default: 1000, help: 'wait before the first webhook retry; doubled for each later one' }),
  spec({ key: 'webhookTimeout', flag: 'webhook-timeout', env: 'WEBHOOK_TIMEOUT', kind: 'duration', default: 10_000, help: 'a webhook delivery taking longer has failed' }),
  spec({ key: 'webhookMaxQueue', flag: 'webhook-max-queue', env: 'WEBHOOK_MAX_QUEUE', kind: 'count', default: 10_000, help: 'rooms with a webhook waiting, per URL; beyond it the oldest notice is dropped' }),
  spec({ key: 'shutdownDelay', flag: 'shutdown-delay', env: 'SHUTDOWN_DELAY', kind: 'duration', min: 0, default: 0, help: 'on SIGTERM, answer /readyz with 503 this long before closing connections (lets a load balancer drain)' }),
  spec({ key: 'logLevel', flag: 'log-level', env: 'LOG_LEVEL', kind: 'level', default: 'info', help: `log level: ${LOG_LEVELS.join(', ')}` }),
]

export const DEFAULT_CONFIG: ServerConfig = Object.fromEntries(
  SERVE_OPTIONS.map((o) => [o.key, o.default]),
) as unknown as ServerConfig

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1, kb: 1000, mb: 1000 ** 2, gb: 1000 ** 3, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, k: 1024, m: 1024 ** 2, g: 1024 ** 3,
}

/** `1048576`, `512KiB`, `16MiB`, `1MB`. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text)
  const unit = SIZE_UNITS[(m?.[2] ?? '').toLowerCase()]
  if (!m || unit === undefined) throw new UsageError(`"${text}" is not a size (examples: 1048576, 512KiB, 16MiB)`)
  return Math.round(Number(m[1]) * unit)
}

function parseValue(o: OptionSpec, text: string, source: string): ServerConfig[keyof ServerConfig] {
  const fail = (why: string): never => { throw new UsageError(`${source}: ${why}`) }
  switch (o.kind) {
    case 'port': {
      const n = Number(text)
      if (!/^\d+$/.test(text.trim()) || n > 65535) fail(`"${text}" is not a port (0-65535)`)
      return n
    }
    case 'count': {
      const n = Number(text)
      if (!/^\d+$/.test(text.trim()) || n < 1) fail(`"${text}" is not a positive whole number`)
      return n
    }
    case 'limit': {
      const n = Number(text)
      if (!/^\d+$/.test(text.trim())) fail(`"${text}" is not a whole number (0 = no limit)`)
      return n
    }
    case 'duration': {
      try {
        const n = parseDuration(text)
        const min = o.min ?? 1
        if (n < min) fail(`must be at least ${min}ms`)
        return n
      } catch (err) { return fail((err as Error).message) }
    }
    case 'size': {
      try {
        const n = parseSize(text)
        if (n < 64) fail('must be at least 64 bytes')
        return n
      } catch (err) { return fail((err as Error).message) }
    }
    case 'boolean': {
      const t = text.trim().toLowerCase()
      if (['1', 'true', 'yes', 'on'].includes(t)) return true
      if (['0', 'false', 'no', 'off'].includes(t)) return false
      return fail(`"${text}" is not true or false`)
    }
    case 'level':
      if (!(LOG_LEVELS as readonly string[]).includes(text)) fail(`"${text}" is not one of ${LOG_LEVELS.join(', ')}`)
      return text as LogLevel
    case 'urls': {
      const urls = text.split(',').map((u) => u.trim()).filter((u) => u !== '')
      for (const u of urls) if (!URL.canParse(u) || !/^https?:$/.test(new URL(u).protocol)) fail(`"${u}" is not an http(s) URL`)
      return urls.join(',')
    }
    case 'string':
      if (text.length === 0) fail('must not be empty')
      return text
  }
}

/**
 * Option combinations coedit refuses wherever it starts: `startServer` calls this before it opens
 * anything (as ws's WebSocketServer constructor throws on bad options), and `parseServeArgs`
 * turns its error into a usage error. Throws a CoeditError. `sources` names where a value came
 * from when it is not its flag (`AUTH_SECRET`).
 */
export function validateConfig(config: ServerConfig, sources: { authSecret?: string } = {}): void {
  if (Boolean(config.redis) !== Boolean(config.postgres)) {
    throw new CoeditError('CLUSTER_INCOMPLETE', '--redis and --postgres go together: cluster mode needs both')
  }
  // An empty secret is the shortest secret of all (and would sign with '').
  if (config.webhook && !config.webhookSecret) throw new CoeditError('WEBHOOK_SECRET_TOO_SHORT', '--webhook needs --webhook-secret (receivers check the signature)')
  if (config.webhookSecret) webhookKey(config.webhookSecret)
  if (Boolean(config.tlsCert) !== Boolean(config.tlsKey)) throw new CoeditError('TLS_INCOMPLETE', '--tls-cert and --tls-key go together')
  if (config.authSecret && config.authPublicKey) throw new CoeditError('AUTH_OPTIONS_EXCLUSIVE', '--auth-secret and --auth-public-key are exclusive: pick one')
  if (config.authSecret) checkAuthSecret(config.authSecret, sources.authSecret)
  roomNamePattern(config.roomNamePattern)
}

/** Parses `coedit serve` arguments over the environment over the defaults. Throws UsageError. */
export function parseServeArgs(argv: readonly string[], env: NodeJS.ProcessEnv): ServerConfig & { help: boolean; version: boolean } {
  const options: FlagSpecs = { help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' } }
  for (const o of SERVE_OPTIONS) {
    if (o.kind === 'boolean') {
      options[o.flag] = { type: 'boolean' }
      options[`no-${o.flag}`] = { type: 'boolean' }
    } else {
      options[o.flag] = { type: 'string', value: `<${o.kind}>`, ...(o.kind === 'urls' ? { multiple: true } : {}) }
    }
  }
  const { values, positionals } = parseFlags(argv, options)
  if (positionals.length > 0) throw new UsageError(`serve takes no arguments, only options: "${positionals[0]}"`)
  const config: Record<string, unknown> = { ...DEFAULT_CONFIG }
  for (const o of SERVE_OPTIONS) {
    const envValue = env[o.env]
    if (envValue !== undefined && envValue !== '') config[o.key] = parseValue(o, envValue, o.env)
    if (o.kind === 'boolean') {
      if (values[o.flag] === true) config[o.key] = true
      if (values[`no-${o.flag}`] === true) config[o.key] = false
    } else if (typeof values[o.flag] === 'string') {
      config[o.key] = parseValue(o, values[o.flag] as string, `--${o.flag}`)
    } else if (Array.isArray(values[o.flag])) {
      config[o.key] = parseValue(o, (values[o.flag] as string[]).join(','), `--${o.flag}`)
    }
  }
  try {
    validateConfig(config as unknown as ServerConfig, { authSecret: typeof values['auth-secret'] === 'string' ? '--auth-secret' : 'AUTH_SECRET' })
  } catch (err) {
    // The same refusal as startServer's, as the CLI reports bad usage: one line, exit 2.
    if (err instanceof CoeditError) throw new UsageError(err.message)
    throw err
  }
  return { ...(config as unknown as ServerConfig), help: values.help === true, version: values.version === true }
}

/** The default as --help and the README show it. */
export function formatDefault(o: OptionSpec): string {
  const v = o.default
  if (v === '') return '(off)'
  if (v === 0 && o.kind === 'duration') return '0 (off)'
  if (o.kind === 'duration') return formatDuration(v as number)
  if (o.kind === 'size') return formatSize(v as number)
  return String(v)
}

export function formatSize(bytes: number): string {
  if (bytes % 1024 ** 3 === 0) return `${bytes / 1024 ** 3}GiB`
  if (bytes % 1024 ** 2 === 0) return `${bytes / 1024 ** 2}MiB`
  if (bytes % 1024 === 0) return `${bytes / 1024}KiB`
  return `${bytes}`
}

export function serveHelp(): string {
  const rows = SERVE_OPTIONS.map((o): [string, string] => {
    // A boolean's --no- form is in its description: written as a second flag it would widen the whole column.
    const flag = o.kind === 'boolean' ? `--${o.flag}` : `--${o.flag} <${o.kind}>`
    const off = o.kind === 'boolean' && !o.help.includes(`--no-${o.flag}`) ? `; --no-${o.flag} turns it off` : ''
    return [flag, `${o.help}\nenv ${o.env}, default ${formatDefault(o)}${off}`]
  })
  return [
    'Usage: coedit serve [options]',
    '',
    'Runs the collaboration server: y-websocket protocol on ws://HOST:PORT/<room>,',
    'the web editor on http://HOST:PORT/. Flags override environment variables.',
    'A duration needs a unit: ms, s, m, h, d or w (500ms, 30s, 2m, 1h; only 0 goes',
    'without). A size is bytes or takes KiB, MiB, GiB (16MiB).',
    '',
    'Options:',
    ...helpRows([...rows, ['--help, -h', 'show this help'], ['--version', 'print coedit\'s version']]),
    '',
    'Exit codes: 0 stopped cleanly, 1 failed (data directory in use, port taken), 2 bad usage.',
  ].join('\n')
}
