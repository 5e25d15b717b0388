/**
 * Who may connect: JWT access tokens (which rooms, read or write, until when) and
 * the browser origin check. Pure policy: the transport asks, this module answers.
 *
 * A token is a JWT signed with HS256 (`--auth-secret`) or ES256/RS256
 * (`--auth-public-key`), carried in the `token` query parameter (browsers cannot set
 * headers on a WebSocket) or an `Authorization: Bearer` header. Claims:
 *
 *   rooms   string or string[]: exact room names or globs (`*` = any run of
 *           characters except `/`, `**` = any run including `/`)
 *   access  'write' or 'read' (absent = 'read': the least a token can mean)
 *   exp     expiry (seconds since the epoch), checked at the upgrade and enforced
 *           during the session
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose'
import { CoeditError, type ErrorCode } from '../errors.js'
import { compileGlob, globMatches } from './glob.js'

export type Access = 'read' | 'write'

export interface Grant {
  readonly access: Access
  readonly rooms: readonly string[]
  /** ms since the epoch, or undefined for a token without `exp`. */
  readonly expiresAt: number | undefined
  /** Who connects: the token's `sub` claim as `id`, or what the `authenticate` hook said. The history log records `id`. */
  readonly user?: { readonly id: string; readonly name?: string }
}

export type AuthResult =
  | { ok: true; grant: Grant }
  /** 401/403: no or bad credentials / not for this room; 500: the check broke; 503: it timed out (server/transport/authorizer.ts). */
  | { ok: false; status: 401 | 403 | 500 | 503; code: ErrorCode; reason: string }

/** HS256 needs a key at least as long as its hash (RFC 7518 §3.2). */
export const MIN_SECRET_BYTES = 32

/**
 * The server refuses shorter HS256 secrets; so does `coedit token`, rather than sign tokens no
 * server accepts. `source` names where the secret came from (`--auth-secret`, `AUTH_SECRET`).
 */
export function checkAuthSecret(secret: string, source = '--auth-secret'): void {
  const bytes = Buffer.byteLength(secret, 'utf8')
  if (bytes < MIN_SECRET_BYTES) {
    throw new CoeditError('AUTH_SECRET_TOO_SHORT', `${source} must be at least ${MIN_SECRET_BYTES} bytes, not ${bytes} (make one: openssl rand -base64 32)`)
  }
}

/** The grant of every connection when tokens are off. */
export const OPEN_GRANT: Grant = { access: 'write', rooms: ['**'], expiresAt: undefined }

type Alg = 'HS256' | 'ES256' | 'RS256'

export class Authenticator {
  private constructor(private readonly key: Uint8Array | KeyObject, private readonly alg: Alg) {}

  /** Undefined when tokens are off (neither option set). Throws CoeditError on a bad key. */
  static fromOptions(options: { authSecret: string; authPublicKey: string }): Authenticator | undefined {
    if (options.authSecret) {
      checkAuthSecret(options.authSecret)
      return new Authenticator(new TextEncoder().encode(options.authSecret), 'HS256')
    }
    if (options.authPublicKey) {
      const key = readKey(options.authPublicKey, 'public')
      return new Authenticator(key, algorithmOf(key, options.authPublicKey))
    }
    return undefined
  }

  get algorithm(): Alg {
    return this.alg
  }

  /** Checks `token` for `room`: 401 if missing, forged, malformed or expired; 403 if it does not cover the room. */
  async authorize(token: string | undefined, room: string): Promise<AuthResult> {
    if (!token) return { ok: false, status: 401, code: 'TOKEN_MISSING', reason: 'a token is required (token query parameter or Authorization: Bearer)' }
    let payload: Record<string, unknown>
    try {
      payload = (await jwtVerify(token, this.key, { algorithms: [this.alg] })).payload
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) return { ok: false, status: 401, code: 'TOKEN_EXPIRED', reason: 'token expired' }
      return { ok: false, status: 401, code: 'TOKEN_INVALID', reason: 'token is not valid' }
    }
    const grant = grantOf(payload)
    if (!grant) return { ok: false, status: 401, code: 'TOKEN_INVALID', reason: 'token claims are not valid (rooms, access)' }
    if (!grant.rooms.some((p) => roomMatches(p, room))) {
      return { ok: false, status: 403, code: 'ROOM_FORBIDDEN', reason: 'token does not grant this room' }
    }
    return { ok: true, grant }
  }
}

function grantOf(payload: Record<string, unknown>): Grant | undefined {
  const rooms = typeof payload.rooms === 'string' ? [payload.rooms] : payload.rooms
  if (!Array.isArray(rooms) || !rooms.every((r): r is string => typeof r === 'string' && r.length > 0)) return undefined
  const access = payload.access ?? 'read'
  if (access !== 'read' && access !== 'write') return undefined
  const exp = payload.exp
  const sub = userIdOf(payload.sub)
  return { access, rooms, expiresAt: typeof exp === 'number' ? exp * 1000 : undefined, ...(sub === undefined ? {} : { user: { id: sub } }) }
}

/** Longest `sub` kept as a user id: it is stored with every update of the connection. */
export const MAX_USER_ID_LENGTH = 256

/** A `sub` usable as a user id: a non-empty string, not too long, no control characters (it is printed by the CLI). */
export function userIdOf(sub: unknown): string | undefined {
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > MAX_USER_ID_LENGTH) return undefined
  return /[\u0000-\u001f\u007f-\u009f]/.test(sub) ? undefined : sub
}

