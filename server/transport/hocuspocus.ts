/**
 * Hocuspocus clients (`@hocuspocus/provider`): one WebSocket carrying many documents, each
 * authenticated by its own token message before anything else of it is handled.
 *
 * A `HocuspocusConnection` owns one such socket's documents. Each document it opens joins
 * its room as a `DocumentPeer`, so the room treats it exactly like a y-websocket
 * connection: same validation, persist-before-relay, limits and presence rules. The peer
 * translates what the room sends into the dialect (protocol-hocuspocus.ts): sync and
 * awareness get the document's address in front; the room's "persisted" count becomes
 * one sync-status message per stored document message, so the provider's
 * `unsyncedChanges` reaches 0 only once its edits are on disk.
 *
 * No `ws` here: the socket (`HocuspocusSocket`, connection.ts) is a `Wire` (send, close) and
 * hands over its frames.
 */
import type { Logger } from 'pino'
import type { AuthResult, Access } from './auth.js'
import type { AuthRequest, AuthorizeRequest } from './authorizer.js'
import {
  CLOSE_BAD_MESSAGE, CLOSE_INTERNAL_ERROR, CLOSE_NORMAL, CLOSE_RATE_LIMITED, CLOSE_TOO_MANY_NEW_ROOMS, CLOSE_UNAUTHORIZED, type CloseCode,
} from '../room/close-codes.js'
import type { Containment } from '../base/containment.js'
import {
  MESSAGE_AWARENESS, MESSAGE_COEDIT, MESSAGE_SYNC, ProtocolError, decodeClientMessage, decodeServerMessage,
} from '../room/protocol.js'
import {
  HP_AUTH, HP_AWARENESS, HP_CLOSE, HP_QUERY_AWARENESS, HP_STATELESS, HP_SYNC,
  decodeHpAuth, decodeHpFrame, decodeHpStateless, encodeHpAuthenticated, encodeHpClose, encodeHpDenied,
  encodeHpMessage, encodeHpStateless, encodeHpSyncStatus,
} from './protocol-hocuspocus.js'
import type { Room } from '../room/room.js'
import type { Peer, User } from '../room/peer.js'
import type { ParsedRoom } from '../room/room-name.js'
import { validateUpdate } from '../room/update-checks.js'

/** The socket under a Hocuspocus connection, as the transport provides it. */
export interface Wire {
  readonly id: string
  send(message: Uint8Array): void
  close(close: CloseCode, detail?: string): void
  /** Peer.probe for the whole socket: its documents live and die with it. */
  probe?(): Promise<boolean>
}

/** What a stateless hook is told. */
export interface StatelessEvent {
  room: string
  payload: string
  connection: { id: string; access: Access; user: User | undefined }
  /** Sends `payload` to every other Hocuspocus connection of the room. */
  broadcast(payload: string): void
}

export interface HocuspocusOptions {
  join(room: string, peer: Peer): Promise<Room>
  /** The same check as a y-websocket upgrade's (server/transport/authorizer.ts); never rejects. */
  authorize(request: AuthorizeRequest): Promise<AuthResult>
  checkName(name: string): ParsedRoom
  /** Called with every stateless message (the `stateless` hook); absent = dropped. */
  stateless?: (event: StatelessEvent) => void | Promise<void>
  containment: Containment
  log: Logger
  /** Documents one socket may have open or waiting for authentication. */
  maxDocuments: number
  /** Bytes of messages held for documents not yet authenticated, per socket. */
  maxQueuedBytes: number
}

/** setTimeout fires at once for delays past 2^31-1 ms; longer waits are chained. */
const MAX_TIMER = 2 ** 31 - 1

/**
 * The rooms' Hocuspocus peers, for stateless broadcasts (the room itself only relays
 * documents and presence). One per server.
 */
export class HocuspocusHub {
  private readonly byRoom = new Map<string, Set<DocumentPeer>>()

