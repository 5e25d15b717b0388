/**
 * The operator verbs over a store: what the admin API runs inside the server and what
 * the CLI runs on a data directory no server holds. The two differ only in `RoomAccess`:
 * a running server reads and writes through its live rooms (so connected clients see
 * every change at once); offline, the store is read and appended to directly.
 */
import * as Y from 'yjs'
import { CoeditError } from '../errors.js'
import { docFromUpdates, mergeUpdates } from '../room/yjs-log.js'
import {
  computeRevert, containsState, exportDoc, importUpdate, parseTimeSpec, resolveVersion, sameUpdate,
  type ExportFormat, type ImportFormat,
} from './doc-ops.js'
import { decodeBackup, encodeBackup, type BackupHeader, type UnreadableRoom } from './backup-format.js'
import type { Containment } from '../base/containment.js'
import { isVersionedStore, type AppendMeta, type RoomInfo, type Store, type VersionInfo, type VersionedStore } from '../persistence/store.js'
import { DEFAULT_MAX_NESTING_DEPTH, InflightUpdates, checkRoomNesting, decodeUpdateChecked, partToStore, type DecodedUpdate } from '../room/update-checks.js'
import { activity, exactSince, stateAt, type ActivityPage } from './history-log.js'
import { diffRoom, type DiffFormat } from './diff.js'

/** How the verbs see a room's current state and change it. */
export interface RoomAccess {
  /**
   * The room's whole state, the seq it includes and the store's generation it was read from;
   * undefined if the room does not exist.
   */
  current(room: string): Promise<{ state: Uint8Array; seq: number; generation?: number } | undefined>
  /** Merges `update` into the room (stored, then relayed to connected clients); returns the new seq. */
  apply(room: string, update: Uint8Array, meta?: AppendMeta): Promise<number>
  /**
   * Records a version (no-op if the newest already has `seq`, unless `pinned`: kept through
   * the exact window); `generation`: the one `current` read, not recorded if deleted since.
   */
  recordVersion(room: string, state: Uint8Array, seq: number, options?: { pinned?: boolean; generation?: number }): Promise<void>
  /**
   * Runs a revert of `room` after the others of that room (every way in to a running server
   * shares one queue: the admin API, the CLI through it, the editor's panel). Absent: the
   * caller is the room's only writer (offline, the directory is locked).
   */
  exclusive?<T>(room: string, run: () => Promise<T>): Promise<T>
  /** True if the room is served live (restore then merges instead of replacing). */
  readonly live: boolean
}

/** Offline access: the store alone. */
export function storeAccess(store: Store): RoomAccess {
  return {
    live: false,
    async current(room) {
      const stored = await store.load(room)
      if (stored.updates.length === 0) return undefined
      return { state: mergeUpdates(stored.updates), seq: stored.lastSeq, generation: stored.generation ?? 0 }
    },
    async apply(room, update, meta) {
      // What a live room refuses (see Room.applyAdminUpdate), an offline import must not store either.
      const stored = await store.load(room)
      const doc = docFromUpdates(stored.updates)
      let part: { update: Uint8Array; decoded: DecodedUpdate }
      try {
        const none = new InflightUpdates()
        part = partToStore(update, decodeUpdateChecked(update), doc, none, 0)
        checkRoomNesting(part.decoded, doc, none, DEFAULT_MAX_NESTING_DEPTH)
      } catch (err) {
        throw err instanceof CoeditError ? err : new CoeditError('BAD_UPDATE', (err as Error).message)
      } finally {
        doc.destroy()
      }
      if (part.decoded.empty) return stored.lastSeq
      return store.append(room, [part.update], meta)
    },
    async recordVersion(room, state, seq, options) {
      if (!isVersionedStore(store)) return
      const versions = await store.listVersions(room)
      if (versions.length > 0 && versions[versions.length - 1]!.seq === seq && !options?.pinned) return
      await store.putVersion(room, { at: Date.now(), seq, state, ...(options?.pinned ? { pinned: true } : {}) }, { generation: options?.generation })
    },
  }
}

export interface RevertResult {
  room: string
  /**
   * The version the room's content was brought back to; with `exact`, the room as of the
   * instant asked for, rebuilt from the history log (id 0: no stored version).
   */
  version: VersionInfo
  /** True when the target was an instant within the exact window (issue 18). */
  exact: boolean
  /** Size of the update the revert made (0: the content already was that version's). */
  bytes: number
}

export interface ImportResult {
  room: string
  bytes: number
  created: boolean
}

export interface RestoreResult {
  rooms: number
  verified: number
  /** Rooms the backup could not read when it was taken: not in the file, so not restored. */
  unreadable: UnreadableRoom[]
  /**
   * Tombstones restored (offline only: a live restore merges content into running rooms and
   * leaves their tombstones as the server has them).
   */
  tombstones: number
}

/** Computes a revert update of `room` (see computeRevert); a server runs it off its event loop. */
export type RevertComputer = (current: Uint8Array, old: Uint8Array, room: string) => Promise<Uint8Array>

