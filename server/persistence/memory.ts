/** In-memory store: for tests and for `startServer({ storage: 'memory' })`. Nothing survives the process. */
import { CoeditError } from '../errors.js'
import type { RoomInfo, StoredRoom } from './store.js'
import type { RoomRecord, StoreSnapshot, StoredVersion, VersionInfo, VersionedStore } from './store.js'

interface MemoryRoom {
  state: Uint8Array | undefined
  upTo: number
  log: Array<{ seq: number; update: Uint8Array }>
  nextSeq: number
  updatedAt: number | undefined
}

export class MemoryStore implements VersionedStore {
  private readonly rooms = new Map<string, MemoryRoom>()
  private closed = false

  private room(name: string): MemoryRoom {
    let r = this.rooms.get(name)
    if (!r) {
      r = { state: undefined, upTo: 0, log: [], nextSeq: 1, updatedAt: undefined }
      this.rooms.set(name, r)
    }
    return r
  }

  async load(name: string): Promise<StoredRoom> {
    const r = this.rooms.get(name)
    if (!r) return { updates: [], lastSeq: 0, pendingUpdates: 0 }
    const updates = r.state ? [r.state, ...r.log.map((e) => e.update)] : r.log.map((e) => e.update)
    return { updates, lastSeq: r.nextSeq - 1, pendingUpdates: r.log.length }
  }

  async append(name: string, updates: readonly Uint8Array[]): Promise<number> {
    if (this.closed) throw new CoeditError('STORE_CLOSED', 'store is closed')
    const r = this.room(name)
    // Copy: the caller's buffers may be views into reused network memory.
    for (const update of updates) r.log.push({ seq: r.nextSeq++, update: update.slice() })
    r.updatedAt = Date.now()
    return r.nextSeq - 1
  }

  async compact(name: string, state: Uint8Array, upTo: number): Promise<void> {
    const r = this.room(name)
    r.state = state.slice()
    r.upTo = upTo
    r.log = r.log.filter((e) => e.seq > upTo)
  }

  async listRooms(): Promise<RoomInfo[]> {
    return [...this.rooms.entries()]
      .map(([name, r]) => ({
        name,
        updates: r.log.length,
        bytes: (r.state?.length ?? 0) + r.log.reduce((n, e) => n + e.update.length, 0),
        updatedAt: r.updatedAt,
        lastSeq: r.nextSeq - 1,
      }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  // ---- history and backup (operator CLI, issue 4) -----------------------------------

  private readonly versions = new Map<string, { nextId: number; list: StoredVersion[] }>()

  private versionsOf(room: string): { nextId: number; list: StoredVersion[] } {
    let v = this.versions.get(room)
    if (!v) {
      v = { nextId: 1, list: [] }
      this.versions.set(room, v)
    }
    return v
  }

  async putVersion(room: string, version: { at: number; seq: number; state: Uint8Array }): Promise<VersionInfo> {
    if (this.closed) throw new CoeditError('STORE_CLOSED', 'store is closed')
    const v = this.versionsOf(room)
    const stored: StoredVersion = { id: v.nextId++, at: version.at, seq: version.seq, bytes: version.state.length, state: version.state.slice() }
    v.list.push(stored)
    return { id: stored.id, at: stored.at, seq: stored.seq, bytes: stored.bytes }
  }

  async listVersions(room: string): Promise<VersionInfo[]> {
    return (this.versions.get(room)?.list ?? []).map(({ id, at, seq, bytes }) => ({ id, at, seq, bytes }))
  }

  async getVersion(room: string, id: number): Promise<StoredVersion | undefined> {
    return this.versions.get(room)?.list.find((v) => v.id === id)
  }

  async deleteVersions(room: string, ids: readonly number[]): Promise<void> {
    const v = this.versions.get(room)
    if (!v) return
    const drop = new Set(ids)
    v.list = v.list.filter((x) => !drop.has(x.id))
  }

  /** Copies everything now: the event loop makes the copy one moment. */
  async snapshot(): Promise<StoreSnapshot> {
    const records = new Map<string, RoomRecord>()
    for (const [name, r] of this.rooms) {
      records.set(name, {
        name,
        updatedAt: r.updatedAt,
        lastSeq: r.nextSeq - 1,
        updates: r.state ? [r.state, ...r.log.map((e) => e.update)] : r.log.map((e) => e.update),
        versions: [...(this.versions.get(name)?.list ?? [])],
      })
    }
    const rooms = [...records.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    return {
      rooms,
      read: async (room) => {
        const record = records.get(room)
        if (!record) throw new CoeditError('ROOM_NOT_FOUND', `room "${room}" is not in the snapshot`)
        return record
      },
      close: async () => {},
    }
  }

  async putRoom(record: RoomRecord): Promise<void> {
    if (this.closed) throw new CoeditError('STORE_CLOSED', 'store is closed')
    const [first, ...rest] = record.updates
    const upTo = record.lastSeq - rest.length
    this.rooms.set(record.name, {
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

  // ---- health (operations, issue 7) ---------------------------------------------------

  async ping(): Promise<void> {
    if (this.closed) throw new CoeditError('STORE_CLOSED', 'store is closed')
  }

  // ---- end of health ------------------------------------------------------------------

  async close(): Promise<void> {
    this.closed = true
  }
}
