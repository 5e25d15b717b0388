/**
 * How a room knows a connection (`Peer`: send, close, leave, probe) and who made a change
 * (`User`). Its own module so `room.ts` and `presence.ts` both depend on it and not on each other.
 */
import type { CloseCode } from './close-codes.js'

export interface Peer {
  /** Short id for logs. */
  readonly id: string
  /** Opted into coedit extension messages (`?coedit=1`). */
  readonly wantsAck: boolean
  /** A reader: receives the document and awareness, but its document changes are never applied, relayed or stored. */
  readonly readOnly?: boolean
  /** Who is connected, when known (the token's `sub`, or an `authenticate` hook): the history log records it. */
  readonly user?: User
  send(message: Uint8Array): void
  close(close: CloseCode, detail?: string): void
  /**
   * The server ends this connection's part in the room (the room was deleted, or
   * `rooms.disconnect`). Absent: `close`. A Hocuspocus document leaves alone; the other
   * documents of its socket stay.
   */
  leave?(close: CloseCode, detail?: string): void
  /**
   * Checks that the connection is still there (a WebSocket ping): true once it shows any
   * sign of life, false if none comes within a short timeout. Presence asks before handing
   * a client ID it owns to another connection; absent = never handed over.
   */
  probe?(): Promise<boolean>
}

/** Who made a change: the history log records `id`; hooks and webhooks are told. */
export interface User {
  readonly id: string
  readonly name?: string
}
