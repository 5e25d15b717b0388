/**
 * The rooms loaded in memory. A room is loaded once however many clients arrive
 * together, kept while it has connections, and unloaded after a grace period once
 * the last one left and everything is stored. A client arriving during the unload
 * keeps the room (or gets a freshly loaded one): never a half-destroyed document.
 * A room being deleted (see `remove`) is loaded by nobody until the delete is done.
 */
import type { Logger } from 'pino'
import { Room, type RoomEvents, type RoomOptions, type RoomOwner } from './room.js'
import type { Peer } from './peer.js'
import type { Store } from '../persistence/store.js'
import { CoeditError } from '../errors.js'
import type { BeforeSink, EventSink } from '../base/events.js'

export interface RegistryOptions extends Omit<RoomOptions, 'log' | 'events'> {
  /** ms a room stays loaded after its last connection left. */
  roomGrace: number
  /** Most rooms loaded at once; to load one more, the least recently used idle room is unloaded first. */
  maxRooms?: number
  /** Where the registry's and its rooms' events go (server/base/events.ts). */
  events: EventSink<RegistryEvents & RoomEvents> & BeforeSink<RegistryBeforeEvents>
}

/** Why a room object went away. */
export type UnloadReason =
  /** Its grace period after the last connection ended. */
  | 'idle'
  /** Unloaded, idle, to make space for another (--max-rooms). */
  | 'evicted'
  /** Its stored state could not be integrated: dropped without compacting (see Room.fail). */
  | 'failed'
  /** Deleted (see `remove` and Room.deleted; also by another process in cluster mode): dropped without compacting. */
  | 'deleted'
  /** The server is closing. */
  | 'shutdown'

export interface RegistryEvents {
  /** Loaded and about to be served (after every `before('room.loaded')` listener). */
  'room.loaded': { room: Room; ms: number }
  /**
   * A load failed: `TOO_MANY_ROOMS` (no idle room to make space), or `LOAD_FAILED` (the
   * store, or an injected fault; also reported by the containment as `room_load`).
   */
  'room.loadFailed': { room: string; code: 'TOO_MANY_ROOMS' | 'LOAD_FAILED'; error: unknown }
  /**
   * The room object goes away: its document can still be read, it is destroyed right
   * after. Told for every room that passed `before('room.loaded')`, whether or not
   * `room.loaded` was told (a room can fail during that wait).
   */
  'room.unloaded': { room: Room; reason: UnloadReason }
}

/** Awaited before the event happens (see server/base/events.ts). */
export interface RegistryBeforeEvents {
  /** Loaded from the store, not yet served: cluster mode subscribes and catches up here. A rejection fails the load. */
  'room.loaded': { room: Room }
}

interface Entry {
  loading: Promise<Room>
  room: Room | undefined
  graceTimer: NodeJS.Timeout | undefined
  unloading: Promise<void> | undefined
  /** When a connection last joined or left (for least-recently-used unloading). */
  lastUsed?: number
  /** Operations running on the room without a connection (see `use`): it is not unloaded meanwhile. */
  busy?: number
}

export class RoomRegistry {
  private readonly entries = new Map<string, Entry>()
  /** Deletes in progress, by room name (settled promises): loads of the name wait for them. */
  private readonly removing = new Map<string, Promise<void>>()
  private readonly store: Store
  private readonly options: RegistryOptions
  private readonly log: Logger

  constructor(store: Store, options: RegistryOptions, log: Logger) {
    this.store = store
    this.options = options
    this.log = log
  }

  get loadedCount(): number {
    return this.entries.size
  }

  get rooms(): Room[] {
    return [...this.entries.values()].flatMap((e) => (e.room ? [e.room] : []))
  }

  /** The room if it is loaded (and neither failed nor deleted). */
  loaded(name: string): Room | undefined {
    const room = this.entries.get(name)?.room
    return room && !room.isDestroyed && !room.isEnded ? room : undefined
  }

