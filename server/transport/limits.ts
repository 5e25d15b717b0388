/**
 * Resource limits that do not belong to one module: token buckets for per-connection
 * rates and the per-address connection count. (The checks on what an update claims
 * are in update-checks.ts.)
 */

/** A rate bucket holds this many seconds' worth of its rate: bursts up to that pass. */
export const RATE_BURST_SECONDS = 10

/** A classic token bucket: `rate` tokens a second, at most `capacity` saved up. */
export class TokenBucket {
  private tokens: number
  private last: number

  constructor(readonly rate: number, readonly capacity: number, now = performance.now()) {
    this.tokens = capacity
    this.last = now
  }

  /** Takes `n` tokens if there are enough; false (taking nothing) otherwise. */
  take(n: number, now = performance.now()): boolean {
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.rate)
    this.last = now
    if (this.tokens < n) return false
    this.tokens -= n
    return true
  }
}

export type RateVerdict = { ok: true } | { ok: false; code: 'MESSAGE_RATE' | 'BYTE_RATE' }

/** The message and byte buckets of one connection; a rate of 0 means no limit. */
export class ConnectionRate {
  private readonly messages: TokenBucket | undefined
  private readonly bytes: TokenBucket | undefined

  constructor(messagesPerSecond: number, bytesPerSecond: number) {
    this.messages = messagesPerSecond > 0 ? new TokenBucket(messagesPerSecond, messagesPerSecond * RATE_BURST_SECONDS) : undefined
    this.bytes = bytesPerSecond > 0 ? new TokenBucket(bytesPerSecond, bytesPerSecond * RATE_BURST_SECONDS) : undefined
  }

  admit(byteLength: number): RateVerdict {
    const now = performance.now()
    if (this.messages && !this.messages.take(1, now)) return { ok: false, code: 'MESSAGE_RATE' }
    if (this.bytes && !this.bytes.take(byteLength, now)) return { ok: false, code: 'BYTE_RATE' }
    return { ok: true }
  }
}

/**
 * Open connections per client address; `max` 0 means no limit. Loopback addresses are
 * not limited unless `exemptLoopback` is false (--no-loopback-exempt): they are this
 * machine (a local tool, a load test) or a reverse proxy whose clients cannot be told
 * apart without --trust-proxy, and limiting the proxy would cap the whole server.
 */
export class AddressCounter {
  private readonly counts = new Map<string, number>()

  constructor(private readonly max: number, private readonly exemptLoopback = true) {}

  /** Counts a connection from `address`, or returns false if it is at the limit. */
  acquire(address: string): boolean {
    const n = this.counts.get(address) ?? 0
    if (this.max > 0 && n >= this.max && !(this.exemptLoopback && isLoopback(address))) return false
    this.counts.set(address, n + 1)
    return true
  }

  release(address: string): void {
    const n = (this.counts.get(address) ?? 0) - 1
    if (n <= 0) this.counts.delete(address)
    else this.counts.set(address, n)
  }

  count(address: string): number {
    return this.counts.get(address) ?? 0
  }
}

/** 127.0.0.0/8, ::1, and their IPv4-mapped IPv6 forms. */
export function isLoopback(address: string): boolean {
  return address === '::1' || /^(?:::ffff:)?127\./i.test(address)
}

/** Addresses whose new-room budget is tracked at most; beyond it the oldest entry goes first. */
const MAX_TRACKED_ADDRESSES = 10_000

/**
 * New rooms per client address: a token bucket per address holding `perMinute` rooms and
 * refilled at `perMinute` a minute; `perMinute` 0 means no limit. Loopback is exempt, for
 * the reasons given at AddressCounter.
 */
export class NewRoomLimiter {
  private readonly buckets = new Map<string, TokenBucket>()

  constructor(private readonly perMinute: number, private readonly exemptLoopback = true) {}

  /** Takes one new room from `address`'s budget, or returns false if it is spent. */
  admit(address: string, now = performance.now()): boolean {
    if (this.perMinute <= 0 || (this.exemptLoopback && isLoopback(address))) return true
    let bucket = this.buckets.get(address)
    if (!bucket) {
      // Evicting the oldest entry forgets a budget, at worst giving one address a fresh burst.
      if (this.buckets.size >= MAX_TRACKED_ADDRESSES) this.buckets.delete(this.buckets.keys().next().value!)
      bucket = new TokenBucket(this.perMinute / 60, this.perMinute, now)
      this.buckets.set(address, bucket)
    }
    return bucket.take(1, now)
  }
}

/**
 * Request and byte rates per client address, for HTTP requests (the document API), where
 * there is no connection to hold a ConnectionRate: the same rates and bursts, keyed by
 * address; a rate of 0 means no limit. Loopback is exempt unless `exemptLoopback` is false,
 * for the reasons given at AddressCounter.
 */
export class AddressRates {
  private readonly buckets = new Map<string, { messages: TokenBucket | undefined; bytes: TokenBucket | undefined }>()

  constructor(private readonly messagesPerSecond: number, private readonly bytesPerSecond: number, private readonly exemptLoopback = true) {}

  /** Takes one request from `address`'s budget (before its body is read). */
  admitRequest(address: string, now = performance.now()): RateVerdict {
    const entry = this.entry(address, now)
    if (entry?.messages && !entry.messages.take(1, now)) return { ok: false, code: 'MESSAGE_RATE' }
    return { ok: true }
  }

  /** Takes a body's bytes from `address`'s budget (once it has been read). */
  admitBytes(address: string, byteLength: number, now = performance.now()): RateVerdict {
    const entry = this.entry(address, now)
    if (entry?.bytes && !entry.bytes.take(byteLength, now)) return { ok: false, code: 'BYTE_RATE' }
    return { ok: true }
  }

  private entry(address: string, now: number): { messages: TokenBucket | undefined; bytes: TokenBucket | undefined } | undefined {
    if ((this.messagesPerSecond <= 0 && this.bytesPerSecond <= 0) || (this.exemptLoopback && isLoopback(address))) return undefined
    let entry = this.buckets.get(address)
    if (!entry) {
      if (this.buckets.size >= MAX_TRACKED_ADDRESSES) this.buckets.delete(this.buckets.keys().next().value!)
      entry = {
        messages: this.messagesPerSecond > 0 ? new TokenBucket(this.messagesPerSecond, this.messagesPerSecond * RATE_BURST_SECONDS, now) : undefined,
        bytes: this.bytesPerSecond > 0 ? new TokenBucket(this.bytesPerSecond, this.bytesPerSecond * RATE_BURST_SECONDS, now) : undefined,
      }
      this.buckets.set(address, entry)
    }
    return entry
  }
}
