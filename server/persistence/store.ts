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