  constructor(readonly options: HocuspocusOptions) {}

  add(peer: DocumentPeer): void {
    let set = this.byRoom.get(peer.room)
    if (!set) this.byRoom.set(peer.room, set = new Set())
    set.add(peer)
  }

  remove(peer: DocumentPeer): void {
    const set = this.byRoom.get(peer.room)
    if (!set?.delete(peer)) return
    if (set.size === 0) this.byRoom.delete(peer.room)
  }

  stateless(from: DocumentPeer, payload: string): void {
    const hook = this.options.stateless
    if (!hook) return
    const event: StatelessEvent = {
      room: from.room,
      payload,
      connection: { id: from.id, access: from.readOnly ? 'read' : 'write', user: from.user },
      broadcast: (out) => {
        for (const peer of this.byRoom.get(from.room) ?? []) if (peer !== from) peer.sendStateless(out)
      },
    }
    const { containment } = this.options
    try {
      containment.check('hook')
      void Promise.resolve(hook(event)).catch((err: unknown) => containment.report('hook', err, { hook: 'stateless', room: from.room }))
    } catch (err) {
      containment.report('hook', err, { hook: 'stateless', room: from.room })
    }
  }
}

/** One document of a Hocuspocus socket, as its room sees it. */
export class DocumentPeer implements Peer {
  readonly id: string
  /** The room gives us its "persisted" count; we turn it into sync-status messages. */
  readonly wantsAck = true
  readonly readOnly: boolean
  readonly user: User | undefined
  /** Document messages acknowledged with a sync status so far. */
  private acknowledged = 0

  constructor(
    private readonly wire: Wire,
    readonly room: string,
    readonly address: string,
    access: Access,
    index: number,
    user: User | undefined,
    /** Ends this document's session on its socket (see leave), told as closed with `code`. */
    private readonly onLeave: (peer: DocumentPeer, code: number) => void = () => {},
  ) {
    this.id = `${wire.id}.${index}`
    this.readOnly = access === 'read'
    this.user = user
  }

  send(message: Uint8Array): void {
    switch (message[0]) {
      case MESSAGE_SYNC:
      case MESSAGE_AWARENESS:
        this.wire.send(prefixed(this.address, message))
        return
      case MESSAGE_COEDIT: {
        const decoded = decodeServerMessage(message)
        if (decoded.type !== 'coedit-persisted') return
        for (; this.acknowledged < decoded.count; this.acknowledged++) this.wire.send(encodeHpSyncStatus(this.address, true))
        return
      }
      default:
        // The room's auth message only tells a reader its writes were refused; a
        // Hocuspocus reader already knows from its "readonly" scope and its sync status.
    }
  }

  /** A reader's document message: answered at once, never stored (the room drops it too). */
  refused(applied: boolean): void {
    this.wire.send(encodeHpSyncStatus(this.address, applied))
  }

  sendStateless(payload: string): void {
    this.wire.send(encodeHpStateless(this.address, payload))
  }

  /** Detaches just this document: the provider hears a close for it, the socket stays. */
  detach(reason: string): void {
    this.wire.send(encodeHpClose(this.address, reason))
  }

  /** The socket's liveness is the document's: one ping however many documents it carries. */
  probe(): Promise<boolean> {
    return this.wire.probe ? this.wire.probe() : Promise.resolve(true)
  }

  /** The room's verdicts (malformed, too large, rate limits) end the whole socket, as for y-websocket. */
  close(close: CloseCode, detail?: string): void {
    this.wire.close(close, detail)
  }

  /**
   * The server ends this document's part in the room (a delete, `rooms.disconnect`, a room
   * that failed). "Do not come back" (4400-4499: a deleted room) closes just this document
   * (Hocuspocus' close message, the code in its reason): the socket's other documents stay,
   * and the provider has no close code that stops it. Any other code closes the socket, so
   * that the provider reconnects and authenticates each document again.
   */
  leave(close: CloseCode, detail?: string): void {
    if (close.code < 4400 || close.code > 4499) {
      this.wire.close(close, detail)
      return
    }
    this.detach(`${close.code}: ${detail ?? close.reason}`)
    this.onLeave(this, close.code)
  }
}

