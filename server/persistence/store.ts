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
 */
export interface StoredRoom {
  /** Updates in the order they must be applied; the compacted state, if any, comes first. */
  updates: Uint8Array[]
  /** Sequence number of the last stored update; 0 for a room never written. */
  lastSeq: number
  /** How many log entries follow the compacted state (what compaction would fold in). */
  pendingUpdates: number
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

export interface Store {
  load(room: string): Promise<StoredRoom>
  append(room: string, updates: readonly Uint8Array[]): Promise<number>
  compact(room: string, state: Uint8Array, upTo: number): Promise<void>
  listRooms(): Promise<RoomInfo[]>
  close(): Promise<void>
}

// ---- history and backup (operator CLI, issue 4) -------------------------------------
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
}

/** A consistent read view of every room as of the moment it was taken. */
export interface StoreSnapshot {
  /** Every room in the view, sorted by name. */
  readonly rooms: readonly string[]
  /** One room as the view holds it. */
  read(room: string): Promise<RoomRecord>
  close(): Promise<void>
}

export interface VersionedStore extends Store {
  /** Records a version of `room`; returns its info (with the id it was given). */
  putVersion(room: string, version: { at: number; seq: number; state: Uint8Array }): Promise<VersionInfo>
  /** Versions of `room`, oldest first, without their states. */
  listVersions(room: string): Promise<VersionInfo[]>
  getVersion(room: string, id: number): Promise<StoredVersion | undefined>
  deleteVersions(room: string, ids: readonly number[]): Promise<void>
  /** A consistent view of every room (a LevelDB snapshot) for a backup taken while serving. */
  snapshot(): Promise<StoreSnapshot>
  /**
   * Replaces whatever `record.name` holds by `record` (state, metadata and versions) in
   * one atomic write: what restoring a backup does.
   */
  putRoom(record: RoomRecord): Promise<void>
}

// ---- health (operations, issue 7) ----------------------------------------------------
// Optional too: /readyz reports a store without it as ready but unchecked.

export interface PingableStore extends Store {
  /** Proves the store is open and can write and read back; rejects (with a `code`) otherwise. */
  ping(): Promise<void>
}

export function isPingableStore(store: Store): store is PingableStore {
  return typeof (store as Partial<PingableStore>).ping === 'function'
}

// ---- end of health --------------------------------------------------------------------

export function isVersionedStore(store: Store): store is VersionedStore {
  const s = store as Partial<VersionedStore>
  return typeof s.putVersion === 'function' && typeof s.snapshot === 'function' && typeof s.putRoom === 'function'
}
