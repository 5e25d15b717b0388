/**
 * Plain HTTP: the editor's page and assets, and probes. Each feature contributes a
 * `Route` (return true if it answered); anything unanswered gets a 404 page.
 */
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { extname, join } from 'node:path'
import type { Logger } from 'pino'
import { WEB_DIST } from './paths.js'

export type Route = (req: IncomingMessage, res: ServerResponse, url: URL) => boolean | Promise<boolean>

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webmanifest': 'application/manifest+json',
}

/** On every response: nothing of coedit's may be framed (clickjacking), sniffed or leak its URL. */
const SECURITY_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Content-Security-Policy': "frame-ancestors 'none'",
}

/**
 * The policy of the editor and the status page: their own scripts, styles and WebSocket
 * only (connect-src 'self' covers ws:/wss: to the same host), nothing inline, never framed.
 * Styles set from script through element.style are not inline styles and stay allowed.
 */
export const PAGE_CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
  "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
].join('; ')

/** A year, the usual HSTS lifetime: once a browser has seen https it will not try http. */
const HSTS = 'max-age=31536000'

export function sendText(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8', headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store', ...SECURITY_HEADERS, ...headers })
  res.end(body)
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  sendText(res, status, JSON.stringify(value) + '\n', 'application/json; charset=utf-8')
}

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)

export function sendNotFound(res: ServerResponse, path: string): void {
  sendText(res, 404, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Not found · coedit</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem">
<h1>Not found</h1><p>There is nothing at <code>${escapeHtml(path)}</code>.</p>
<p><a href="/">Open a new document</a></p></body></html>`, 'text/html; charset=utf-8')
}

/**
 * The pages built from web/ (scripts/build-web.mjs): `/` → a fresh room; `/r/<room>` → the
 * editor; `/status` → the status page (its data, /status.json, is ops.ts's); `/assets/*` →
 * their scripts and styles.
 */
export function editorRoutes(): Route {
  return async (req, res, url) => {
    if (url.pathname === '/') {
      const room = randomBytes(6).toString('base64url')
      res.writeHead(302, { Location: `/r/${room}`, 'Cache-Control': 'no-store' })
      res.end()
      return true
    }
    if (url.pathname.startsWith('/r/') && url.pathname.length > 3) {
      await serveFile(res, join(WEB_DIST, 'index.html'), url.pathname)
      return true
    }
    if (url.pathname === '/status') {
      await serveFile(res, join(WEB_DIST, 'status.html'), url.pathname)
      return true
    }
    const asset = /^\/assets\/([A-Za-z0-9][A-Za-z0-9._-]*)$/.exec(url.pathname)
    if (asset) {
      await serveFile(res, join(WEB_DIST, 'assets', asset[1]!), url.pathname)
      return true
    }
    return false
  }
}

async function serveFile(res: ServerResponse, file: string, path: string): Promise<void> {
  let body: Buffer
  try {
    body = await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      if (file.endsWith('.html')) {
        sendText(res, 503, 'The web pages are not built: run `npm run build`.\n')
      } else {
        sendNotFound(res, path)
      }
      return
    }
    throw err
  }
  res.writeHead(200, {
    'Content-Type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
    'Content-Length': body.length,
    'Cache-Control': file.endsWith('.html') ? 'no-cache' : 'public, max-age=300',
    ...SECURITY_HEADERS,
    ...(file.endsWith('.html') ? { 'Content-Security-Policy': PAGE_CSP } : {}),
  })
  res.end(body)
}

export interface RequestHandlerOptions {
  /** Refuses (403) requests addressed to a name the server does not answer to (see host-check.ts). */
  hostAllowed?: (req: IncomingMessage) => boolean
  /** Served over TLS: every response carries Strict-Transport-Security. */
  hsts?: boolean
}

/**
 * A request handler: `(req, res)` for coedit's own server, `(req, res, next)` for an app
 * that mounts it (Express, or any router): a request no route answers goes to `next`,
 * untouched, instead of coedit's 404 page.
 */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => void

/** Runs routes in order; unknown paths get a 404 page (or go to `next`) and a thrown error a 500, never a stack trace. */
export function createRequestHandler(routes: Route[], log: Logger, options: RequestHandlerOptions = {}): RequestHandler {
  return (req, res, next) => {
    const headers = { ...SECURITY_HEADERS, ...(options.hsts ? { 'Strict-Transport-Security': HSTS } : {}) }
    // Also on responses written without sendText (redirects, the admin API).
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value)
    if (options.hostAllowed && !options.hostAllowed(req)) {
      sendText(res, 403, 'host not allowed\n')
      return
    }
    let url: URL
    try {
      url = new URL(req.url ?? '/', 'http://localhost')
    } catch {
      sendText(res, 400, 'bad request\n')
      return
    }
    void (async () => {
      try {
        for (const route of routes) {
          if (await route(req, res, url)) return
        }
        if (next) {
          // Not ours: the app's response carries none of our headers.
          if (!res.headersSent) for (const name of Object.keys(headers)) res.removeHeader(name)
          next()
          return
        }
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          sendText(res, 405, 'method not allowed\n')
          return
        }
        sendNotFound(res, url.pathname)
      } catch (err) {
        log.error({ event: 'http_error', path: url.pathname, err: String(err) }, 'request failed')
        if (!res.headersSent) sendText(res, 500, 'internal error\n')
        else res.destroy()
      }
    })()
  }
}