/**
 * One address's most recent prefixed message: a room relays one message object to all
 * its connections, and a document's Hocuspocus peers share an address, so it is framed
 * once for all of them.
 */
let lastMessage: Uint8Array | undefined
let lastAddress = ''
let lastPrefixed: Uint8Array = new Uint8Array(0)
function prefixed(address: string, message: Uint8Array): Uint8Array {
  if (message !== lastMessage || address !== lastAddress) {
    lastPrefixed = encodeHpMessage(address, message)
    lastMessage = message
    lastAddress = address
  }
  return lastPrefixed
}

type Session =
  | { state: 'authenticating'; queue: Uint8Array[]; bytes: number }
  /** Refused or closed: its messages are dropped until it sends a token again. */
  | { state: 'closed' }
  | { state: 'open'; peer: DocumentPeer; room: Room; expiry: NodeJS.Timeout | undefined }

const CLOSED: Session = { state: 'closed' }

export class HocuspocusConnection {
  private readonly sessions = new Map<string, Session>()
  private queuedBytes = 0
  private opened = 0
  private closed = false
  /** The socket's close code, once closed. */
  private closeCode = CLOSE_NORMAL.code

  /**
   * `request` is the socket's upgrade request, for the authenticate hook of each document.
   * `admitNewRoom` is the transport's budget of new rooms for the socket's address
   * (--max-new-rooms-per-minute): opening a document with nothing stored takes one.
   */
  constructor(
    private readonly wire: Wire,
    private readonly hub: HocuspocusHub,
    private readonly request: AuthRequest,
    private readonly admitNewRoom: (room: Room) => boolean = () => true,
  ) {}

  private get options(): HocuspocusOptions {
    return this.hub.options
  }

