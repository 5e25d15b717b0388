/**
 * The embedder's hooks (`startServer({ hooks })`): the public face of the server's
 * events. `subscribeHooks` turns internal events (server/base/events.ts) into hook calls with
 * public, stable arguments: room names instead of room objects, a `connection` instead of
 * a peer, a copy of the document, a copy of each update.
 *
 * Every hook but `authenticate` is told after the fact and never awaited: an exception,
 * a rejection or a promise that never settles is contained (logged as `contained_error`,
 * path `hook`, and counted as coedit_errors_total{kind="hook"}) or simply left running.
 * No hook can lose an edit, hold up a room or stop the server. `authenticate` decides
 * who gets in, so it is awaited, bounded by --auth-timeout (server/transport/authorizer.ts).
 */
import type * as Y from 'yjs'
import type { Logger } from 'pino'
import type { Access } from '../transport/auth.js'
import type { AuthenticateHook } from '../transport/authorizer.js'
import { docFromUpdates } from '../room/yjs-log.js'
import type { EventSource } from '../base/events.js'
import type { StatelessEvent } from '../transport/hocuspocus.js'
import type { RegistryEvents } from '../room/registry.js'
import type { Room, RoomEvents, UpdateOrigin } from '../room/room.js'
import type { Peer, User } from '../room/peer.js'

/** A connection to a room, as hooks see it (the same object in `connected` and `disconnected`). */
export interface Connection {
  /** Unique in this process (a Hocuspocus socket's documents: `socket.n`). */
  readonly id: string
  /** Who connected: from the `authenticate` hook, or the token's `sub` (as `id`); undefined if unknown. */
  readonly user: User | undefined
  readonly access: Access
}

/** Who made a change. */
export interface ChangeOrigin {
  /**
   * `connection`: a client (y-websocket or Hocuspocus); `api`: server.documents or the
   * HTTP document API; `admin`: the admin API (import, revert, restore); `remote`: another
   * process of the cluster stored it (that process reports it with its own kind).
   */
  readonly kind: 'connection' | 'api' | 'admin' | 'remote'
  /** Known for `connection` (its user) and `api` (the user it was made for). */
  readonly user?: User
}

export interface Hooks {
  /**
   * Decides who may open a room, instead of the JWT check (--auth-secret /
   * --auth-public-key are then unused). Runs for every y-websocket upgrade and every
   * Hocuspocus document's auth message (and the HTTP document API). `token` is what the
   * client sent: the `token` query parameter or `Authorization: Bearer` header (a
   * Hocuspocus provider's `token` option); `request` has the upgrade request's `headers`,
   * parsed `cookies` and client `ip`.
   *
   * Return `{ access: 'read' | 'write', user?: { id, name? } }` to let the client in (a
   * reader's edits are refused; `user.id` is recorded with its changes), or `false` to
   * refuse it (HTTP 403). Throw an error with `status: 401` or `403` to refuse with that
   * status (its message is the reason the client is given). Any other exception, or
   * another answer, refuses with 500 and is logged and counted
   * (coedit_errors_total{kind="hook"}); no answer within --auth-timeout (default 10 s)
   * refuses with 503, is counted the same way, and aborts `signal`.
   */
  authenticate?: AuthenticateHook
  /** A connection joined `room` (after authentication and the room's load; it has been greeted). */
  connected?: (event: { room: string; connection: Connection }) => void | Promise<void>
  /** A connection left `room`; `code` is its WebSocket close code (a Hocuspocus document closed on its own: 1000, or 4401 when its token expired). */
  disconnected?: (event: { room: string; connection: Connection; code: number }) => void | Promise<void>
  /**
   * `room` was loaded into memory, before anyone is served. `document` is a COPY of its
   * document: changing it changes nothing (the server logs a warning if you do). To write
   * to a room, use `server.documents.transact`.
   */
  loaded?: (event: { room: string; document: Y.Doc }) => void | Promise<void>
  /** `room` was unloaded from memory (idle past --room-grace, evicted, failed, deleted, or at shutdown). Pairs with `loaded`. */
  unloaded?: (event: { room: string }) => void | Promise<void>
  /**
   * A change to `room` is durably stored (and being sent to its connections). `update` is
   * a copy of the stored Yjs update; `origin` says who made it. In cluster mode every
   * process calls it for every change: filter on `origin.kind !== 'remote'` to handle each
   * change once.
   */
  changed?: (event: { room: string; update: Uint8Array; origin: ChangeOrigin }) => void | Promise<void>
  /**
   * A Hocuspocus client's stateless message (`provider.sendStateless(payload)`). Call
   * `event.broadcast(payload)` to pass it to the room's other Hocuspocus connections.
   */
  stateless?: (event: StatelessEvent) => void | Promise<void>
}

/** The events the hooks are made of. */
type HookEvents = RoomEvents & RegistryEvents

/** Subscribes the hooks (all but `authenticate` and `stateless`, which are asked directly) to `events`. */
export function subscribeHooks(events: EventSource<HookEvents>, hooks: Hooks, log: Logger): void {
  const connections = new WeakMap<Peer, Connection>()
  const connectionOf = (peer: Peer): Connection => {
    let connection = connections.get(peer)
    if (!connection) {
      connection = Object.freeze({ id: peer.id, user: peer.user, access: peer.readOnly ? 'read' : 'write' } as const)
      connections.set(peer, connection)
    }
    return connection
  }
  const { connected, disconnected, loaded, unloaded, changed } = hooks
  if (connected) events.on('peer.joined', ({ room, peer }) => connected({ room: room.name, connection: connectionOf(peer) }), 'hooks.connected')
  if (disconnected) events.on('peer.left', ({ room, peer, code }) => disconnected({ room: room.name, connection: connectionOf(peer), code }), 'hooks.disconnected')
  // `unloaded` only for rooms `loaded` was told of: a room that failed while being loaded had neither.
  const announced = new WeakSet<Room>()
  if (loaded || unloaded) {
    events.on('room.loaded', ({ room }) => {
      announced.add(room)
      if (loaded) return loaded({ room: room.name, document: copyOf(room, log) })
    }, 'hooks.loaded')
  }
  if (unloaded) {
    events.on('room.unloaded', ({ room }) => {
      if (announced.delete(room)) return unloaded({ room: room.name })
    }, 'hooks.unloaded')
  }
  if (changed) {
    events.on('update.applied', ({ room, update, origin }) => changed({ room: room.name, update: update.slice(), origin: originOf(origin) }), 'hooks.changed')
  }
}

/** The room's document as a copy: what a hook does to it cannot reach the room unseen. */
function copyOf(room: Room, log: Logger): Y.Doc {
  const doc = docFromUpdates([room.encodeState()])
  const warn = (): void => {
    doc.off('update', warn)
    log.warn({ event: 'hook_document_changed', room: room.name }, 'the loaded hook changed its copy of the document, which changes nothing: write with server.documents.transact')
  }
  doc.on('update', warn)
  return doc
}

function originOf(origin: UpdateOrigin): ChangeOrigin {
  switch (origin.source) {
    case 'connection':
      return origin.peer.user ? { kind: 'connection', user: origin.peer.user } : { kind: 'connection' }
    case 'api':
      return origin.user ? { kind: 'api', user: origin.user } : { kind: 'api' }
    case 'admin':
      return { kind: 'admin' }
    default:
      // 'remote' ('load' is never a change: a room's stored content is not told as one).
      return { kind: 'remote' }
  }
}
