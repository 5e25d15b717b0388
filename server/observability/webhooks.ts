/**
 * Change webhooks: when a room's document changed, POST a signed notice to every
 * configured URL, at most once per room per debounce window.
 *
 * Nothing here runs on the sync path: `changed()` (called as each update is applied)
 * only marks the room; the notice is built when the window closes and sent from a
 * bounded per-endpoint queue. A slow or dead endpoint costs a few timers and sockets,
 * never latency for editors. Per room, only the newest notice matters: a newer one
 * replaces a queued older one, and deliveries of one room never overtake each other.
 *
 * Each notice lists the users (`user.id`) whose changes it covers: those of its debounce
 * window, and those of any older notice it replaced before that one was delivered (a
 * superseded notice, or a failed one whose retry a newer notice replaced). So a receiver
 * that acknowledged every notice it got has been told every author.
 */
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import * as Y from 'yjs'
import { Redactor } from '../base/redact.js'
import { legacySignature, standardSignatureHeaders, webhookKey } from './webhook-signature.js'
import type { Room } from '../room/room.js'
import { DEFAULT_TEXT_NAME } from '../room/protocol.js'
import type { WebhookResult } from './metrics.js'
import { createContainment, type Containment } from '../base/containment.js'
import type { EventSink } from '../base/events.js'

/** Deprecated, sent for one more release: signs the body only (see webhook-signature.ts). */
export const SIGNATURE_HEADER = 'X-Coedit-Signature'
export const EVENT_DOCUMENT_CHANGED = 'document.changed'
/** Deliveries in flight per endpoint. */
const CONCURRENCY = 4
/** Users listed in one notice; past it `moreUsers` says the list is incomplete. */
export const WEBHOOK_MAX_USERS = 100

/** What the webhooks tell (server/base/events.ts). */
export interface WebhookEvents {
  /** One delivery attempt's result. */
  'webhook.result': { result: WebhookResult }
}

export interface WebhookOptions {
  urls: readonly string[]
  /** HMAC-SHA256 key of the signatures: at least 32 bytes, or `whsec_<base64>` (see webhook-signature.ts). */
  secret: string
  /** ms: a room's changes within this window after its first change make one notice. */
  debounce: number
  /** Send the document's text too (`doc.getText('text')`). */
  includeText: boolean
  /** Attempts after the first failed one. */
  retries: number
  /** ms before the first retry; doubled for each later one. */
  backoff: number
  /** ms a delivery may take before it counts as failed. */
  timeout: number
  /** Rooms waiting per endpoint; beyond it the oldest notice is dropped. */
  maxQueue: number
}

export interface WebhookPayload {
  event: typeof EVENT_DOCUMENT_CHANGED
  room: string
  /** ISO 8601 time the notice was built. */
  time: string
  /** Stored sequence number the document is at: larger is newer (order notices by it). */
  seq: number
  /** Y.encodeStateVector of the document, base64: a receiver can sync from it. */
  stateVector: string
  text?: string
  /** `user.id` of everyone whose changes the notice covers, in the order of their first change (at most WEBHOOK_MAX_USERS). */
  users: string[]
  /** Present (true) when more users made the changes than `users` lists. */
  moreUsers?: true
  /** Present (true) when some of the changes have no known user (an open server, an admin import). */
  anonymous?: true
}

/** Authors of the changes a notice covers. */
class Authors {
  readonly ids = new Set<string>()
  more = false
  anonymous = false

  add(user: string | undefined): void {
    if (user === undefined) this.anonymous = true
    else if (this.ids.has(user)) return
    else if (this.ids.size < WEBHOOK_MAX_USERS) this.ids.add(user)
    else this.more = true
  }

  /** Adds the authors of `payload` (a notice that will not be delivered) to these. */
  absorb(payload: WebhookPayload): void {
    for (const id of payload.users) this.add(id)
    if (payload.moreUsers) this.more = true
    if (payload.anonymous) this.anonymous = true
  }

  fields(): Pick<WebhookPayload, 'users' | 'moreUsers' | 'anonymous'> {
    return { users: [...this.ids], ...(this.more ? { moreUsers: true } : {}), ...(this.anonymous ? { anonymous: true } : {}) }
  }
}

/** `newer` with the authors of `older` (replaced, never to be delivered) added. */
function mergeAuthors(newer: WebhookPayload, older: WebhookPayload): WebhookPayload {
  const authors = new Authors()
  authors.absorb(newer)
  authors.absorb(older)
  return { ...newer, ...authors.fields() }
}


interface Job {
  room: string
  payload: WebhookPayload
  /** The payload as sent: the same bytes for every attempt with one `id`. */
  body: string
  /** X-Coedit-Delivery: the same for every retry of one notice, so receivers can deduplicate. */
  id: string
  attempt: number
  /** Waiting for a retry (or for the room's delivery in flight). */
  timer: NodeJS.Timeout | undefined
  readyAt: number
}