  /** Resolves to the loaded room, loading it if needed. Rejects if storage cannot be read. */
  get(name: string): Promise<Room> {
    const removing = this.removing.get(name)
    if (removing) return removing.then(() => this.get(name))
    let entry = this.entries.get(name)
    if (!entry) {
      const started = performance.now()
      const fresh: Entry = { loading: undefined as unknown as Promise<Room>, room: undefined, graceTimer: undefined, unloading: undefined }
      // The deferred integration may fail the room while we wait below: it is dropped then.
      const owner: RoomOwner = {
        empty: (room) => { if (fresh.room === room) this.scheduleUnload(name, fresh) },
        failed: (room) => this.drop(name, fresh, room),
      }
      const events = this.options.events
      fresh.loading = this.makeSpace(fresh).then(() => Room.load(name, this.store, { ...this.options, events, log: this.log.child({ room: name }) }, owner)).then(
        async (room) => {
          try {
            await events.runBefore('room.loaded', { room })
          } catch (err) {
            // As a failed read: nothing served, the next join loads afresh. Told as unloaded,
            // for the `before` listeners that did their part.
            if (this.entries.get(name) === fresh) this.entries.delete(name)
            if (!room.isDestroyed) {
              events.emit('room.unloaded', { room, reason: 'failed' })
              room.destroy()
            }
            this.options.containment.report('room_load', err, { room: name })
            events.emit('room.loadFailed', { room: name, code: 'LOAD_FAILED', error: err })
            throw err
          }
          // Failed meanwhile: dropped and told as unloaded; join() finds the entry gone and loads afresh.
          if (room.isDestroyed) return room
          fresh.room = room
          const ms = performance.now() - started
          this.log.info({ event: 'room_loaded', room: name, ms: Math.round(ms) }, 'room loaded')
          events.emit('room.loaded', { room, ms })
          return room
        },
        (err: unknown) => {
          // Nothing is kept of a failed load: its joiners get 1013 (transport) and the next join
          // loads the room again from what is stored, which is untouched.
          if (this.entries.get(name) === fresh) this.entries.delete(name)
          if (err instanceof CoeditError && err.code === 'TOO_MANY_ROOMS') {
            this.log.warn({ event: 'room_load_failed', room: name, code: err.code }, 'room not loaded: too many rooms')
            events.emit('room.loadFailed', { room: name, code: 'TOO_MANY_ROOMS', error: err })
          } else {
            // Counted as coedit_errors_total{kind="room_load"} by the containment.
            this.options.containment.report('room_load', err, { room: name })
            events.emit('room.loadFailed', { room: name, code: 'LOAD_FAILED', error: err })
          }
          throw err
        },
      )
      entry = fresh
      this.entries.set(name, entry)
    }
    return entry.loading
  }

  /** Joins `peer` to room `name`. */
  async join(name: string, peer: Peer): Promise<Room> {
    for (;;) {
      const room = await this.get(name)
      const entry = this.entries.get(name)
      if (entry?.room === room && room.addPeer(peer)) {
        entry.lastUsed = Date.now()
        if (entry.graceTimer) clearTimeout(entry.graceTimer)
        entry.graceTimer = undefined
        return room
      }
      // The room finished unloading while we waited: wait for that and load it again.
      await entry?.unloading
    }
  }

  /**
   * Runs `fn` on room `name`, loading it if needed, for work done without a connection
   * (`server.documents`, the document API). The room stays loaded while `fn` runs; one
   * nobody is connected to is unloaded after the grace period counted from when `fn`
   * settles, as if its last connection had just left.
   */
  async use<T>(name: string, fn: (room: Room) => T | Promise<T>): Promise<T> {
    for (;;) {
      const room = await this.get(name)
      const entry = this.entries.get(name)
      if (entry?.room !== room || room.isDestroyed) {
        // Unloaded while we waited: wait for that and load it again (as join does).
        await entry?.unloading
        continue
      }
      entry.busy = (entry.busy ?? 0) + 1
      entry.lastUsed = Date.now()
      if (entry.graceTimer) clearTimeout(entry.graceTimer)
      entry.graceTimer = undefined
      try {
        return await fn(room)
      } finally {
        entry.busy = (entry.busy ?? 1) - 1
        if (entry.busy === 0 && room.size === 0 && !room.isDestroyed && this.entries.get(name) === entry) this.scheduleUnload(name, entry)
      }
    }
  }

  /**
   * Over `maxRooms` (counting `fresh`, being loaded): unloads idle rooms, least recently
   * used first, until there is space. Throws TOO_MANY_ROOMS if every room is in use.
   */
  private async makeSpace(fresh: Entry): Promise<void> {
    const max = this.options.maxRooms
    if (!max) return
    // get() registers `fresh` right after calling us: count it.
    await Promise.resolve()
    if (this.entries.size <= max) return
    const idle = [...this.entries].filter(([, e]) => e !== fresh && e.room && e.room.size === 0 && !e.busy)
      .sort(([, a], [, b]) => (a.lastUsed ?? 0) - (b.lastUsed ?? 0))
    for (const [name, e] of idle) {
      if (this.entries.size <= max) return
      if (e.graceTimer) clearTimeout(e.graceTimer)
      e.graceTimer = undefined
      this.log.info({ event: 'room_evicted', room: name }, 'unloading the least recently used idle room to make space')
      await this.unload(name, e, 'evicted')
    }
    if (this.entries.size > max) throw new CoeditError('TOO_MANY_ROOMS', `${max} rooms are loaded and none is idle`)
  }

