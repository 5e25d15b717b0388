/**
 * The storage interface every backend implements (LevelDB, memory, and any cluster
 * store). It is deliberately small: a room is an append-only log of Yjs updates plus
 * an optional compacted state that replaces a prefix of the log.
 *
 * Contract (checked by test/store-conformance.test.ts against every backend):
 * - `append` resolves only once its updates are durable, and sequence numbers of a
 *   room grow strictly in the order appends were called.
 * - `load` returns the compacted state (if any) followed by every later update.
 * - `compact(room, state, upTo)` replaces updates 1..upTo by `state`, which must be
 *   their merge; appends running concurrently are not affected.
 * - `delete(room)` removes everything stored of the room (log, state, metadata, history log,
 *   versions) in one atomic step: an append called before it is deleted with the rest, one
 *   called once it resolved starts the room afresh. It makes the room's `generation` grow at
 *   the call, and from then on a write naming an older generation (a process that loaded the
 *   room before the delete) is refused with ROOM_DELETED, so nothing of the deleted room is
 *   written back into the new one. (An append naming no generation, called while the delete
 *   runs, may land on either side of it.)
 */
import { CoeditError } from '../errors.js'
import type { PathMarks } from '../base/path-trace.js'

export interface StoredRoom {
  /** Updates in the order they must be applied; the compacted state, if any, comes first. */
  updates: Uint8Array[]
  /** Sequence number of the last stored update; 0 for a room never written (or just deleted). */
  lastSeq: number
  /** How many log entries follow the compacted state (what compaction would fold in). */
  pendingUpdates: number
  /** How many times the room was deleted (see `delete`, WriteFence); absent: 0. */
  generation?: number
  /** Left by `delete(room, { tombstone: true })`: the deleted content's client IDs (server/persistence/tombstone.ts). */
  tombstone?: Uint8Array
}

/**
 * Which incarnation of a room a write is for. A room deleted since its writer loaded it is a
 * new room: the store refuses the write with a CoeditError ROOM_DELETED instead of mixing
 * the old room into it (a cluster process that has not heard of the delete yet, a
 * compaction or a version being written as the delete runs).
 */
export interface WriteFence {
  /** `generation` as `load` (or `readLog`) returned it. Absent: not checked (offline tools). */
  generation?: number
}

/** The error of a write refused by its fence. */
export function roomDeletedError(room: string): CoeditError {
  return new CoeditError('ROOM_DELETED', `room "${room}" was deleted since this write's copy of it was loaded`)
}

/** The order of room names every store lists them in: UTF-16 code units, as `<` compares. */
export function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * The first line of every public store method (abstract-level's pattern: the public method
 * asserts, then does the work): after `close()` each rejects with STORE_CLOSED, the same for
 * every backend (the conformance suite calls each one).
 */
export function assertOpen(closed: boolean): void {
  if (closed) throw new CoeditError('STORE_CLOSED', 'store is closed')
}

export function isRoomDeleted(err: unknown): boolean {
  return err instanceof CoeditError && err.code === 'ROOM_DELETED'
}

export interface DeleteOptions {
  /** Keep a tombstone of the deleted content (server/persistence/tombstone.ts), merged with any earlier one. */
  tombstone?: boolean
}

export interface DeleteResult {
  /** Something was stored under the name (content, versions or history). */
  existed: boolean
  /** The generation that was deleted: writes naming it, or an older one, are refused from now on. */
  deleted: number
}

export interface RoomInfo {
  name: string
  /** Stored updates not yet folded into the compacted state. */
  updates: number
  /** Bytes on disk for this room's state and updates (values only). */
  bytes: number
  /** Last change, ms since the epoch; undefined if unknown. */
  updatedAt: number | undefined
  lastSeq: number
}

/** Who made the updates of one append: the connection's user, when known (the history log records it). */
export interface AppendMeta extends WriteFence {
  /** `user.id`: the token's `sub`, or what an `authenticate` hook says. */
  user?: string
  /** --trace-path: the update's stage marks; a store that batches stamps `batch` and `fsync`. */
  marks?: PathMarks
}

