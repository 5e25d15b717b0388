/** In-memory store: for tests and for `startServer({ storage: 'memory' })`. Nothing survives the process. */
import { CoeditError } from '../errors.js'
import type { RoomInfo, Store, StoredRoom } from './store.js'

interface MemoryRoom {
  state: Uint8Array | undefined
  upTo: number
  log: Array<{ seq: number; update: Uint8Array }>
  nextSeq: number
  updatedAt: number | undefined
}

export class MemoryStore implements Store {
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

  async close(): Promise<void> {
    this.closed = true
  }
}