/** Exact name, or a glob: `*` matches within one `/`-separated segment, `**` across segments (server/transport/glob.ts: linear time). */
export function roomMatches(pattern: string, room: string): boolean {
  if (!pattern.includes('*')) return pattern === room
  return globMatches(compileGlob(pattern), room)
}

/** The token of an upgrade request: `?token=` first (what browsers can send), then `Authorization: Bearer`. */
export function tokenOf(req: IncomingMessage, url: URL): string | undefined {
  const fromQuery = url.searchParams.get('token')
  if (fromQuery) return fromQuery
  const header = req.headers.authorization
  const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null
  return m?.[1]
}

function readKey(file: string, kind: 'public' | 'private'): KeyObject {
  let pem: Buffer
  try {
    pem = readFileSync(file)
  } catch (err) {
    throw new CoeditError('AUTH_KEY_UNREADABLE', `cannot read ${kind} key ${file}: ${(err as Error).message}`, { cause: err })
  }
  try {
    return kind === 'public' ? createPublicKey(pem) : createPrivateKey(pem)
  } catch (err) {
    throw new CoeditError('AUTH_KEY_INVALID', `${file} is not a PEM ${kind} key: ${(err as Error).message}`, { cause: err })
  }
}

function algorithmOf(key: KeyObject, file: string): Alg {
  if (key.asymmetricKeyType === 'rsa') return 'RS256'
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256'
  throw new CoeditError('AUTH_KEY_UNSUPPORTED', `${file}: only EC P-256 (ES256) and RSA (RS256) keys are supported`)
}

export interface TokenRequest {
  rooms: string[]
  access: Access
  /** Lifetime in ms. */
  ttl: number
  /** HS256 secret, or a PEM private key file (EC P-256 → ES256, RSA → RS256). */
  secret?: string
  privateKeyFile?: string
  /** The `sub` claim: the user id the history log records for the holder's changes. */
  sub?: string
}

/** Signs an access token (for `coedit token` and tests). */
export async function signToken(request: TokenRequest): Promise<string> {
  let key: Uint8Array | KeyObject
  let alg: Alg
  if (request.privateKeyFile) {
    key = readKey(request.privateKeyFile, 'private')
    alg = algorithmOf(key, request.privateKeyFile)
  } else if (request.secret) {
    key = new TextEncoder().encode(request.secret)
    alg = 'HS256'
  } else {
    throw new CoeditError('AUTH_KEY_MISSING', 'a secret or a private key is needed to sign a token')
  }
  const now = Math.floor(Date.now() / 1000)
  const jwt = new SignJWT({ rooms: request.rooms, access: request.access })
  if (request.sub !== undefined) jwt.setSubject(request.sub)
  return jwt
    .setProtectedHeader({ alg, typ: 'JWT' })
    .setIssuedAt(now)
    .setExpirationTime(now + Math.max(1, Math.round(request.ttl / 1000)))
    .sign(key)
}

/**
 * Parsed `--allowed-origins`: '*' or a list of origins (scheme://host[:port]); an entry
 * `scheme://host:*` (kept in that form) allows every port of that host, for development
 * servers that pick a port (`http://localhost:*`).
 */
export type OriginPolicy = '*' | readonly string[]

const ANY_PORT = /^([a-z][a-z0-9+.-]*:\/\/[^/?#]+):\*\/?$/i

export function parseAllowedOrigins(text: string): OriginPolicy {
  const items = text.split(',').map((s) => s.trim()).filter(Boolean)
  if (items.includes('*')) return '*'
  return items.map((item) => {
    const bad = (): never => {
      throw new CoeditError('BAD_ORIGIN', `--allowed-origins: "${item}" is not an origin like https://example.com or http://localhost:*`)
    }
    const wildcard = ANY_PORT.exec(item)
    let origin: string
    try {
      origin = new URL(wildcard ? wildcard[1]! : item).origin
    } catch {
      return bad()
    }
    if (origin === 'null') return bad()
    if (!wildcard) return origin
    // new URL dropped a default port only: any other port in "host:*" is a typo.
    if (new URL(origin).port !== '' || /:\d+$/.test(wildcard[1]!)) return bad()
    return `${origin}:*`
  })
}

/**
 * Browsers always send `Origin` on a WebSocket upgrade; other clients usually do not,
 * and a missing Origin cannot be a cross-site page, so it passes. The server's own
 * origin (same host as the request) always passes: that is the editor.
 */
export function originAllowed(req: IncomingMessage, policy: OriginPolicy, trustProxy: boolean): boolean {
  const origin = req.headers.origin
  if (origin === undefined || policy === '*') return true
  let parsed: URL
  try {
    parsed = new URL(origin)
  } catch {
    return false
  }
  const forwarded = trustProxy ? firstHeader(req.headers['x-forwarded-host'])?.split(',')[0]?.trim() : undefined
  const host = forwarded || req.headers.host
  if (host !== undefined && parsed.host === host.toLowerCase()) return true
  const anyPort = `${parsed.protocol}//${parsed.hostname}:*`
  return policy.includes(parsed.origin) || policy.includes(anyPort)
}

/** The client's address: the socket's peer, or (trusted proxy) the last X-Forwarded-For hop. */
export function clientAddress(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const hops = firstHeader(req.headers['x-forwarded-for'])?.split(',').map((s) => s.trim()).filter(Boolean)
    const last = hops?.[hops.length - 1]
    if (last) return last
  }
  return req.socket.remoteAddress ?? 'unknown'
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}