export class Operations {
  readonly store: Store
  private readonly access: RoomAccess
  private readonly computeRevert: RevertComputer
  private readonly containment: Containment | undefined
  private readonly now: () => number

  constructor(store: Store, access: RoomAccess = storeAccess(store), revert: RevertComputer = async (current, old) => computeRevert(current, old), containment?: Containment, now: () => number = Date.now) {
    this.store = store
    this.access = access
    this.computeRevert = revert
    this.containment = containment
    this.now = now
  }

  /**
   * The room as of `spec`: a bare number is a version id; a time within the history log is
   * exact (every update stored at or before it, none after); an older time falls back to
   * the newest version at or before it.
   */
  async stateAt(room: string, spec: string, now = this.now()): Promise<{ state: Uint8Array; version: VersionInfo; exact: boolean }> {
    if (!/^\s*\d+\s*$/.test(spec)) {
      const at = parseTimeSpec(spec, now)
      const exact = await stateAt(this.store, room, at)
      // Nothing stored yet at that instant: versions may still name one (restored or
      // written by other tools); if none does, the error says no version was recorded.
      if (exact && exact.seq > 0) {
        return { state: exact.state, version: { id: 0, at, seq: exact.seq, bytes: exact.state.length }, exact: true }
      }
    }
    const target = resolveVersion(await this.history(room), spec, now)
    const version = await this.versioned().getVersion(room, target.id)
    if (!version) throw new CoeditError('VERSION_NOT_FOUND', `version ${target.id} was just deleted by the retention policy`)
    return { state: version.state, version: target, exact: false }
  }

  private versioned(): VersionedStore {
    if (!isVersionedStore(this.store)) {
      throw new CoeditError('HISTORY_UNAVAILABLE', 'this server\'s store keeps no history or backups')
    }
    return this.store
  }

  async rooms(): Promise<RoomInfo[]> {
    return this.store.listRooms()
  }

  private async existing(room: string): Promise<{ state: Uint8Array; seq: number; generation?: number }> {
    const current = await this.readable(room)
    if (!current) throw new CoeditError('ROOM_NOT_FOUND', `there is no room "${room}"`)
    return current
  }

  /** The room's current state; a room whose stored data cannot be read is ROOM_UNREADABLE, by name. */
  private async readable(room: string): Promise<{ state: Uint8Array; seq: number; generation?: number } | undefined> {
    try {
      return await this.access.current(room)
    } catch (err) {
      throw unreadable(room, err)
    }
  }

  /** The room now, or as of the version `at` names (an id or a time, as for revert). */
  async export(room: string, format: ExportFormat, textName?: string, at?: string): Promise<Uint8Array> {
    const state = at === undefined ? (await this.existing(room)).state : (await this.stateAt(room, at)).state
    return unreadableAs(room, () => {
      const doc = docFromUpdates([state])
      try {
        return exportDoc(doc, format, textName)
      } finally {
        doc.destroy()
      }
    })
  }

  async import(room: string, body: Uint8Array, format: ImportFormat, textName?: string): Promise<ImportResult> {
    const current = await this.readable(room)
    const update = importUpdate(current?.state ?? Y.encodeStateAsUpdate(new Y.Doc()), body, format, textName)
    if (current) await this.access.recordVersion(room, current.state, current.seq, { generation: current.generation })
    if (isEmptyUpdate(update)) return { room, bytes: 0, created: false }
    await this.access.apply(room, update)
    return { room, bytes: update.length, created: current === undefined }
  }

  async history(room: string): Promise<VersionInfo[]> {
    const versions = await this.versioned().listVersions(room)
    if (versions.length === 0 && !(await this.readable(room))) throw new CoeditError('ROOM_NOT_FOUND', `there is no room "${room}"`)
    return versions
  }

  /**
   * Activity of the room in its history log, per `bucket` ms, a page of at most `page.limit`
   * updates after `page.after` (see history-log.ts, activity); and from when the log is exact.
   */
  async activity(room: string, bucket: number, page: { after?: number; limit?: number } = {}): Promise<{ exactSince: number | undefined } & ActivityPage> {
    return { exactSince: await exactSince(this.store, room), ...(await activity(this.store, room, bucket, page)) }
  }

  /**
   * Brings the room's content back to what `to` names (see stateAt), as a new change (see
   * computeRevert); `by` says who asked, for the history log.
   */
  async revert(room: string, to: string, now = this.now(), by?: AppendMeta): Promise<RevertResult> {
    this.versioned()
    // Read, compute and apply as one step: a second revert computed against the same state would apply a mix.
    return this.access.exclusive ? this.access.exclusive(room, () => this.revertNow(room, to, now, by)) : this.revertNow(room, to, now, by)
  }

  private async revertNow(room: string, to: string, now: number, by: AppendMeta | undefined): Promise<RevertResult> {
    const target = await this.stateAt(room, to, now)
    const current = await this.existing(room)
    // The state before the revert stays in the history, kept through the exact window: a
    // revert can itself be reverted.
    await this.access.recordVersion(room, current.state, current.seq, { pinned: true, generation: current.generation })
    const update = await this.computeRevert(current.state, target.state, room)
    if (isEmptyUpdate(update)) return { room, version: target.version, exact: target.exact, bytes: 0 }
    await this.access.apply(room, update, by)
    return { room, version: target.version, exact: target.exact, bytes: update.length }
  }

