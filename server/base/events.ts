/**
 * The server's one notification mechanism: a small typed event emitter.
 *
 * Each layer declares the events it emits beside its code (StoreEvents in
 * persistence/store.ts, RoomEvents in room.ts, RegistryEvents in registry.ts,
 * TransportEvents in transport.ts, WebhookEvents in webhooks.ts) and takes an
 * `EventSink` of them; `server.ts` creates one `Events` for all of them and subscribes
 * every consumer (metrics, webhooks, history, cluster replication, the user's hooks) in
 * one place.
 *
 * Two kinds of listener:
 *
 * - `on(name, listener)`: told after the fact, synchronously, in subscription order.
 *   Never awaited: a listener that returns a promise runs on by itself. An exception, or
 *   a rejection of the promise it returns, is contained (server/base/containment.ts): logged
 *   as `contained_error` with path `hook` and counted as coedit_errors_total{kind="hook"};
 *   the emitter and the other listeners carry on. So a listener can never block a room,
 *   lose an update or break the process. The fault-injection seam `hook` (or
 *   `hook:ROOM`) makes every listener throw, for the events of that room.
 *
 * - `before(name, listener)`: awaited by the emitter before the event happens, for the
 *   few events whose emitter waits (`BeforeEvents`: a room being loaded waits for the
 *   cluster to subscribe to it before anyone is served). Listeners run one after another;
 *   a rejection is the action's failure (the load fails), not contained. Internal only:
 *   user code never gets this power over a room.
 */
import type { Containment } from './containment.js'

/** A listener of an event: its return value is ignored, a returned promise is only watched for rejection. */
export type Listener<E> = (event: E) => unknown

/** What an emitting layer holds: emit its events, and ask whether anyone listens (to skip building a payload). */
export interface EventSink<M> {
  emit<K extends keyof M>(name: K, event: M[K]): void
  listens(name: keyof M): boolean
}

/** What an emitter that waits for `before` listeners holds. */
export interface BeforeSink<B> {
  runBefore<K extends keyof B>(name: K, event: B[K]): Promise<void>
}

type ListenerEntry = { fn: Listener<never>; label: string }

export class Events<M, B = Record<never, never>> implements EventSink<M>, BeforeSink<B> {
  private readonly listeners = new Map<keyof M, ListenerEntry[]>()
  private readonly beforeListeners = new Map<keyof B, Array<(event: never) => Promise<void>>>()

  constructor(private readonly containment: Containment) {}

  /**
   * Tells `listener` about every `name` event from now on; `label` names it in the log
   * line of a contained error. Returns the function that unsubscribes it.
   */
  on<K extends keyof M>(name: K, listener: Listener<M[K]>, label = 'listener'): () => void {
    const entry: ListenerEntry = { fn: listener as Listener<never>, label }
    // Copy on write: an emit in progress keeps iterating the list it started with.
    this.listeners.set(name, [...(this.listeners.get(name) ?? []), entry])
    return () => {
      const list = (this.listeners.get(name) ?? []).filter((e) => e !== entry)
      if (list.length === 0) this.listeners.delete(name)
      else this.listeners.set(name, list)
    }
  }

  /** Awaits `listener` before every `name` event (see the module header). */
  before<K extends keyof B>(name: K, listener: (event: B[K]) => Promise<void>): void {
    this.beforeListeners.set(name, [...(this.beforeListeners.get(name) ?? []), listener as (event: never) => Promise<void>])
  }

  listens(name: keyof M): boolean {
    return this.listeners.has(name)
  }

  /** Calls every listener of `name`; never throws, never waits. */
  emit<K extends keyof M>(name: K, event: M[K]): void {
    const list = this.listeners.get(name)
    if (!list) return
    for (const { fn, label } of list) {
      try {
        if (this.containment.injecting) this.containment.check('hook', roomOf(event))
        const result = (fn as Listener<M[K]>)(event)
        if (result !== undefined && result !== null && typeof (result as PromiseLike<unknown>).then === 'function') {
          (result as PromiseLike<unknown>).then(undefined, (err: unknown) => this.report(name, label, event, err))
        }
      } catch (err) {
        this.report(name, label, event, err)
      }
    }
  }

  /** Runs the `before` listeners of `name` in order; rejects with the first failure. */
  async runBefore<K extends keyof B>(name: K, event: B[K]): Promise<void> {
    for (const listener of this.beforeListeners.get(name) ?? []) await (listener as (event: B[K]) => Promise<void>)(event)
  }

  private report(name: keyof M, label: string, event: unknown, err: unknown): void {
    const room = roomOf(event)
    this.containment.report('hook', err, { emitted: String(name), subscriber: label, ...(room === undefined ? {} : { room }) })
  }
}

/** The room an event is about, if it names one (a `room` field: a name, or an object with one). */
function roomOf(event: unknown): string | undefined {
  if (typeof event !== 'object' || event === null || !('room' in event)) return undefined
  const room = (event as { room: unknown }).room
  if (typeof room === 'string') return room
  const name = typeof room === 'object' && room !== null ? (room as { name?: unknown }).name : undefined
  return typeof name === 'string' ? name : undefined
}

/** The source side: what a subscriber needs. */
export interface EventSource<M> {
  on<K extends keyof M>(name: K, listener: Listener<M[K]>, label?: string): () => void
}
