/**
 * Server-side documents: `server.documents.transact(room, (doc) => …, { user })` and
 * `server.documents.get(room)`. A change made here takes the path of a client's update:
 * the same checks (nesting depth, document size, clocks), stored, then applied and relayed
 * to every connection (and, in cluster mode, published to the other processes). The room
 * is loaded for the operation if it was not, and unloaded after the grace period again.
 *
 * The callback gets a copy of the room's document, not the room's own: the room's document
 * holds exactly what is stored (see room.ts), so a change to it directly would be served
 * and then lost. What the callback changes in the copy is captured as one update and
 * handed to the room. The copy is the room's state when the operation started; clients'
 * edits made meanwhile merge with it as any two concurrent edits do.
 *
 * Client IDs: the copy writes as a client ID taken from a small pool, not a fresh random
 * one per call (each would stay in the room's state vector forever). An ID is used by one
 * operation at a time, so its clock is always the room's: the previous operation with it
 * is stored and applied (or stored nothing) before the next one copies the room. An ID
 * never goes to a room deleted since it wrote there (see takeClientId), on whichever
 * process the delete was made.
 */
import * as Y from 'yjs'
import { CoeditError } from '../errors.js'
import { docFromUpdates } from '../room/yjs-log.js'
import { userIdOf } from '../transport/auth.js'
import type { ParsedRoom } from '../room/room-name.js'
import type { RoomRegistry } from '../room/registry.js'
import type { Room, UpdateOrigin } from '../room/room.js'

/** Who a change is made for: recorded with the stored update (history), reported to hooks. */
export interface DocumentUser {
  readonly id: string
  readonly name?: string
}

export interface TransactOptions {
  user?: DocumentUser
}

/** `server.documents`. */
export interface ServerDocuments {
  /**
   * Applies the changes `change` makes to `doc` (a copy of the room's document) as one
   * update, validated, stored and relayed like a client's. Resolves once it is stored (and
   * applied: a client joining afterwards gets it); resolves at once if nothing changed.
   * Rejects with a CoeditError (`code`) if refused (TOO_DEEP, DOCUMENT_TOO_LARGE,
   * IMPLAUSIBLE_CLOCK, BAD_ROOM_NAME, BAD_USER, STORE_FAILED, ROOM_UNAVAILABLE,
   * SHUTTING_DOWN; ROOM_DELETED if the room is deleted while the change is on its way,
   * DELETED_CONTENT if it touches a tombstoned room's old content), and with the callback's own error if it throws or rejects; nothing is
   * stored then. An async callback is awaited and everything it changes before it settles
   * is captured; changes after that are ignored.
   */
  transact(room: string, change: (doc: Y.Doc) => void | Promise<void>, options?: TransactOptions): Promise<void>
  /** A copy of the room's document: changing it changes nothing on the server. */
  get(room: string): Promise<Y.Doc>
}

export interface DocumentsOptions {
  registry: RoomRegistry
  /** The room name check of the WebSocket path (--max-room-name-length, --room-name-pattern). */
  checkName: (name: string) => ParsedRoom
}

/** What the document API may ask before an operation touches the room (its new-room budget). */
export type RoomGuard = (room: Room) => void

type ApiOrigin = Extract<UpdateOrigin, { source: 'api' }>

/**
 * IDs kept for reuse. Beyond the operations running at once the pool only grows by the
 * fresh IDs rooms deleted before need (see takeClientId); past this, one is let go.
 */
const MAX_POOLED_IDS = 64

/** Client IDs are 32-bit unsigned in Yjs (random.uint32). */
const randomClientId = (): number => Math.floor(Math.random() * 2 ** 32)

export class Documents implements ServerDocuments {
  private readonly freeIds: number[] = []
  /** Grows at each room delete: an ID taken before it is not pooled again (see roomDeleted). */
  private epoch = 0
  private closing = false

  constructor(private readonly options: DocumentsOptions) {}

  transact(room: string, change: (doc: Y.Doc) => void | Promise<void>, options: TransactOptions = {}): Promise<void> {
    return this.transactAs(room, change, options.user).then(() => {})
  }

  /** transact, telling whether anything was stored; `guard` runs first, inside the room. */
  async transactAs(room: string, change: (doc: Y.Doc) => void | Promise<void>, user: DocumentUser | undefined, guard?: RoomGuard): Promise<boolean> {
    const origin = apiOrigin(user)
    return this.withRoom(room, async (live) => {
      guard?.(live)
      const clientId = this.takeClientId(live)
      const epoch = this.epoch
      const release = (): void => { if (epoch === this.epoch && this.freeIds.length < MAX_POOLED_IDS) this.freeIds.push(clientId) }
      let update: Uint8Array | undefined
      try {
        update = await capture(live, clientId, change)
      } finally {
        if (!update) release()
      }
      if (!update) return false
      try {
        this.checkOpen()
        const stored = await live.applyApiUpdate(update, origin)
        release()
        return stored
      } catch (err) {
        // A refusal stored nothing; a failed append may still have committed, and reusing
        // the ID then could write two different structs under one ID and clock.
        if (err instanceof CoeditError && err.code !== 'STORE_FAILED') release()
        throw err
      }
    })
  }

