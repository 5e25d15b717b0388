/**
 * A Store wrapper for race and failure tests: counts calls and lets a test delay or
 * fail `load`, `append`, `compact` and `delete` of chosen rooms.
 */
import type { AppendMeta, DeleteOptions, DeleteResult, RoomInfo, Store, StoredRoom, WriteFence } from '../../server/persistence/store.js'

export type Hook = (room: string) => Promise<void> | void

export class ControlledStore implements Store {
  readonly calls = { load: 0, append: 0, compact: 0, delete: 0 }
  readonly loads = new Map<string, number>()
  /** Runs before the inner call; throw (or reject) to make the call fail. */
  beforeLoad: Hook | undefined
  beforeAppend: Hook | undefined
  beforeCompact: Hook | undefined
  beforeDelete: Hook | undefined

  constructor(readonly inner: Store) {}

  async load(room: string): Promise<StoredRoom> {
    this.calls.load++
    this.loads.set(room, (this.loads.get(room) ?? 0) + 1)
    await this.beforeLoad?.(room)
    return this.inner.load(room)
  }

  async append(room: string, updates: readonly Uint8Array[], meta?: AppendMeta): Promise<number> {
    this.calls.append++
    await this.beforeAppend?.(room)
    return this.inner.append(room, updates, meta)
  }

  async compact(room: string, state: Uint8Array, upTo: number, fence?: WriteFence): Promise<void> {
    this.calls.compact++
    await this.beforeCompact?.(room)
    return this.inner.compact(room, state, upTo, fence)
  }

  async delete(room: string, options?: DeleteOptions): Promise<DeleteResult> {
    this.calls.delete++
    await this.beforeDelete?.(room)
    return this.inner.delete(room, options)
  }

  listRooms(): Promise<RoomInfo[]> {
    return this.inner.listRooms()
  }

  close(): Promise<void> {
    return this.inner.close()
  }
}

/** A promise the test resolves by hand. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void
  const promise = new Promise<void>((resolve) => { open = resolve })
  return { promise, open }
}