/** What a built-in store tells (server/base/events.ts), when given an event sink. */
export interface StoreEvents {
  /** A group commit of `updates` updates (every room's) was written in `ms`. */
  'store.batch': { updates: number; ms: number }
}

export interface Store {
  load(room: string): Promise<StoredRoom>
  /** `meta` is recorded with the updates by stores that keep a history log; others ignore it. */
  append(room: string, updates: readonly Uint8Array[], meta?: AppendMeta): Promise<number>
  compact(room: string, state: Uint8Array, upTo: number, fence?: WriteFence): Promise<void>
  /** See the contract above; with `tombstone`, `load` returns one from now on (until a plain delete). */
  delete(room: string, options?: DeleteOptions): Promise<DeleteResult>
  /** Rooms with something stored (a deleted room is not listed, even with a tombstone). */
  listRooms(): Promise<RoomInfo[]>
  close(): Promise<void>
}

// ---- versions and backup (optional) ----------------------------------------------------
// Optional capabilities: every built-in store implements them; a store of your own
// without them serves rooms but has no history and no backup.

/** One stored version of a room: its whole state at a moment. */
export interface VersionInfo {
  /** Per-room id, growing with every version recorded. */
  id: number
  /** When it was recorded, ms since the epoch. */
  at: number
  /** The room's last stored update sequence number the version includes. */
  seq: number
  /** Size of the stored state. */
  bytes: number
  /** Recorded just before a revert: retention keeps it while it is inside the exact window. */
  pinned?: boolean
}

export interface StoredVersion extends VersionInfo {
  state: Uint8Array
}

/** A room as a backup holds it: everything `load` returns plus its metadata and versions. */
export interface RoomRecord {
  name: string
  updatedAt: number | undefined
  lastSeq: number
  /** What `load` would return: the compacted state first, then later updates. */
  updates: Uint8Array[]
  versions: StoredVersion[]
  /** The room's history log (stores that keep one); absent in old backups. */
  log?: HistoryLog
}

/** A consistent read view of every room as of the moment it was taken. */
export interface StoreSnapshot {
  /** Every room in the view, sorted by name. */
  readonly rooms: readonly string[]
  /**
   * The tombstones in the view (server/persistence/tombstone.ts), by room name: rooms deleted with
   * `{ tombstone: true }`, whether or not something was stored under the name since (such a
   * name is in `rooms` too). Absent: the store keeps none.
   */
  readonly tombstones?: ReadonlyMap<string, Uint8Array>
  /** One room as the view holds it. */
  read(room: string): Promise<RoomRecord>
  close(): Promise<void>
}

export interface VersionedStore extends Store {
  /** Records a version of `room`; returns its info (with the id it was given). */
  putVersion(room: string, version: { at: number; seq: number; state: Uint8Array; pinned?: boolean }, fence?: WriteFence): Promise<VersionInfo>
  /** Versions of `room`, oldest first, without their states. */
  listVersions(room: string): Promise<VersionInfo[]>
  getVersion(room: string, id: number): Promise<StoredVersion | undefined>
  deleteVersions(room: string, ids: readonly number[]): Promise<void>
  /** A consistent view of every room (a LevelDB snapshot) for a backup taken while serving. */
  snapshot(): Promise<StoreSnapshot>
  /**
   * Replaces whatever `record.name` holds by `record` (state, metadata and versions) in
   * one atomic write: what restoring a backup does. A tombstone of the name goes too.
   */
  putRoom(record: RoomRecord): Promise<void>
  /**
   * Sets the tombstone of `room` to `tombstone`, replacing any, and leaves what is stored
   * under the name as it is: what restoring a backup of a tombstoned room does (after its
   * `putRoom`, if it had content). Optional: a backup with tombstones cannot be restored
   * offline into a store without it.
   */
  putTombstone?(room: string, tombstone: Uint8Array): Promise<void>
}

// ---- history log (exact point in time, optional) --------------------------------------
// Every stored update is also written, with when it was stored and by whom, to a history
// log that compaction does not touch. The log's oldest part is folded into a base state
// (server/operator/history-log.ts decides when), so the log covers a window, not all time.