  /** Merges a Yjs update (the document API's POST): the checks and path of a client's update. */
  applyUpdate(room: string, update: Uint8Array, user: DocumentUser | undefined, guard?: RoomGuard): Promise<boolean> {
    const origin = apiOrigin(user)
    return this.withRoom(room, (live) => {
      guard?.(live)
      this.checkOpen()
      return live.applyApiUpdate(update, origin)
    })
  }

  get(room: string): Promise<Y.Doc> {
    return this.read(room, (live) => docFromUpdates([live.encodeState()]))
  }

  /** Runs `fn` on the loaded room: it must only read its document, and synchronously. */
  read<T>(room: string, fn: (room: Room) => T, guard?: RoomGuard): Promise<T> {
    return this.withRoom(room, (live) => {
      guard?.(live)
      return fn(live)
    })
  }

  /**
   * A room was deleted (here, or found deleted by another process): the IDs it held may come
   * back with an old client's copy (a delete without tombstone) or be refused for good (one
   * with), so no ID taken so far is used again: the pool starts afresh.
   */
  roomDeleted(): void {
    this.epoch++
    this.freeIds.length = 0
  }

  /** From now on, refuses new operations and the writes of those still in their callback. */
  close(): void {
    this.closing = true
  }

  private checkOpen(): void {
    if (this.closing) throw new CoeditError('SHUTTING_DOWN', 'the server is shutting down')
  }

  /** `name` if a WebSocket client could open it, else BAD_ROOM_NAME. */
  roomName(name: string): string {
    const checked = this.options.checkName(name)
    if (!checked.ok) throw new CoeditError('BAD_ROOM_NAME', checked.error)
    return checked.room
  }

  private async withRoom<T>(name: string, fn: (room: Room) => T | Promise<T>): Promise<T> {
    this.checkOpen()
    const room = this.roomName(name)
    let entered = false
    try {
      return await this.options.registry.use(room, (room) => {
        entered = true
        return fn(room)
      })
    } catch (err) {
      if (entered || err instanceof CoeditError) throw err
      throw new CoeditError('ROOM_UNAVAILABLE', `room ${room} could not be loaded: ${(err as Error).message}`, { cause: err })
    }
  }

  /**
   * An ID for an operation on `room`. A pooled ID is safe where the room's document has it
   * (its clock is the room's) or where the room was never deleted (generation 0: anything
   * the ID wrote in it is in the document). In a room deleted before (generation > 0) an ID
   * it does not have may have written in a deleted copy: on another cluster process, whose
   * delete this process never hears of while it has not loaded the room, so `roomDeleted`
   * cannot be relied on for it. Reusing it would be refused by the tombstone, or (no
   * tombstone) write new content under the IDs of an offline copy's old items.
   */
  private takeClientId(room: Room): number {
    const clients = room.doc.store.clients
    let at = this.freeIds.findIndex((id) => clients.has(id))
    if (at < 0 && room.generation === 0) at = this.freeIds.length - 1
    if (at >= 0) return this.freeIds.splice(at, 1)[0]!
    // A fresh ID must not be one of the room's clients (its clock would be theirs), nor
    // one of a deleted copy's (its tombstone would refuse every change).
    let id = randomClientId()
    while (room.doc.store.clients.has(id) || room.isTombstoned(id)) id = randomClientId()
    return id
  }
}

function apiOrigin(user: DocumentUser | undefined): ApiOrigin {
  if (user === undefined) return { source: 'api' }
  if (typeof user !== 'object' || user === null || userIdOf(user.id) === undefined) {
    throw new CoeditError('BAD_USER', 'user.id must be a non-empty string of at most 256 characters without control characters')
  }
  if (user.name !== undefined && typeof user.name !== 'string') throw new CoeditError('BAD_USER', 'user.name must be a string')
  return { source: 'api', user: user.name === undefined ? { id: user.id } : { id: user.id, name: user.name } }
}

/** Runs `change` on a copy of the room's document as `clientId`; the update it made, if any. */
async function capture(room: Room, clientId: number, change: (doc: Y.Doc) => void | Promise<void>): Promise<Uint8Array | undefined> {
  const copy = docFromUpdates([room.encodeState()])
  copy.clientID = clientId
  const made: Uint8Array[] = []
  copy.on('update', (update: Uint8Array) => made.push(update))
  try {
    // The synchronous part is one transaction; an async callback's later changes each make their own.
    await copy.transact(() => change(copy))
  } finally {
    copy.destroy()
  }
  if (made.length === 0) return undefined
  return made.length === 1 ? made[0] : Y.mergeUpdates(made)
}
