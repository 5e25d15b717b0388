/**
 * Resource limits that do not belong to one module: token buckets for per-connection
 * rates, the per-address connection count, and the plausibility check on the clocks
 * and lengths an update claims.
 */
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import { ProtocolError } from './protocol.js'

/** A rate bucket holds this many seconds' worth of its rate: bursts up to that pass. */
export const RATE_BURST_SECONDS = 10

/**
 * No clock or length in an update may reach past this, whatever the room holds:
 * a trillion operations by one client is not a document, it is an attack, and
 * numbers near 2^53 stop being exact.
 */
export const MAX_CLOCK = 2 ** 40

interface ID { client: number; clock: number }

/**
 * An item can only point at items that existed when it was made: a reference to its
 * own client at or past its own clock is a forgery. Yjs trusts such references (it
 * only checks other clients' ones for missing dependencies) and throws halfway
 * through integrating them, after the update is stored, or later, when the update
 * waits as pending until its other dependencies arrive. Found by test/fuzz.test.ts.
 */
function checkOwnReferences(s: { id: ID; origin?: ID | null; rightOrigin?: ID | null; parent?: unknown }): void {
  const parent = s.parent instanceof Y.ID ? s.parent : undefined
  for (const ref of [s.origin, s.rightOrigin, parent]) {
    if (ref && ref.client === s.id.client && !(ref.clock < s.id.clock)) {
      throw new ProtocolError('IMPLAUSIBLE_CLOCK', `item ${s.id.client}:${s.id.clock} refers to ${ref.client}:${ref.clock}, which cannot precede it`)
    }
  }
}

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
 * not limited: they are this machine (a local tool, a load test) or a reverse proxy
 * whose clients cannot be told apart without --trust-proxy, and limiting the proxy
 * would cap the whole server.
 */
export class AddressCounter {
  private readonly counts = new Map<string, number>()

  constructor(private readonly max: number) {}

  /** Counts a connection from `address`, or returns false if it is at the limit. */
  acquire(address: string): boolean {
    const n = this.counts.get(address) ?? 0
    if (this.max > 0 && n >= this.max && !isLoopback(address)) return false
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

/**
 * Refuses an update whose structs or deletions reach implausibly far past what the
 * room has of each client: a well-formed update can claim a deleted range of 2^52
 * items, or an item at clock 2^50, and would be stored (and served) forever.
 *
 * Allowed: for each client, every struct and deleted range ends at most `maxAdvance`
 * clock units past the room's state for that client, and never past MAX_CLOCK.
 * A legitimate client only ever extends its own clock by what it actually did.
 */
export function checkUpdateClocks(update: Uint8Array, stateOf: (client: number) => number, maxAdvance: number): { overlaps: boolean } {
  // The caller has already validated the bytes; decoding again cannot throw.
  const { structs, ds } = Y.decodeUpdate(update) as unknown as {
    structs: Array<{ id: ID; length: number; origin?: ID | null; rightOrigin?: ID | null; parent?: unknown }>
    ds: { clients: Map<number, Array<{ clock: number; len: number }>> }
  }
  for (const s of structs) checkOwnReferences(s)
  const overlaps = structs.some((s) => s.id.clock < stateOf(s.id.client))
  if (!maxAdvance) return { overlaps }
  const limitOf = (client: number): number => Math.min(MAX_CLOCK, stateOf(client) + maxAdvance)
  for (const s of structs) {
    const end = s.id.clock + s.length
    if (!(end <= limitOf(s.id.client))) {
      throw new ProtocolError('IMPLAUSIBLE_CLOCK', `update claims clock ${end} for client ${s.id.client}, beyond the allowed ${limitOf(s.id.client)}`)
    }
  }
  for (const [client, ranges] of ds.clients) {
    for (const r of ranges) {
      const end = r.clock + r.len
      if (!(end <= limitOf(client))) {
        throw new ProtocolError('IMPLAUSIBLE_CLOCK', `update deletes up to clock ${end} of client ${client}, beyond the allowed ${limitOf(client)}`)
      }
    }
  }
  return { overlaps }
}

/**
 * Applies `update` to a copy of `doc` and throws BAD_UPDATE if Yjs cannot integrate it.
 * For updates that overlap what the room already has (a reconnecting client's sync
 * step 2, or a forgery): Yjs integrates such structs from an offset, and a forged one
 * (content over a range the room holds as garbage-collected) throws halfway, after
 * storage. O(document), so only for overlapping updates, never for plain keystrokes.
 */
export function trialApply(doc: Y.Doc, inflight: Iterable<Uint8Array>, update: Uint8Array): void {
  const scratch = new Y.Doc({ gc: false, guid: 'trial' })
  try {
    Y.applyUpdate(scratch, Y.encodeStateAsUpdate(doc))
    for (const u of inflight) Y.applyUpdate(scratch, u)
    Y.applyUpdate(scratch, update)
  } catch (err) {
    throw new ProtocolError('BAD_UPDATE', `update cannot be integrated: ${(err as Error).message}`)
  } finally {
    scratch.destroy()
  }
}

/** 127.0.0.0/8, ::1, and their IPv4-mapped IPv6 forms. */
export function isLoopback(address: string): boolean {
  return address === '::1' || /^(?:::ffff:)?127\./i.test(address)
}

/**
 * Updates accepted but not yet applied (they are being stored): what the room will hold
 * once they land. Checks against the document alone would miss a forgery sent right
 * behind the update it builds on.
 */
export class InflightUpdates {
  private readonly ends = new Map<Uint8Array, Map<number, number>>()

  add(update: Uint8Array): void {
    this.ends.set(update, Y.parseUpdateMeta(update).to)
  }

  delete(update: Uint8Array): void {
    this.ends.delete(update)
  }

  get updates(): Iterable<Uint8Array> {
    return this.ends.keys()
  }

  /** The room's state vector once everything in flight is applied, encoded. */
  stateVector(doc: Y.Doc): Uint8Array {
    const sv = Y.decodeStateVector(Y.encodeStateVector(doc))
    for (const to of this.ends.values()) for (const [client, clock] of to) sv.set(client, Math.max(sv.get(client) ?? 0, clock))
    const e = encoding.createEncoder()
    encoding.writeVarUint(e, sv.size)
    for (const [client, clock] of sv) {
      encoding.writeVarUint(e, client)
      encoding.writeVarUint(e, clock)
    }
    return encoding.toUint8Array(e)
  }

  /** The room's clock for `client` once everything in flight is applied. */
  stateOf(doc: Y.Doc, client: number): number {
    let state = Y.getState(doc.store, client)
    for (const to of this.ends.values()) state = Math.max(state, to.get(client) ?? 0)
    return state
  }
}