type Report = (result: WebhookResult) => void

class Endpoint {
  private readonly jobs = new Map<string, Job>()
  private readonly inFlight = new Map<string, AbortController>()
  private idle: Array<() => void> = []

  /** For logs: no credentials or query string (either may hold a secret). */
  private readonly shown: string
  /** The URL fetch gets: fetch refuses one with credentials (quoting it whole in the error). */
  private readonly target: string
  /** `Authorization: Basic` from the URL's `user:password@`, which is what such a URL means. */
  private readonly authorization: string | undefined
  private readonly redactor: Redactor

  constructor(
    readonly url: string,
    private readonly key: Buffer,
    private readonly options: WebhookOptions,
    private readonly log: Logger,
    private readonly report: Report,
  ) {
    const u = new URL(url)
    this.shown = `${u.origin}${u.pathname}`
    this.redactor = new Redactor([url])
    if (u.username || u.password) {
      this.authorization = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`
      u.username = ''
      u.password = ''
    }
    this.target = u.toString()
  }

  get size(): number {
    return this.jobs.size + this.inFlight.size
  }

  enqueue(room: string, payload: WebhookPayload): void {
    const queued = this.jobs.get(room)
    if (queued) {
      // Superseded: the newer state is the news, and covers the older notice's authors; a retry schedule is kept.
      queued.payload = mergeAuthors(payload, queued.payload)
      queued.body = JSON.stringify(queued.payload)
      queued.id = randomUUID()
      return
    }
    if (this.jobs.size >= this.options.maxQueue) {
      const oldest = this.jobs.values().next().value as Job
      this.remove(oldest)
      this.report('dropped')
      this.log.error({ event: 'webhook_dropped', url: this.shown, room: oldest.room, reason: 'queue_full' }, 'webhook queue full, dropping the oldest notice')
    }
    this.jobs.set(room, { room, payload, body: JSON.stringify(payload), id: randomUUID(), attempt: 0, timer: undefined, readyAt: 0 })
    this.pump()
  }

  private remove(job: Job): void {
    if (job.timer) clearTimeout(job.timer)
    this.jobs.delete(job.room)
  }

  private pump(): void {
    const now = Date.now()
    for (const job of this.jobs.values()) {
      if (this.inFlight.size >= CONCURRENCY) break
      if (job.readyAt > now || this.inFlight.has(job.room)) continue
      this.remove(job)
      void this.send(job)
    }
    if (this.size === 0) this.settle()
  }

  private async send(job: Job): Promise<void> {
    const controller = new AbortController()
    this.inFlight.set(job.room, controller)
    const timeout = setTimeout(() => controller.abort(), this.options.timeout)
    let failure: Record<string, unknown> | undefined
    try {
      const res = await fetch(this.target, {
        method: 'POST',
        body: job.body,
        redirect: 'manual',
        signal: controller.signal,
        headers: {
          'Content-Type': 'application/json',
          'User-Agent': 'coedit-webhook',
          ...(this.authorization ? { Authorization: this.authorization } : {}),
          // Signed per attempt: the timestamp is this attempt's, the id the notice's.
          ...standardSignatureHeaders(this.key, job.id, Date.now(), job.body),
          'X-Coedit-Event': EVENT_DOCUMENT_CHANGED,
          'X-Coedit-Delivery': job.id,
          [SIGNATURE_HEADER]: legacySignature(this.options.secret, job.body),
        },
      })
      // Read the body so the connection can be reused.
      await res.arrayBuffer().catch(() => undefined)
      if (res.status < 200 || res.status > 299) failure = { status: res.status }
    } catch (err) {
      // Errors of fetch can quote the URL, credentials and query included.
      failure = { err: controller.signal.aborted ? 'timeout or shutdown' : this.redactor.text(String((err as Error & { cause?: unknown }).cause ?? err)) }
    } finally {
      clearTimeout(timeout)
      this.inFlight.delete(job.room)
    }
    if (!failure) {
      this.report('delivered')
      this.log.debug({ event: 'webhook_delivered', url: this.shown, room: job.room, attempt: job.attempt + 1 }, 'webhook delivered')
    } else {
      this.report('failed')
      this.retry(job, failure)
    }
    this.pump()
  }

  private retry(job: Job, failure: Record<string, unknown>): void {
    const fields = { url: this.shown, room: job.room, attempt: job.attempt + 1, ...failure }
    // A newer notice of the room is queued (never sent yet): it replaces this one, authors included, and keeps its place.
    const newer = this.jobs.get(job.room)
    if (newer) {
      newer.payload = mergeAuthors(newer.payload, job.payload)
      newer.body = JSON.stringify(newer.payload)
      this.log.warn({ event: 'webhook_failed', ...fields }, 'webhook delivery failed; a newer notice is queued')
      return
    }
    if (job.attempt >= this.options.retries) {
      this.report('dropped')
      this.log.error({ event: 'webhook_dropped', reason: 'retries_exhausted', ...fields }, 'webhook delivery failed, giving up')
      return
    }
    const delay = this.options.backoff * 2 ** job.attempt
    this.log.warn({ event: 'webhook_failed', retryIn: delay, ...fields }, 'webhook delivery failed, will retry')
    job.attempt++
    job.readyAt = Date.now() + delay
    job.timer = setTimeout(() => {
      job.timer = undefined
      // Due now, whatever Date.now() says: timers run on libuv's monotonic clock and can
      // fire a millisecond before the wall clock reaches readyAt. Re-checking it here left
      // the notice waiting with no timer, forever.
      job.readyAt = 0
      this.pump()
    }, delay)
    job.timer.unref()
    this.jobs.set(job.room, job)
  }

  private settle(): void {
    const waiting = this.idle
    this.idle = []
    for (const resolve of waiting) resolve()
  }

  /** Resolves when nothing is queued or in flight (retries waiting count as queued). */
  whenIdle(): Promise<void> {
    if (this.size === 0) return Promise.resolve()
    return new Promise((resolve) => this.idle.push(resolve))
  }

  /** Cancels retries and aborts what is in flight. */
  stop(): void {
    for (const job of [...this.jobs.values()]) this.remove(job)
    for (const controller of this.inFlight.values()) controller.abort()
    this.settle()
  }
}

export class Webhooks {
  private readonly endpoints: Endpoint[]
  private readonly dirty = new Map<string, { room: Room; timer: NodeJS.Timeout; authors: Authors }>()
  /** Shutting down: notices go out at once, there is no later window. */
  private immediate = false

  private readonly containment: Containment

  constructor(private readonly options: WebhookOptions, private readonly log: Logger, events: EventSink<WebhookEvents>, containment?: Containment) {
    // Throws WEBHOOK_SECRET_TOO_SHORT: startServer refuses a short secret as the CLI does.
    const key = webhookKey(options.secret)
    const report: Report = (result) => events.emit('webhook.result', { result })
    this.endpoints = options.urls.map((url) => new Endpoint(url, key, options, log, report))
    this.containment = containment ?? createContainment({ log })
  }

  /** Notices waiting or in flight, all endpoints. */
  get queued(): number {
    return this.endpoints.reduce((n, e) => n + e.size, 0) + this.dirty.size * this.endpoints.length
  }

  /** The room's document changed, by `user` (its id, if known). Called as each update is applied: must stay O(1). */
  changed(room: Room, user?: string): void {
    const pending = this.dirty.get(room.name)
    if (pending) {
      pending.room = room
      pending.authors.add(user)
      return
    }
    const authors = new Authors()
    authors.add(user)
    if (this.immediate) {
      this.fire(room, authors)
      return
    }
    const timer = setTimeout(() => this.fire(room), this.options.debounce)
    timer.unref()
    this.dirty.set(room.name, { room, timer, authors })
  }

  /** The room is about to be unloaded: send its pending notice while its document is readable. */
  unloading(room: Room): void {
    const pending = this.dirty.get(room.name)
    if (pending?.room === room) this.fire(room)
  }

  private fire(room: Room, authors = new Authors()): void {
    const pending = this.dirty.get(room.name)
    if (pending) {
      clearTimeout(pending.timer)
      this.dirty.delete(room.name)
      room = pending.room
      authors = pending.authors
    }
    if (room.isDestroyed) return
    const target = room
    // Runs on a timer and reads a document clients wrote: an exception drops this notice.
    const payload = this.containment.run('webhook', (): WebhookPayload => {
      this.containment.check('webhook', target.name)
      return {
        event: EVENT_DOCUMENT_CHANGED,
        room: target.name,
        time: new Date().toISOString(),
        seq: target.lastApplied,
        stateVector: Buffer.from(Y.encodeStateVector(target.doc)).toString('base64'),
        ...(this.options.includeText ? { text: target.doc.getText(DEFAULT_TEXT_NAME).toString() } : {}),
        ...authors.fields(),
      }
    }, { room: target.name })
    if (payload === undefined) return
    for (const endpoint of this.endpoints) endpoint.enqueue(room.name, payload)
  }

  /** Shutdown, first step (rooms still loaded): send every pending notice now, and later ones at once. */
  flushPending(): void {
    this.immediate = true
    for (const { room } of [...this.dirty.values()]) this.fire(room)
  }

  /** Shutdown, last step: waits up to `timeout` ms for deliveries, then abandons the rest. */
  async close(timeout: number): Promise<void> {
    this.flushPending()
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.all(this.endpoints.map((e) => e.whenIdle())),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, timeout) }),
    ])
    clearTimeout(timer)
    for (const endpoint of this.endpoints) endpoint.stop()
  }
}
