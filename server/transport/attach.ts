/**
 * Attached mode: `startServer({ server, path })` serves the WebSocket upgrades of an app's
 * own HTTP(S) server under `path` instead of listening itself. Everything else on that
 * server stays the app's: its requests, and its upgrades outside `path` (another WebSocket
 * server may own them). Options about a listener coedit does not own are refused here, as
 * a bad combination should be: at startServer, with the option named.
 */
import { Server as NetServer } from 'node:net'
import { Server as TlsServer } from 'node:tls'
import type { Server } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import { CoeditError } from '../errors.js'

/** The app's listener decides these: coedit refuses them beside `server` rather than ignore them. */
const LISTENER_OPTIONS = ['port', 'host', 'tlsCert', 'tlsKey', 'headersTimeout', 'requestTimeout', 'maxConnections'] as const

const WHY: Record<(typeof LISTENER_OPTIONS)[number], string> = {
  port: 'your server listens where you made it listen',
  host: 'your server listens where you made it listen',
  tlsCert: 'create your server with node:https to serve wss://',
  tlsKey: 'create your server with node:https to serve wss://',
  headersTimeout: 'set server.headersTimeout on your server',
  requestTimeout: 'set server.requestTimeout on your server',
  maxConnections: 'set server.maxConnections on your server',
}

export interface AttachRequest {
  server?: unknown
  path?: unknown
  [option: string]: unknown
}

export interface Attachment {
  server: Server | HttpsServer
  /** Normalized: starts with '/', no trailing '/' unless it is '/'. */
  path: string
  tls: boolean
}

/** Checks `server` and `path` and what goes with them; undefined when coedit listens itself. */
export function attachment(options: AttachRequest): Attachment | undefined {
  if (options.server === undefined) {
    if (options.path !== undefined) throw new CoeditError('BAD_OPTIONS', 'path goes with server: startServer({ server: yourHttpServer, path: \'/collab\' })')
    return undefined
  }
  if (!(options.server instanceof NetServer) || typeof (options.server as Partial<Server>).listenerCount !== 'function') {
    throw new CoeditError('BAD_OPTIONS', 'server must be a node:http or node:https server (what http.createServer or app.listen returns)')
  }
  for (const option of LISTENER_OPTIONS) {
    if (options[option] !== undefined) throw new CoeditError('BAD_OPTIONS', `${option} does not go with server: ${WHY[option]}`)
  }
  return { server: options.server as Server | HttpsServer, path: normalizePath(options.path ?? '/'), tls: options.server instanceof TlsServer }
}

function normalizePath(path: unknown): string {
  if (typeof path !== 'string' || !path.startsWith('/') || /[?#%\\\s]/.test(path) || /\/\//.test(path) || /[\u0000-\u001f\u007f]/.test(path)) {
    throw new CoeditError('BAD_OPTIONS', `path must be a URL path such as /collab (a leading /, no query, no percent-encoding), not ${JSON.stringify(path)}`)
  }
  return path.length > 1 ? path.replace(/\/$/, '') : path
}

/**
 * The part of `pathname` under `base`, with its leading '/' ('/' for `base` itself or
 * `base/`); undefined when `pathname` is not under `base`.
 */
export function underPath(pathname: string, base: string): string | undefined {
  if (base === '/') return pathname
  if (pathname === base) return '/'
  return pathname.startsWith(`${base}/`) ? pathname.slice(base.length) : undefined
}
