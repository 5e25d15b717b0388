/** In-memory store: for tests and for `startServer({ storage: 'memory' })`. Nothing survives the process. */
import { CoeditError } from '../errors.js'
import type { AppendMeta, DeleteOptions, DeleteResult, HistoryLog, HistoryLogStore, LogBase, LogEntry, LogRange, RoomInfo, StoredRoom, WriteFence } from './store.js'
import { EMPTY_STATE, assertOpen, byName, roomDeletedError } from './store.js'
import { decodeTombstone, isEmptyTombstone, tombstoneOf } from './tombstone.js'
import { StoreClock } from './clock.js'
import type { RoomRecord, StoreSnapshot, StoredVersion, VersionInfo, VersionedStore } from './store.js'

interface MemoryRoom {
  state: Uint8Array | undefined
  upTo: number
  log: Array<{ seq: number; update: Uint8Array }>
  nextSeq: number
  updatedAt: number | undefined
  /** The history log: folded base and entries after it. */
  logBase: LogBase | undefined
  logEntries: LogEntry[]
}

export class MemoryStore implements VersionedStore, HistoryLogStore {
  private readonly rooms = new Map<string, MemoryRoom>()
  /** Times each room was deleted (see Store.delete); absent: 0. */
  private readonly generations = new Map<string, number>()
  private readonly tombstones = new Map<string, Uint8Array>()
  private closed = false
  private readonly clock: StoreClock

  /** `now`: the clock stamped on stored updates (tests inject one). */
  constructor(options: { now?: () => number } = {}) {
    this.clock = new StoreClock(options.now)
  }

  private room(name: string): MemoryRoom {
    let r = this.rooms.get(name)
    if (!r) {
      r = { state: undefined, upTo: 0, log: [], nextSeq: 1, updatedAt: undefined, logBase: undefined, logEntries: [] }
      this.rooms.set(name, r)
    }
    return r
  }

  /** Everything here runs synchronously from the call: a write checked here cannot meet a delete halfway. */
  private fence(name: string, fence: WriteFence | undefined): void {
    if (fence?.generation !== undefined && fence.generation !== (this.generations.get(name) ?? 0)) throw roomDeletedError(name)
  }

  private incarnation(name: string): Pick<StoredRoom, 'generation' | 'tombstone'> {
    const generation = this.generations.get(name)
    const tombstone = this.tombstones.get(name)
    return { ...(generation ? { generation } : {}), ...(tombstone ? { tombstone } : {}) }
  }

  async load(name: string): Promise<StoredRoom> {
    assertOpen(this.closed)
    const r = this.rooms.get(name)
    if (!r) return { updates: [], lastSeq: 0, pendingUpdates: 0, ...this.incarnation(name) }
    const updates = r.state ? [r.state, ...r.log.map((e) => e.update)] : r.log.map((e) => e.update)
    return { updates, lastSeq: r.nextSeq - 1, pendingUpdates: r.log.length, ...this.incarnation(name) }
  }

  async append(name: string, updates: readonly Uint8Array[], meta?: AppendMeta): Promise<number> {
    assertOpen(this.closed)
    this.fence(name, meta)
    const r = this.room(name)
    const at = this.clock.stamp()
    // Copy: the caller's buffers may be views into reused network memory.
    for (const update of updates) {
      const copy = update.slice()
      r.logEntries.push({ seq: r.nextSeq, at, user: meta?.user, update: copy })
      r.log.push({ seq: r.nextSeq++, update: copy })
    }
    r.updatedAt = at
    return r.nextSeq - 1
  }

  async compact(name: string, state: Uint8Array, upTo: number, fence?: WriteFence): Promise<void> {
    assertOpen(this.closed)
    this.fence(name, fence)
    const r = this.room(name)
    r.state = state.slice()
    r.upTo = upTo
    r.log = r.log.filter((e) => e.seq > upTo)
  }

  async delete(name: string, options: DeleteOptions = {}): Promise<DeleteResult> {
    assertOpen(this.closed)
    const r = this.rooms.get(name)
    const versions = this.versions.get(name)
    const existed = r !== undefined || (versions !== undefined && versions.list.length > 0) || this.tombstones.has(name)
    const stored = r ? [...(r.state ? [r.state] : []), ...r.log.map((e) => e.update), ...(r.logBase ? [r.logBase.state] : []), ...r.logEntries.map((e) => e.update)] : []
    const kept = options.tombstone ? tombstoneOf(stored, this.tombstones.get(name)) : undefined
    if (kept && !isEmptyTombstone(kept)) this.tombstones.set(name, kept)
    else this.tombstones.delete(name)
    this.rooms.delete(name)
    this.versions.delete(name)
    const deleted = this.generations.get(name) ?? 0
    this.generations.set(name, deleted + 1)
    return { existed, deleted }
  }

  async listRooms(): Promise<RoomInfo[]> {
    assertOpen(this.closed)
    return [...this.rooms.entries()]
      .map(([name, r]) => ({
        name,
        updates: r.log.length,
        bytes: (r.state?.length ?? 0) + r.log.reduce((n, e) => n + e.update.length, 0),
        updatedAt: r.updatedAt,
        lastSeq: r.nextSeq - 1,
      }))
      .sort((a, b) => byName(a.name, b.name))
  }

  // ---- versions and backup ---------------------------------------------------------------

  private readonly versions = new Map<string, { nextId: number; list: StoredVersion[] }>()

