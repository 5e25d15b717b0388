/**
 * Who may open a room, decided in one place for every way in (a y-websocket upgrade, a
 * Hocuspocus document's auth message, and the HTTP document API): the embedder's
 * `authenticate` hook when there is one, else JWT access tokens when configured
 * (server/transport/auth.ts), else everyone may write every room.
 *
 * The hook's answers:
 *   `{ access: 'read' | 'write', user?: { id, name? } }`  let in, with that access;
 *   `false`                                               refused: 403 AUTH_REFUSED;
 *   throws an error whose `status` is 401 or 403           refused with that status, the
 *                                                          error's message as the reason;
 *   throws anything else, or answers something else       refused: 500 AUTH_ERROR, logged
 *                                                          and counted as coedit_errors_total{kind="hook"};
 *   no answer within --auth-timeout                        refused: 503 AUTH_TIMEOUT, logged
 *                                                          and counted the same way (the
 *                                                          hook's `signal` is aborted).
 * So a broken or slow hook fails closed, and a y-websocket provider (which retries any
 * HTTP refusal) gets in once it works again.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import type { Logger } from 'pino'
import { CoeditError } from '../errors.js'
import { OPEN_GRANT, userIdOf, type Access, type AuthResult, type Authenticator, type Grant } from './auth.js'
import type { Containment } from '../base/containment.js'

/** The HTTP request a client connected with, as the `authenticate` hook sees it. */
export interface AuthRequest {
  /** Its headers (names in lower case, as Node gives them). */
  readonly headers: IncomingHttpHeaders
  /** Its cookies, from the Cookie header (a name sent twice: the first). */
  readonly cookies: Readonly<Record<string, string>>
  /** The client's address (behind --trust-proxy: the last X-Forwarded-For hop). */
  readonly ip: string
}

export interface AuthenticateEvent {
  /** The room (document) asked for. */
  room: string
  /** The client's token: the `token` query parameter, an `Authorization: Bearer` header, or a Hocuspocus provider's `token`. */
  token: string | undefined
  request: AuthRequest
  /** Aborted when the server stops waiting (--auth-timeout). */
  signal: AbortSignal
}

export interface Authenticated {
  access: Access
  user?: { id: string; name?: string }
}

export type AuthenticateHook = (event: AuthenticateEvent) => Authenticated | false | Promise<Authenticated | false>

export interface AuthorizerOptions {
  /** The embedder's hook: replaces token checking entirely. */
  hook?: AuthenticateHook
  /** JWT checking (--auth-secret / --auth-public-key); used when there is no hook. */
  tokens?: Authenticator
  /** ms an authentication may take (--auth-timeout). */
  timeout: number
  containment: Containment
  log: Logger
}

/** What `authorize` is asked. */
export interface AuthorizeRequest {
  room: string
  token: string | undefined
  request: AuthRequest
}

/** Longest refusal reason taken from a hook's error (a WebSocket close reason holds 123 bytes). */
const MAX_REASON = 100

export class Authorizer {
  constructor(private readonly options: AuthorizerOptions) {}

  /** The hook reads the request: callers keep it (headers, cookies) only when this is true. */
  get usesRequest(): boolean {
    return this.options.hook !== undefined
  }

  /** Who decides, for logs and the README: 'hook', 'tokens' or 'open'. */
  get mode(): 'hook' | 'tokens' | 'open' {
    return this.options.hook ? 'hook' : this.options.tokens ? 'tokens' : 'open'
  }

  /** Never rejects: every failure is a refusal with a status, code and reason. */
  async authorize({ room, token, request }: AuthorizeRequest): Promise<AuthResult> {
    const { hook, tokens } = this.options
    if (hook) return this.runHook(hook, room, token, request)
    if (!tokens) return { ok: true, grant: OPEN_GRANT }
    try {
      return await this.bounded(tokens.authorize(token, room), new AbortController())
    } catch (err) {
      if (err instanceof CoeditError && err.code === 'AUTH_TIMEOUT') return this.timedOut(room, 'tokens')
      this.options.log.error({ event: 'auth_failed', room, err: String(err) }, 'token check failed')
      return { ok: false, status: 500, code: 'AUTH_ERROR', reason: 'internal error' }
    }
  }

