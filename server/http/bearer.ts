/**
 * Bearer tokens of the HTTP endpoints (admin API, /metrics, the status page's data).
 * Tokens are compared in constant time, and guessing is limited: an address that sent
 * `maxFailures` wrong tokens within `windowMs` is refused with 429 until that window has
 * passed, whatever token it sends meanwhile (so a guess that happens to be right teaches
 * nothing). A request with no token at all is refused (401) but not counted.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { EventSink } from '../base/events.js'

export interface BearerEvents {
  /** `address` sent too many wrong tokens: it is refused (429) for the rest of the window. */
  'token.lockout': { address: string }
}

export type BearerResult =
  | { ok: true }
  | { ok: false; status: 401 }
  | { ok: false; status: 429; retryAfterSeconds: number }

export interface BearerGuardOptions {
  /** The client's address (honours --trust-proxy). */
  addressOf: (req: IncomingMessage) => string
  maxFailures?: number
  windowMs?: number
  /** Where `token.lockout` goes (the log line is subscribed in server.ts). */
  events?: EventSink<BearerEvents>
}

/** Addresses tracked at most; beyond it the oldest entries go first. */
const MAX_TRACKED = 10_000

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

/** The token of `Authorization: Bearer <token>`, or undefined when the request carries none. */
export function bearerOf(req: IncomingMessage): string | undefined {
  const match = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')
  return match ? match[1]!.trim() : undefined
}

function bearerMatches(presented: string, token: string): boolean {
  // Compare digests: equal length, so timingSafeEqual never throws and leaks no length.
  return timingSafeEqual(digest(presented), digest(token))
}

export class BearerGuard {
  private readonly maxFailures: number
  private readonly windowMs: number
  /** Per address: wrong tokens since `since` (insertion order = oldest first, for eviction). */
  private readonly failures = new Map<string, { count: number; since: number }>()

  constructor(private readonly options: BearerGuardOptions) {
    this.maxFailures = options.maxFailures ?? 10
    this.windowMs = options.windowMs ?? 60_000
  }

  check(req: IncomingMessage, token: string): BearerResult {
    if (!token) return { ok: true }
    const address = this.options.addressOf(req)
    const now = Date.now()
    let entry = this.failures.get(address)
    if (entry && now - entry.since >= this.windowMs) {
      this.failures.delete(address)
      entry = undefined
    }
    if (entry && entry.count >= this.maxFailures) {
      return { ok: false, status: 429, retryAfterSeconds: Math.max(1, Math.ceil((entry.since + this.windowMs - now) / 1000)) }
    }
    const presented = bearerOf(req)
    // Only a wrong token counts: requests without one (a browser, a probe, the status page
    // before login) from an address shared with the operator must not lock the operator out.
    if (presented === undefined) return { ok: false, status: 401 }
    if (bearerMatches(presented, token)) return { ok: true }
    if (!entry) {
      if (this.failures.size >= MAX_TRACKED) this.failures.delete(this.failures.keys().next().value!)
      entry = { count: 0, since: now }
      this.failures.set(address, entry)
    }
    if (++entry.count === this.maxFailures) this.options.events?.emit('token.lockout', { address })
    return { ok: false, status: 401 }
  }
}

/** Headers of a refused token: the challenge, or when to try again. */
export function refuse(res: ServerResponse, auth: Exclude<BearerResult, { ok: true }>, realm: string): void {
  if (auth.status === 429) res.setHeader('Retry-After', String(auth.retryAfterSeconds))
  else res.setHeader('WWW-Authenticate', `Bearer realm="${realm}"`)
}