  /** Handles one binary frame. Malformed input closes the socket with 4400. */
  receive(data: Uint8Array): void {
    if (this.closed) return
    try {
      const frame = decodeHpFrame(data)
      if (frame.kind === 'pong') return
      const session = this.sessions.get(frame.address)
      if (!session || session.state === 'closed') {
        this.begin(frame.address, frame.document, frame.type, frame.message)
      } else if (session.state === 'authenticating') {
        this.hold(session, frame.message)
      } else {
        this.dispatch(session.peer, session.room, frame.address, frame.type, frame.message)
      }
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.options.log.warn({ event: 'bad_message', peer: this.wire.id, code: err.code, err: err.message, protocol: 'hocuspocus' }, 'malformed message, closing connection')
        this.wire.close(CLOSE_BAD_MESSAGE, `${err.code}: ${err.message}`)
      } else {
        this.options.log.error({ event: 'message_failed', peer: this.wire.id, err: String(err), protocol: 'hocuspocus' }, 'message handling failed')
        this.wire.close(CLOSE_INTERNAL_ERROR)
      }
    }
  }

  /** The socket closed with `code`: every document leaves its room. */
  close(code: number): void {
    this.closed = true
    this.closeCode = code
    for (const session of this.sessions.values()) this.end(session, code)
    this.sessions.clear()
    this.queuedBytes = 0
  }

  /** The largest write backlog of this socket's rooms (the transport stops reading above a bound). */
  backlog(): { size: number; settled: Promise<unknown> } {
    let size = 0
    let settled: Promise<unknown> = Promise.resolve()
    for (const s of this.sessions.values()) {
      if (s.state === 'open' && s.room.writeBacklog > size) {
        size = s.room.writeBacklog
        settled = s.room.writesSettled()
      }
    }
    return { size, settled }
  }

  private begin(address: string, document: string, type: number, message: Uint8Array): void {
    // The provider authenticates first; anything else for a document without an open
    // session is what was in flight when it was refused or closed: dropped.
    if (type !== HP_AUTH) return
    if (!this.sessions.has(address) && this.sessions.size >= this.options.maxDocuments) {
      this.options.log.warn({ event: 'too_many_documents', peer: this.wire.id, limit: this.options.maxDocuments }, 'too many documents on one connection, closing it')
      this.wire.close(CLOSE_RATE_LIMITED, `more than ${this.options.maxDocuments} documents on one connection`)
      return
    }
    const { token } = decodeHpAuth(message)
    const name = this.options.checkName(document)
    if (!name.ok) {
      this.sessions.set(address, CLOSED)
      this.wire.send(encodeHpDenied(address, name.error))
      this.options.log.info({ event: 'document_refused', peer: this.wire.id, code: 'BAD_ROOM_NAME', reason: name.error }, 'document refused')
      return
    }
    const session: Session = { state: 'authenticating', queue: [], bytes: 0 }
    this.sessions.set(address, session)
    this.options.authorize({ room: name.room, token: token === '' ? undefined : token, request: this.request }).then(
      (result) => this.authorized(address, name.room, session, result),
      (err: unknown) => {
        this.options.log.error({ event: 'auth_failed', room: name.room, err: String(err) }, 'token check failed')
        this.refuse(address, session, 'internal error')
      },
    )
  }

  private authorized(address: string, room: string, session: Session, result: AuthResult): void {
    if (this.closed || this.sessions.get(address) !== session || session.state !== 'authenticating') return
    if (!result.ok) {
      this.options.log.info({ event: 'document_refused', room, peer: this.wire.id, code: result.code, reason: result.reason }, 'document refused')
      this.refuse(address, session, result.reason)
      return
    }
    const grant = result.grant
    const peer = new DocumentPeer(this.wire, room, address, grant.access, ++this.opened, grant.user, (left, code) => this.left(address, left, code))
    this.wire.send(encodeHpAuthenticated(address, grant.access === 'read' ? 'readonly' : 'read-write'))
    this.options.log.info({ event: 'document_open', room, peer: peer.id, access: grant.access, protocol: 'hocuspocus' }, 'hocuspocus document opened')
    this.options.join(room, peer).then(
      (joined) => {
        if (this.closed || this.sessions.get(address) !== session) {
          // The socket closed, or the provider closed this document, while its room loaded.
          joined.removePeer(peer, this.closed ? this.closeCode : CLOSE_NORMAL.code)
          return
        }
        if (!this.admitNewRoom(joined)) {
          // Refused before any of its held messages is applied: nothing of it is stored.
          joined.removePeer(peer, CLOSE_TOO_MANY_NEW_ROOMS.code)
          this.options.log.warn({ event: 'room_creation_limited', room, peer: peer.id, protocol: 'hocuspocus' }, 'too many new rooms from this address, document refused')
          this.refuse(address, session, 'too many new rooms from this address, try again later')
          return
        }
        const open: Session = { state: 'open', peer, room: joined, expiry: undefined }
        this.sessions.set(address, open)
        this.hub.add(peer)
        if (grant.expiresAt !== undefined) this.armExpiry(address, open, grant.expiresAt)
        this.queuedBytes -= session.bytes
        for (const message of session.queue) {
          if (this.sessions.get(address) !== open) break
          this.dispatchSafely(peer, joined, address, message)
        }
      },
      () => {
        this.refuse(address, session, 'room could not be loaded, try again later')
      },
    )
  }

  /** A document the server closed (see DocumentPeer.leave): its messages are dropped until it sends a token again. */
  private left(address: string, peer: DocumentPeer, code: number): void {
    const session = this.sessions.get(address)
    if (session?.state !== 'open' || session.peer !== peer) return
    this.sessions.set(address, CLOSED)
    this.end(session, code)
  }

  private refuse(address: string, session: Session, reason: string): void {
    if (this.sessions.get(address) === session) this.sessions.set(address, CLOSED)
    if (session.state === 'authenticating') this.queuedBytes -= session.bytes
    if (!this.closed) this.wire.send(encodeHpDenied(address, reason))
  }

  private armExpiry(address: string, session: Extract<Session, { state: 'open' }>, at: number): void {
    const delay = at - Date.now()
    session.expiry = delay > MAX_TIMER
      ? setTimeout(() => this.armExpiry(address, session, at), MAX_TIMER)
      : setTimeout(() => {
        if (this.sessions.get(address) !== session) return
        this.options.log.info({ event: 'token_expired', room: session.peer.room, peer: session.peer.id }, 'token expired, closing document')
        session.peer.detach('token expired')
        this.sessions.set(address, CLOSED)
        this.end(session, CLOSE_UNAUTHORIZED.code)
      }, Math.max(0, delay))
    session.expiry.unref()
  }

  private hold(session: Extract<Session, { state: 'authenticating' }>, message: Uint8Array): void {
    if (this.queuedBytes + message.length > this.options.maxQueuedBytes) {
      this.options.log.warn({ event: 'queue_full', peer: this.wire.id, limit: this.options.maxQueuedBytes }, 'too much sent before authentication, closing connection')
      this.wire.close(CLOSE_RATE_LIMITED, 'too much sent before authentication')
      return
    }
    // Copied: the frame's buffer may be reused by the socket once this handler returns.
    session.queue.push(message.slice())
    session.bytes += message.length
    this.queuedBytes += message.length
  }

  private dispatchSafely(peer: DocumentPeer, room: Room, address: string, message: Uint8Array): void {
    try {
      this.dispatch(peer, room, address, decodeHpType(message), message)
    } catch (err) {
      if (err instanceof ProtocolError) this.wire.close(CLOSE_BAD_MESSAGE, `${err.code}: ${err.message}`)
      else throw err
    }
  }

  private dispatch(peer: DocumentPeer, room: Room, address: string, type: number, message: Uint8Array): void {
    switch (type) {
      case HP_SYNC:
        if (peer.readOnly) this.answerReader(peer, message)
        room.receive(peer, message)
        return
      case HP_AWARENESS:
      case HP_QUERY_AWARENESS:
        room.receive(peer, message)
        return
      case HP_STATELESS:
        this.hub.stateless(peer, decodeHpStateless(message))
        return
      case HP_CLOSE: {
        const session = this.sessions.get(address)
        if (session) {
          this.sessions.set(address, CLOSED)
          this.end(session, CLOSE_NORMAL.code)
        }
        return
      }
      case HP_AUTH:
        // A provider re-sends its token only after reconnecting; an open document ignores it.
        return
      default:
        throw new ProtocolError('UNKNOWN_MESSAGE_TYPE', `unknown message type ${type}`)
    }
  }

  /** Hocuspocus answers a reader's empty sync step 2 with "applied" and any write with "refused". */
  private answerReader(peer: DocumentPeer, message: Uint8Array): void {
    const decoded = decodeClientMessage(message)
    if (decoded.type !== 'sync-step2' && decoded.type !== 'sync-update') return
    peer.refused(decoded.type === 'sync-step2' && validateUpdate(decoded.update))
  }

  /** A document leaves its room: `code` is told as its close code (the socket's, or 1000 / 4401 for the document alone). */
  private end(session: Session, code: number): void {
    if (session.state !== 'open') return
    clearTimeout(session.expiry)
    this.hub.remove(session.peer)
    session.room.removePeer(session.peer, code)
  }
}

function decodeHpType(message: Uint8Array): number {
  // The message part starts with its type; every type is below 128, so one byte.
  const type = message[0]
  if (type === undefined || type >= 128) throw new ProtocolError('UNKNOWN_MESSAGE_TYPE', 'message has no type')
  return type
}