  private async runHook(hook: AuthenticateHook, room: string, token: string | undefined, request: AuthRequest): Promise<AuthResult> {
    const controller = new AbortController()
    let answer: unknown
    try {
      answer = await this.bounded(Promise.resolve().then(() => hook({ room, token, request, signal: controller.signal })), controller)
    } catch (err) {
      if (err instanceof CoeditError && err.code === 'AUTH_TIMEOUT') return this.timedOut(room, 'hook')
      const status = (err as { status?: unknown } | null)?.status
      if (status === 401 || status === 403) {
        const message = err instanceof Error ? err.message : ''
        const reason = printable(message).slice(0, MAX_REASON) || 'refused'
        this.options.log.info({ event: 'auth_refused', room, status, reason }, 'authenticate hook refused')
        return { ok: false, status, code: 'AUTH_REFUSED', reason }
      }
      this.options.containment.report('hook', err, { hook: 'authenticate', room })
      return { ok: false, status: 500, code: 'AUTH_ERROR', reason: 'internal error' }
    }
    if (answer === false) return { ok: false, status: 403, code: 'AUTH_REFUSED', reason: 'refused' }
    const grant = grantOf(answer, room)
    if (!grant) {
      this.options.containment.report('hook', new TypeError('authenticate must return false or { access: "read" | "write", user?: { id, name? } } (id and name: 1-256 characters, no control characters)'), { hook: 'authenticate', room })
      return { ok: false, status: 500, code: 'AUTH_ERROR', reason: 'internal error' }
    }
    return { ok: true, grant }
  }

  /** `work`, or an AUTH_TIMEOUT rejection (aborting `controller`) after the timeout. */
  private bounded<T>(work: Promise<T>, controller: AbortController): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort()
        reject(new CoeditError('AUTH_TIMEOUT', `authentication took longer than ${this.options.timeout} ms`))
      }, this.options.timeout)
    })
    // The loser of the race must not become an unhandled rejection.
    work.catch(() => {})
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer))
  }

  private timedOut(room: string, by: 'hook' | 'tokens'): AuthResult {
    this.options.containment.report('hook', new CoeditError('AUTH_TIMEOUT', `no answer within ${this.options.timeout} ms (--auth-timeout)`), { hook: 'authenticate', by, room })
    return { ok: false, status: 503, code: 'AUTH_TIMEOUT', reason: 'authentication timed out, try again later' }
  }
}

function grantOf(answer: unknown, room: string): Grant | undefined {
  if (typeof answer !== 'object' || answer === null) return undefined
  const { access, user } = answer as { access?: unknown; user?: unknown }
  if (access !== 'read' && access !== 'write') return undefined
  if (user === undefined) return { access, rooms: [room], expiresAt: undefined }
  if (typeof user !== 'object' || user === null) return undefined
  const { id, name } = user as { id?: unknown; name?: unknown }
  const userId = userIdOf(id)
  if (userId === undefined) return undefined
  if (name === undefined) return { access, rooms: [room], expiresAt: undefined, user: { id: userId } }
  const userName = userIdOf(name)
  if (userName === undefined) return undefined
  return { access, rooms: [room], expiresAt: undefined, user: { id: userId, name: userName } }
}

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g
function printable(text: string): string {
  return text.replace(CONTROL, ' ').trim()
}

/** The request as the hook sees it; cookies are parsed on first use. */
export function authRequestOf(req: IncomingMessage, ip: string): AuthRequest {
  const headers = req.headers
  let cookies: Record<string, string> | undefined
  return {
    headers,
    ip,
    get cookies() {
      return cookies ??= parseCookies(headers.cookie)
    },
  }
}

/** For clients whose request nobody reads (no hook): keeps no headers alive. */
export const NO_REQUEST: AuthRequest = Object.freeze({ headers: Object.freeze({}), cookies: Object.freeze({}), ip: '' })

/**
 * The Cookie header as name → value (RFC 6265 `name=value; name2=value2`): a quoted value
 * is unquoted, percent-escapes decoded where they are valid, the first of a repeated name
 * kept. The object has no prototype: a cookie named `__proto__` or `constructor` is just
 * a cookie.
 */
export function parseCookies(header: string | undefined): Record<string, string> {
  const cookies = Object.create(null) as Record<string, string>
  if (!header) return cookies
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    const name = part.slice(0, eq).trim()
    if (name === '' || name in cookies) continue
    let value = part.slice(eq + 1).trim()
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1)
    cookies[name] = decode(value)
  }
  return cookies
}

function decode(value: string): string {
  if (!value.includes('%')) return value
  try {
    return decodeURIComponent(value)
  } catch {
    return value
  }
}