  /** The difference of the room between `from` and `to` (default: now), as diff.ts writes it. */
  async diff(room: string, from: string, to: string | undefined, format: DiffFormat, textName?: string): Promise<string> {
    const now = this.now()
    const a = await this.stateAt(room, from, now)
    const b = to === undefined ? { state: (await this.existing(room)).state } : await this.stateAt(room, to, now)
    return diffRoom(a.state, b.state, format, textName, { from, to: to ?? 'now' })
  }

  /**
   * The backup file of every room as of now, chunk by chunk. A room that cannot be read is
   * named in the file (and told to `onUnreadable`) instead of failing the whole backup.
   */
  async *backup(onStart?: (rooms: number) => void, onRoom?: (room: string) => void, onUnreadable?: (room: UnreadableRoom) => void): AsyncGenerator<Uint8Array> {
    const snapshot = await this.versioned().snapshot()
    try {
      onStart?.(snapshot.rooms.length)
      yield* encodeBackup(snapshot, Date.now(), { onRoom, onUnreadable, containment: this.containment })
    } finally {
      await snapshot.close()
    }
  }

  /**
   * Restores a backup that was already checked once (`verifyBackup`): offline each room
   * replaces what the store held under its name; live it is merged into the running room.
   * Then reads the file again and checks every room reads back as it holds it. `open`
   * gives the file's bytes each time it is called.
   */
  async restore(open: () => AsyncIterable<Uint8Array>, onStart?: (header: BackupHeader) => void, onRoom?: (room: string) => void): Promise<RestoreResult> {
    const store = this.versioned()
    let header: BackupHeader | undefined
    const unreadable: UnreadableRoom[] = []
    const restored = new Set<string>()
    let tombstones = 0
    for await (const item of decodeBackup(open())) {
      if ('header' in item) {
        header = item.header
        onStart?.(header)
        continue
      }
      if ('unreadable' in item) {
        // Not in the file: whatever the store holds under that name stays as it is.
        unreadable.push(item.unreadable)
        continue
      }
      if ('tombstone' in item) {
        if (this.access.live) continue
        const { name, tombstone } = item.tombstone
        if (!store.putTombstone) throw new CoeditError('TOMBSTONES_UNSUPPORTED', 'the backup holds tombstones and this store cannot keep them')
        // A name the backup holds only as deleted: what the store holds under it goes, as a delete would.
        if (!restored.has(name)) await store.delete(name)
        await store.putTombstone(name, tombstone)
        tombstones++
        continue
      }
      const record = item.room
      if (this.access.live) {
        const existed = await this.access.current(record.name)
        await this.access.apply(record.name, record.updates[0]!)
        // Versions of a room the server already has would interleave with its own: keep those.
        if (!existed) for (const v of record.versions) await store.putVersion(record.name, { at: v.at, seq: v.seq, state: v.state })
      } else {
        await store.putRoom(record)
      }
      restored.add(record.name)
      onRoom?.(record.name)
    }
    let verified = 0
    for await (const item of decodeBackup(open())) {
      if ('tombstone' in item && !this.access.live) {
        const kept = (await store.load(item.tombstone.name)).tombstone
        if (!kept || !Buffer.from(kept).equals(Buffer.from(item.tombstone.tombstone))) {
          throw new CoeditError('RESTORE_VERIFY_FAILED', `the tombstone of room "${item.tombstone.name}" does not read back as the backup holds it`)
        }
      }
      if (!('room' in item)) continue
      const record = item.room
      verified++
      if (isEmptyUpdate(record.updates[0]!) && this.access.live) continue
      // Offline the store must hold the backup's bytes; they are compared as an update, not
      // integrated: two integrations of the same structs need not agree (see sameUpdate).
      const ok = this.access.live
        ? await this.access.current(record.name).then((now) => now !== undefined && containsState(now.state, record.updates[0]!))
        : await store.load(record.name).then((stored) => stored.updates.length > 0 && sameUpdate(mergeUpdates(stored.updates), record.updates[0]!))
          && (await store.listVersions(record.name)).length === record.versions.length
      if (!ok) throw new CoeditError('RESTORE_VERIFY_FAILED', `room "${record.name}" does not read back as the backup holds it`)
    }
    return { rooms: (header?.rooms ?? verified) - unreadable.length, verified, unreadable, tombstones }
  }
}

/** An exception reading a room's stored data, as an error that names the room. */
function unreadable(room: string, err: unknown): unknown {
  if (err instanceof CoeditError) return err
  const e = err as Error
  return new CoeditError('ROOM_UNREADABLE', `room "${room}" could not be read (${e.name}: ${e.message}); every other room is unaffected`, { cause: err })
}

function unreadableAs<T>(room: string, fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    throw unreadable(room, err)
  }
}

function isEmptyUpdate(update: Uint8Array): boolean {
  const decoded = Y.decodeUpdate(update)
  return decoded.structs.length === 0 && decoded.ds.clients.size === 0
}