  /** A failed or deleted room (see Room.fail, Room.deleted): forgotten at once, not compacted; told as unloaded (`failed`, `deleted`). */
  private drop(name: string, entry: Entry, room: Room): void {
    if (entry.graceTimer) clearTimeout(entry.graceTimer)
    entry.graceTimer = undefined
    // A joiner waiting on this entry finds it gone and loads the room afresh (see join).
    if (this.entries.get(name) === entry) this.entries.delete(name)
    if (room.isDestroyed) return
    this.options.events.emit('room.unloaded', { room, reason: room.isDeleted ? 'deleted' : 'failed' })
    room.destroy()
  }

  /**
   * Runs `remove` (the store's delete of room `name`) with the room out of the way: a load
   * or an unload in progress finishes first, then the loaded room ends (its connections
   * leave with 4410 and nothing more of it is stored: see Room.deleted), and loads of the
   * name wait until `remove` is done, then read the room afresh. Deletes of one name run one
   * at a time. Resolves to what `remove` returned and what was loaded.
   */
  async remove<T>(name: string, remove: () => Promise<T>): Promise<{ result: T; loaded: boolean; connections: number }> {
    const before = this.removing.get(name) ?? Promise.resolve()
    const run = before.then(async () => {
      let loaded = false
      let connections = 0
      const entry = this.entries.get(name)
      if (entry) {
        const room = await entry.loading.catch(() => undefined)
        if (room && !room.isDestroyed && !room.isEnded) {
          loaded = true
          connections = room.size
          room.deleted()
        }
        await entry.unloading
      }
      return { result: await remove(), loaded, connections }
    })
    const settled = run.then(() => {}, () => {})
    this.removing.set(name, settled)
    void settled.then(() => {
      if (this.removing.get(name) === settled) this.removing.delete(name)
    })
    return run
  }

  /**
   * A room loaded for someone other than a connection (the admin API) that has none: it
   * unloads after the grace period, as when a last connection leaves. Does nothing while
   * it has connections.
   */
  release(room: Room): void {
    const entry = this.entries.get(room.name)
    if (entry?.room === room && room.size === 0) this.scheduleUnload(room.name, entry)
  }

  private scheduleUnload(name: string, entry: Entry): void {
    // A room dropped (failed, deleted) while its last connections were leaving.
    if (this.entries.get(name) !== entry) return
    entry.lastUsed = Date.now()
    if (entry.graceTimer) clearTimeout(entry.graceTimer)
    entry.graceTimer = setTimeout(() => {
      entry.graceTimer = undefined
      void this.unload(name, entry, 'idle')
    }, this.options.roomGrace)
    entry.graceTimer.unref()
  }

  private unload(name: string, entry: Entry, reason: 'idle' | 'evicted'): Promise<void> {
    const room = entry.room
    if (!room || entry.unloading) return entry.unloading ?? Promise.resolve()
    entry.unloading = (async () => {
      try {
        await room.flushed()
        await room.compact(true)
        // A client that joined while we were flushing keeps this room.
        if (room.size > 0 || room.hasPendingWrites || entry.busy || this.entries.get(name) !== entry) return
        this.entries.delete(name)
        this.options.events.emit('room.unloaded', { room, reason })
        room.destroy()
        this.log.info({ event: 'room_unloaded', room: name }, 'room unloaded')
      } finally {
        entry.unloading = undefined
        // Kept only for a write still in flight, or a grace timer fired while we were busy
        // (and found us unloading): without a new attempt the room would stay forever.
        if (!room.isDestroyed && room.size === 0 && !entry.busy && !entry.graceTimer && this.entries.get(name) === entry) {
          this.scheduleUnload(name, entry)
        }
      }
    })()
    return entry.unloading
  }

  /** Stores everything pending in every room (for shutdown). */
  async flushAll(): Promise<void> {
    await Promise.all(this.rooms.map((room) => room.flushed()))
  }

  /** Flushes and unloads every room; used at shutdown after connections are closed. */
  async closeAll(): Promise<void> {
    for (const entry of this.entries.values()) {
      if (entry.graceTimer) clearTimeout(entry.graceTimer)
    }
    await Promise.allSettled([...this.entries.values()].map((e) => e.loading))
    await Promise.all(this.rooms.map(async (room) => {
      await room.flushed()
      await room.compact(true)
      this.options.events.emit('room.unloaded', { room, reason: 'shutdown' })
      room.destroy()
    }))
    this.entries.clear()
  }
}