  private versionsOf(room: string): { nextId: number; list: StoredVersion[] } {
    let v = this.versions.get(room)
    if (!v) {
      v = { nextId: 1, list: [] }
      this.versions.set(room, v)
    }
    return v
  }

  async putVersion(room: string, version: { at: number; seq: number; state: Uint8Array; pinned?: boolean }, fence?: WriteFence): Promise<VersionInfo> {
    assertOpen(this.closed)
    this.fence(room, fence)
    const v = this.versionsOf(room)
    const stored: StoredVersion = { id: v.nextId++, at: version.at, seq: version.seq, bytes: version.state.length, state: version.state.slice(), ...(version.pinned ? { pinned: true } : {}) }
    v.list.push(stored)
    return infoOf(stored)
  }

  async listVersions(room: string): Promise<VersionInfo[]> {
    assertOpen(this.closed)
    return (this.versions.get(room)?.list ?? []).map(infoOf)
  }

  async getVersion(room: string, id: number): Promise<StoredVersion | undefined> {
    assertOpen(this.closed)
    return this.versions.get(room)?.list.find((v) => v.id === id)
  }

  async deleteVersions(room: string, ids: readonly number[]): Promise<void> {
    assertOpen(this.closed)
    const v = this.versions.get(room)
    if (!v) return
    const drop = new Set(ids)
    v.list = v.list.filter((x) => !drop.has(x.id))
  }

  /** Copies everything now: the event loop makes the copy one moment. */
  async snapshot(): Promise<StoreSnapshot> {
    assertOpen(this.closed)
    const records = new Map<string, RoomRecord>()
    for (const [name, r] of this.rooms) {
      records.set(name, {
        name,
        updatedAt: r.updatedAt,
        lastSeq: r.nextSeq - 1,
        updates: r.state ? [r.state, ...r.log.map((e) => e.update)] : r.log.map((e) => e.update),
        versions: [...(this.versions.get(name)?.list ?? [])],
        log: { base: r.logBase, entries: [...r.logEntries] },
      })
    }
    const rooms = [...records.keys()].sort(byName)
    return {
      rooms,
      tombstones: new Map([...this.tombstones].map(([name, t]) => [name, t.slice()])),
      read: async (room) => {
        const record = records.get(room)
        if (!record) throw new CoeditError('ROOM_NOT_FOUND', `room "${room}" is not in the snapshot`)
        return record
      },
      close: async () => {},
    }
  }

  async putTombstone(room: string, tombstone: Uint8Array): Promise<void> {
    if (this.closed) throw new CoeditError('STORE_CLOSED', 'store is closed')
    decodeTombstone(tombstone)
    this.tombstones.set(room, tombstone.slice())
  }

  async putRoom(record: RoomRecord): Promise<void> {
    assertOpen(this.closed)
    this.tombstones.delete(record.name)
    const [first, ...rest] = record.updates
    const upTo = record.lastSeq - rest.length
    const at = this.clock.stamp()
    const log = record.log ?? {
      base: { upTo, at, state: first ?? EMPTY_STATE },
      entries: rest.map((update, i) => ({ seq: upTo + 1 + i, at, user: undefined, update })),
    }
    this.rooms.set(record.name, {
      logBase: log.base && { ...log.base, state: log.base.state.slice() },
      logEntries: log.entries.map((e) => ({ ...e, update: e.update.slice() })),
      state: first?.slice(),
      upTo,
      log: rest.map((update, i) => ({ seq: upTo + 1 + i, update: update.slice() })),
      nextSeq: record.lastSeq + 1,
      updatedAt: record.updatedAt ?? Date.now(),
    })
    const list = record.versions.map((v) => ({ ...v, state: v.state.slice() }))
    this.versions.set(record.name, { nextId: Math.max(0, ...list.map((v) => v.id)) + 1, list })
  }

  // ---- end of history and backup ------------------------------------------------------

  // ---- history log -----------------------------------------------------------------------

  async readLog(name: string, range: LogRange = {}): Promise<HistoryLog> {
    assertOpen(this.closed)
    const r = this.rooms.get(name)
    const generation = this.generations.get(name)
    const of = generation ? { generation } : {}
    if (!r) return { base: undefined, entries: [], ...of }
    const after = Math.max(range.afterSeq ?? 0, r.logBase?.upTo ?? 0)
    const entries: LogEntry[] = []
    for (const e of r.logEntries) {
      if (e.seq <= after) continue
      if (range.untilAt !== undefined && e.at > range.untilAt) break
      if (range.limit !== undefined && entries.length >= range.limit) break
      entries.push(e)
    }
    return { base: r.logBase, entries, ...of }
  }

  async foldLog(name: string, base: LogBase, fence?: WriteFence): Promise<void> {
    assertOpen(this.closed)
    this.fence(name, fence)
    const r = this.room(name)
    r.logBase = { ...base, state: base.state.slice() }
    r.logEntries = r.logEntries.filter((e) => e.seq > base.upTo)
  }

  // ---- end of history log ---------------------------------------------------------------

  // ---- health ----------------------------------------------------------------------------

  async ping(): Promise<void> {
    assertOpen(this.closed)
  }

  // ---- end of health ------------------------------------------------------------------

  async close(): Promise<void> {
    this.closed = true
  }
}

function infoOf(v: StoredVersion): VersionInfo {
  return { id: v.id, at: v.at, seq: v.seq, bytes: v.bytes, ...(v.pinned ? { pinned: true } : {}) }
}
