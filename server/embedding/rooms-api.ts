/**
 * `server.rooms`: list, delete and disconnect rooms from the app that embeds coedit. The
 * admin API (`DELETE /admin/rooms/ROOM`) and `coedit delete --server` call the same delete.
 *
 * A delete ends the loaded room first (its connections leave with 4410, see
 * Registry.remove), then the store removes every key of the room in one atomic step and
 * makes its generation grow, so nothing the old copy still has in flight (an update being
 * stored, a compaction, a version, another process that has not heard yet) lands in the
 * new room: the store refuses writes made for the deleted generation.
 */
import type { Logger } from 'pino'
import { CLOSE_NORMAL, closeReason, sendableCloseCode, type CloseCode } from '../room/close-codes.js'
import { CoeditError } from '../errors.js'
import type { HistoryKeeper } from '../operator/history.js'
import type { EventSink } from '../base/events.js'
import type { Store } from '../persistence/store.js'
import type { RoomRegistry } from '../room/registry.js'
import type { ParsedRoom } from '../room/room-name.js'

/** One room as `rooms.list()` gives it. */
export interface RoomListing {
  name: string
  /** In memory in this process now. */
  loaded: boolean
  /** Connections to it on this process (0 when not loaded). */
  connections: number
  /** Something of it is stored (false: loaded, and nobody has written yet). */
  stored: boolean
  /** Bytes stored: its compacted state and the updates since (0 when nothing is stored). */
  bytes: number
  /** Its last stored change, ms since the epoch; undefined when nothing is stored or it is unknown. */
  updatedAt: number | undefined
}

export interface DeleteRoomOptions {
  /**
   * Keep a tombstone of the deleted content: updates carrying it (a client's offline copy
   * sent again) are refused with 4410 DELETED_CONTENT (see tombstone.ts). Default false.
   */
  tombstone?: boolean
}

export interface DeletedRoom {
  room: string
  /** Something was stored or loaded under the name (false: there was nothing to delete). */
  existed: boolean
  tombstone: boolean
  /** Connections of this process closed with 4410. */
  connections: number
}

export interface DisconnectOptions {
  /**
   * WebSocket close code: 1000 (the default), 1001, 1008, 1011-1014 or 3000-4999. The stock
   * y-websocket provider reconnects unless it is 4400-4499.
   */
  code?: number
  /** Close reason, at most 123 bytes of UTF-8 (longer is cut). Default "disconnected by the server". */
  reason?: string
}

export interface RoomsEvents {
  /**
   * Room `room` was deleted (its store generation `generation` is gone; the loaded copy, if
   * any, was told as `room.unloaded` with reason `deleted`). Told once the store's delete is done.
   */
  'room.deleted': { room: string; generation: number; existed: boolean; tombstone: boolean; connections: number }
  /**
   * `rooms.disconnect(room)` closed this process's `connections` of `room` with `code` and
   * `reason` (the cluster tells the other processes, which close theirs).
   */
  'room.disconnected': { room: string; code: number; reason: string; connections: number }
}

export interface RoomsOptions {
  store: Store
  registry: RoomRegistry
  history: HistoryKeeper
  /** The same check as the WebSocket path's (length, characters, --room-name-pattern). */
  checkName(name: string): ParsedRoom
  /** Where `room.deleted` and `room.disconnected` go (the cluster tells the other processes). */
  events: EventSink<RoomsEvents>
  log: Logger
}

export class Rooms {
  constructor(private readonly options: RoomsOptions) {}

  /** Every room stored or loaded here, sorted by name. */
  async list(): Promise<RoomListing[]> {
    const stored = await this.options.store.listRooms()
    const byName = new Map<string, RoomListing>()
    for (const r of stored) {
      byName.set(r.name, { name: r.name, loaded: false, connections: 0, stored: true, bytes: r.bytes, updatedAt: r.updatedAt })
    }
    for (const room of this.options.registry.rooms) {
      if (room.isDestroyed || room.isEnded) continue
      const listed = byName.get(room.name)
      if (listed) {
        listed.loaded = true
        listed.connections = room.size
      } else {
        byName.set(room.name, { name: room.name, loaded: true, connections: room.size, stored: false, bytes: 0, updatedAt: undefined })
      }
    }
    return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  /**
   * Deletes `room`: its connections here leave with 4410 (other processes' too, in cluster
   * mode), and every stored key of it goes (updates, compacted state, versions, history
   * log). A client joining afterwards starts an empty room. Resolves once stored.
   */
  async delete(room: string, options: DeleteRoomOptions = {}): Promise<DeletedRoom> {
    const name = this.name(room)
    const tombstone = options.tombstone === true
    const { registry, store, history } = this.options
    const { result, loaded, connections } = await registry.remove(name, async () => {
      const removed = await store.delete(name, { tombstone })
      // Its next versions start a new history (seqs start again at 1).
      history.forget(name)
      return removed
    })
    const existed = result.existed || loaded
    this.options.log.info({ event: 'room_deleted', room: name, existed, tombstone, connections }, 'room deleted')
    this.options.events.emit('room.deleted', { room: name, generation: result.deleted, existed, tombstone, connections })
    return { room: name, existed, tombstone, connections }
  }

  /**
   * Closes every connection of `room` with `code` and `reason`, on every process in cluster
   * mode: this process's at once (their count is the result), the others' when the notice
   * reaches them over the cluster bus. The room stays.
   */
  async disconnect(room: string, options: DisconnectOptions = {}): Promise<number> {
    const name = this.name(room)
    const close = closeCodeOf(options)
    const closed = this.options.registry.loaded(name)?.disconnect(close) ?? 0
    this.options.log.info({ event: 'room_disconnected', room: name, code: close.code, connections: closed }, 'room disconnected')
    this.options.events.emit('room.disconnected', { room: name, code: close.code, reason: close.reason, connections: closed })
    return closed
  }

  private name(room: unknown): string {
    if (typeof room !== 'string') throw new CoeditError('BAD_ROOM_NAME', 'the room name must be a string')
    const checked = this.options.checkName(room)
    if (!checked.ok) throw new CoeditError('BAD_ROOM_NAME', checked.error)
    return checked.room
  }
}

function closeCodeOf(options: DisconnectOptions): CloseCode {
  const code = options.code ?? CLOSE_NORMAL.code
  if (!sendableCloseCode(code)) {
    throw new CoeditError('BAD_CLOSE_CODE', `${String(code)} is not a close code the server may send (1000, 1001, 1008, 1011-1014 or 3000-4999)`)
  }
  if (options.reason !== undefined && typeof options.reason !== 'string') throw new CoeditError('BAD_CLOSE_REASON', 'the close reason must be a string')
  return { code, reason: closeReason(options.reason ?? 'disconnected by the server') }
}