/** One stored update as the history log holds it. */
export interface LogEntry {
  seq: number
  /** When it was stored, ms since the epoch (the store's clock, never decreasing per room). */
  at: number
  user: string | undefined
  update: Uint8Array
}

/** What the log's folded prefix holds: the room through `upTo`, exact from instant `at` on. */
export interface LogBase {
  upTo: number
  /** The log answers "the room at T" exactly for T >= at (earlier: only the versions). */
  at: number
  state: Uint8Array
}

export interface HistoryLog {
  /** Undefined: nothing was folded, the entries start at the room's first update. */
  base: LogBase | undefined
  /** Entries after `base.upTo`, oldest first. */
  entries: LogEntry[]
  /** The room's generation the log was read from (a fold of it names it); absent: 0. */
  generation?: number
  /**
   * Set when the log breaks off before the room's end: update `unmarked` was stored but the
   * log cannot say when (an older coedit, which keeps no history log, wrote it, or deleted
   * logged updates by compacting). `entries` end before it, and nothing after it is exact
   * until the store repairs the log (LevelStore does at open). Absent: the entries are the
   * whole log in the range asked for.
   */
  unmarked?: number
}

export interface LogRange {
  afterSeq?: number
  untilAt?: number
  limit?: number
}

export interface HistoryLogStore extends Store {
  /**
   * The log of `room`: its base and the entries with seq > `afterSeq` (default: all) and
   * stored at or before `untilAt` (default: all), oldest first; at most `limit` of them
   * (default: no limit).
   */
  readLog(room: string, range?: LogRange): Promise<HistoryLog>
  /** Replaces the base by `base` and drops the entries through `base.upTo`, in one write. */
  foldLog(room: string, base: LogBase, fence?: WriteFence): Promise<void>
}

export function isHistoryLogStore(store: Store): store is HistoryLogStore {
  const s = store as Partial<HistoryLogStore>
  return typeof s.readLog === 'function' && typeof s.foldLog === 'function'
}

/** An empty Yjs update: the state of a room with nothing in it. */
export const EMPTY_STATE = new Uint8Array([0, 0])

// ---- health (optional) -----------------------------------------------------------------
// Optional too: /readyz reports a store without it as ready but unchecked.

export interface PingableStore extends Store {
  /** Proves the store is open and can write and read back; rejects (with a `code`) otherwise. */
  ping(): Promise<void>
}

export function isPingableStore(store: Store): store is PingableStore {
  return typeof (store as Partial<PingableStore>).ping === 'function'
}

// ---- replicas: several processes on one store (cluster/) ---------------------------------
// A store that more than one process writes (PostgreSQL) lets each read what the others
// stored, to heal what the bus missed. cluster/ takes any store with these two methods.

/** Everything stored after a sequence number: the compacted state if it overlaps, then updates. */
export interface StoredSince {
  updates: Array<{ seq: number; data: Uint8Array }>
  /** Set when compaction folded updates after `afterSeq`: apply it first (idempotent). */
  state: { upTo: number; data: Uint8Array } | undefined
  lastSeq: number
  /** The room's generation now: another than the reader's means the room was deleted (see Store.delete). */
  generation: number
}

export interface ReplicaStore extends Store {
  /** What `room` stored after `afterSeq` (another process's writes included). */
  readSince(room: string, afterSeq: number): Promise<StoredSince>
  /** The last stored sequence number and generation of each of `rooms` that exists. */
  lastSeqs(rooms: readonly string[]): Promise<Map<string, { lastSeq: number; generation: number }>>
}

export function isReplicaStore(store: Store): store is ReplicaStore {
  const s = store as Partial<ReplicaStore>
  return typeof s.readSince === 'function' && typeof s.lastSeqs === 'function'
}

export function isVersionedStore(store: Store): store is VersionedStore {
  const s = store as Partial<VersionedStore>
  return typeof s.putVersion === 'function' && typeof s.snapshot === 'function' && typeof s.putRoom === 'function'
}
