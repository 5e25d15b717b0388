/**
 * One WebSocket connection. `WsPeer` is what every socket does (send with corking, the
 * slow-consumer close, the frame checks, liveness); `Connection` is a y-websocket
 * connection, the peer of one room, which owns its life (see the class); `HocuspocusSocket`
 * is a Hocuspocus socket, whose documents are its `HocuspocusConnection`'s (hocuspocus.ts).
 * The transport (transport.ts) creates them and keeps the set of open ones.
 *
 * Idle connections are many, so nothing here makes a closure per connection: the socket's
 * listeners are four shared functions that find the connection on the socket, timers are
 * static functions given the connection as an argument, and what every connection of a
 * transport needs (logger, bus, limits) is one shared `ConnectionContext`.
 */
import type { Duplex } from 'node:stream'
import { WebSocket, type RawData } from 'ws'
import * as wsModule from 'ws'
import type { Logger } from 'pino'
import {
  CLOSE_MESSAGE_TOO_BIG, CLOSE_RATE_LIMITED, CLOSE_SLOW_CONSUMER, CLOSE_TOO_MANY_NEW_ROOMS, CLOSE_TRY_AGAIN_LATER,
  CLOSE_UNAUTHORIZED, CLOSE_UNSUPPORTED_DATA, closeReason, type CloseCode,
} from '../room/close-codes.js'
import type { EventSink } from '../base/events.js'
import type { RoomRegistry } from '../room/registry.js'
import type { Room } from '../room/room.js'
import type { Peer, User } from '../room/peer.js'
import type { Grant } from './auth.js'
import type { AuthRequest } from './authorizer.js'
import { HocuspocusConnection, type HocuspocusHub } from './hocuspocus.js'
import type { ConnectionRate } from './limits.js'

/** The two dialects one port speaks (see handleUpgrade): metrics and logs are labelled with it. */
export const WIRE_PROTOCOLS = ['y-websocket', 'hocuspocus'] as const
export type WireProtocol = (typeof WIRE_PROTOCOLS)[number]

/**
 * What the transport tells (server/base/events.ts). The message events are the hot path (every
 * frame in and out): their listeners only add numbers. Connections to rooms are the
 * rooms' events (`peer.joined`, `peer.left`); these are the sockets under them.
 */
export interface TransportEvents {
  /** A WebSocket was accepted (y-websocket, or a Hocuspocus socket of many documents). */
  'socket.opened': { protocol: WireProtocol }
  'socket.closed': { code: number; protocol: WireProtocol }
  /** A socket error (ws closes the socket itself). */
  'socket.error': { code: string | undefined; protocol: WireProtocol }
  /** A frame received, before any check. */
  'message.received': { message: Uint8Array; protocol: WireProtocol }
  /** A frame sent. */
  'message.sent': { message: Uint8Array; protocol: WireProtocol }
}

/** setTimeout fires at once for delays past 2^31-1 ms; longer waits are chained. */
const MAX_TIMER = 2 ** 31 - 1
/** A slow consumer gets this long to take its close frame before the socket is destroyed. */
export const SLOW_CLOSE_GRACE = 1000
/**
 * Flow control: above this many updates waiting for storage in its room, a connection's
 * socket is not read until they are stored, so a writer faster than the disk is slowed by
 * TCP instead of filling the server's memory (the group commit stays large meanwhile).
 */
const MAX_WRITE_BACKLOG = 512
/**
 * Bytes a connection may send while its room is still loading; past it the socket is not
 * read until the room is there (TCP pushes back), so a slow load buffers a bounded amount.
 */
const MAX_PRELOAD_BYTES = 1024 * 1024
/**
 * A probed connection (see Peer.probe) that shows no sign of life this long after a ping
 * is taken for dead: well above a live client's round trip, far below --ping-interval.
 */
export const PROBE_TIMEOUT = 2000
/** At most one probe ping per connection this often, however many claims ask for one. */
const PROBE_GAP = 1000

/** What every connection of one transport shares: the transport makes it once. */
export interface ConnectionContext {
  readonly log: Logger
  readonly events: EventSink<TransportEvents>
  readonly registry: RoomRegistry
  /** Unsent bytes allowed per connection beyond its largest queued message; 0 = no limit. */
  readonly maxBuffered: number
  /** The transport's open connections: each is in it from its open to its socket's close. */
  readonly peers: Set<WsPeer>
  /** Joining a room with nothing stored creates it: false once `ip` has used its budget of new rooms. */
  admitNewRoom(room: Room, ip: string): boolean
}

const CONNECTION = Symbol('coedit.connection')
type ConnectedSocket = WebSocket & { [CONNECTION]: WsPeer }
const peerOf = (ws: WebSocket): WsPeer => (ws as ConnectedSocket)[CONNECTION]
// The socket's listeners, shared by every connection (ws calls them with the socket as `this`):
// four closures and their context would cost each connection about half a kilobyte.
function onPong(this: WebSocket): void { peerOf(this).heard() }
function onMessage(this: WebSocket, data: RawData, isBinary: boolean): void { peerOf(this).received(data, isBinary) }
function onError(this: WebSocket, err: Error & { code?: string }): void { peerOf(this).errored(err) }
function onClose(this: WebSocket, code: number): void { peerOf(this).closed(code) }

let nextPeerId = 1

export abstract class WsPeer implements Peer {
  readonly id: string
  readonly ws: WebSocket
  readonly wantsAck: boolean
  readonly readOnly: boolean
  user?: User
  readonly openedAt = Date.now()
  /** Heard from since the transport's last ping (see Transport.sweep). */
  alive = true
  bytesIn = 0
  bytesOut = 0
  /** The close this side sent: from then on its frames are dropped. */
  closeSent: CloseCode | undefined
  /** Largest message queued since the send buffer was last empty: one big message (a large document's sync) is no sign of a slow reader. */
  private largestPending = 0
  /** The socket is corked until the end of this tick: all frames sent in it go out in one write. */
  private corked = false
  /** The probe in flight, and how to end it when the connection is heard from. */
  private probing: Promise<boolean> | undefined
  private probeHeard: (() => void) | undefined
  private lastProbe = 0
  /** A static function with an argument, not a closure per connection: idle connections are many. */
  private static uncork(peer: WsPeer): void {
    peer.corked = false
    socketOf(peer.ws)?.uncork()
  }

  constructor(
    ws: WebSocket,
    readonly protocol: WireProtocol,
    wantsAck: boolean,
    readOnly: boolean,
    protected readonly context: ConnectionContext,
    private readonly rate: ConnectionRate,
  ) {
    this.id = (nextPeerId++).toString(36)
    this.ws = ws
    this.wantsAck = wantsAck
    this.readOnly = readOnly
  }

  /** ws's 'message': a frame arrived. */
  abstract received(data: RawData, isBinary: boolean): void
  /** ws's 'close': the socket has closed with `code`. */
  abstract closed(code: number): void
  /** What its log lines say it is (its room, or its protocol). */
  protected abstract labels(): Record<string, string>

  send(message: Uint8Array): void {
    if (this.ws.readyState !== WebSocket.OPEN) return
    const backlog = this.ws.bufferedAmount
    if (backlog === 0) this.largestPending = 0
    if (this.context.maxBuffered > 0 && backlog > this.context.maxBuffered + this.largestPending) {
      this.context.log.warn({ event: 'slow_consumer', ...this.labels(), peer: this.id, backlog }, 'connection not reading, closing it')
      this.close(CLOSE_SLOW_CONSUMER)
      // It is not reading, so it will not read the close frame either: free the buffers soon.
      setTimeout(() => this.ws.terminate(), SLOW_CLOSE_GRACE).unref()
      return
    }
    this.largestPending = Math.max(this.largestPending, message.length)
    this.bytesOut += message.length
    const events = this.context.events
    if (events.listens('message.sent')) events.emit('message.sent', { message, protocol: this.protocol })
    const socket = socketOf(this.ws)
    if (!socket) {
      this.ws.send(message)
      return
    }
    if (!this.corked) {
      // A group commit applies many updates in one tick; without this each would cost
      // every connection a syscall. Uncorked once the tick's microtasks are done.
      this.corked = true
      socket.cork()
      process.nextTick(WsPeer.uncork, this)
    }
    if (message.length > MAX_SHARED_FRAME) this.ws.send(message)
    else socket.write(frameOf(message))
  }

  close(close: CloseCode, detail?: string): void {
    if (this.ws.readyState === WebSocket.CLOSED || this.ws.readyState === WebSocket.CLOSING) return
    this.closeSent = close
    this.ws.close(close.code, closeReason(detail ?? close.reason))
  }

  /** A frame or a pong arrived: the connection is alive. */
  heard(): void {
    this.alive = true
    this.probeHeard?.()
  }

  /** ws's 'error' (ws has already started closing: 1009 for an oversized frame, 1002 for a bad frame). */
  errored(err: Error & { code?: string }): void {
    if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') this.closeSent = CLOSE_MESSAGE_TOO_BIG
    this.context.log.warn({ event: 'connection_error', ...this.labels(), peer: this.id, code: err.code, err: err.message, protocol: this.protocol }, 'connection error')
    this.context.events.emit('socket.error', { code: err.code, protocol: this.protocol })
  }

  /**
   * Pings now (or PROBE_GAP after the previous probe ended) and resolves true on any frame
   * or pong, false if none comes within PROBE_TIMEOUT. Concurrent callers share one probe.
   */
  probe(): Promise<boolean> {
    if (this.probing) return this.probing
    if (this.ws.readyState !== WebSocket.OPEN) return Promise.resolve(false)
    this.probing = new Promise<boolean>((resolve) => {
      let timer: NodeJS.Timeout | undefined
      const done = (alive: boolean): void => {
        clearTimeout(timer)
        this.probing = undefined
        this.probeHeard = undefined
        this.lastProbe = Date.now()
        resolve(alive)
      }
      this.probeHeard = () => done(true)
      const ping = (): void => {
        if (this.ws.readyState !== WebSocket.OPEN) return done(false)
        this.ws.ping()
        timer = setTimeout(() => {
          // After this turn's I/O, as the sweep does: a stalled loop runs the overdue timer
          // before it reads a pong that arrived in time.
          setImmediate(() => { if (this.probeHeard) done(false) })
        }, PROBE_TIMEOUT)
        timer.unref()
      }
      const wait = this.lastProbe + PROBE_GAP - Date.now()
      if (wait <= 0) return ping()
      timer = setTimeout(ping, wait)
      timer.unref()
    })
    return this.probing
  }

  /** Opened (after the subclass logged it): the transport counts it, the bus is told, its socket's events come to it. */
  protected listen(): void {
    this.context.peers.add(this)
    this.context.events.emit('socket.opened', { protocol: this.protocol })
    ;(this.ws as ConnectedSocket)[CONNECTION] = this
    this.ws.on('pong', onPong)
    this.ws.on('message', onMessage)
    this.ws.on('error', onError)
    this.ws.on('close', onClose)
  }

  /**
   * What every frame of either protocol goes through before it is handled: liveness, the
   * traffic counters, the rate limits (4429) and the binary-only rule (1003). Returns the
   * frame's bytes, or undefined if the connection is closing or was just closed for it.
   */
  protected admit(data: RawData, isBinary: boolean): Uint8Array | undefined {
    this.heard()
    if (this.closeSent) return undefined
    const bytes = toUint8Array(data)
    this.bytesIn += bytes.length
    const events = this.context.events
    if (events.listens('message.received')) events.emit('message.received', { message: bytes, protocol: this.protocol })
    const verdict = this.rate.admit(bytes.length)
    if (!verdict.ok) {
      this.context.log.warn({ event: 'rate_limited', ...this.labels(), peer: this.id, code: verdict.code }, 'rate limit exceeded, closing connection')
      this.close(CLOSE_RATE_LIMITED, verdict.code === 'MESSAGE_RATE' ? 'too many messages per second' : 'too many bytes per second')
      return undefined
    }
    if (!isBinary) {
      this.context.log.warn({ event: 'bad_message', ...this.labels(), peer: this.id, code: 'TEXT_FRAME' }, 'text frame, closing connection')
      this.close(CLOSE_UNSUPPORTED_DATA)
      return undefined
    }
    return bytes
  }

  /** The socket closed and the connection has let go of its rooms: the bus is told, the close logged. */
  protected reportClosed(code: number): void {
    this.context.events.emit('socket.closed', { code, protocol: this.protocol })
    this.context.log.info({
      event: 'connection_close', ...this.labels(), peer: this.id, code, sent: this.closeSent?.code, protocol: this.protocol,
      ms: Date.now() - this.openedAt, bytesIn: this.bytesIn, bytesOut: this.bytesOut,
    }, 'connection closed')
  }
}

/**
 * A y-websocket connection: the peer of one room, named in its URL. Its states:
 *
 *   joining ───── the room loaded and admits it ────▶ joined
 *      │                                                │
 *      └────────────── the socket closed ───────────────┴──▶ closed
 *
 * - joining: the room is loading. Frames wait in `queue`; past MAX_PRELOAD_BYTES the socket
 *   is not read until the room is there and has stored them.
 * - joined: frames go to `room`; the socket is not read while the room's write backlog is
 *   past MAX_WRITE_BACKLOG.
 * - closed: the expiry timer is cleared, the queue dropped, the room left (a room that
 *   loads only now is left at once, with the socket's close code).
 *
 * In any state a close this side sent (token expired, a limit, the room refused it or did
 * not load) stops its frames; the state becomes closed once the socket has.
 */
export class Connection extends WsPeer {
  state: 'joining' | 'joined' | 'closed' = 'joining'
  room: Room | undefined
  /** Frames received while joining (dropped if the room refuses it, or on close). */
  private queue: Uint8Array[] | undefined = []
  private queuedBytes = 0
  /** The socket's close code, once closed (for `peer.left` if the room was still loading). */
  private closeCode = 0
  private paused = false
  /** Set when the socket was paused while joining: resolved with the room once it has loaded. */
  private loaded: ((room: Room) => void) | undefined
  /** Closes the connection when its token expires. */
  private expiry: NodeJS.Timeout | undefined

  constructor(ws: WebSocket, context: ConnectionContext, readonly roomName: string, wantsAck: boolean, grant: Grant, rate: ConnectionRate) {
    super(ws, 'y-websocket', wantsAck, grant.access === 'read', context, rate)
    if (grant.user !== undefined) this.user = grant.user
  }

  /** Opens: logged, listened to, and joining its room (`ip` for the log and the new-room budget). */
  open(grant: Grant, ip: string): void {
    if (grant.expiresAt !== undefined) this.armExpiry(grant.expiresAt)
    this.context.log.info({ event: 'connection_open', room: this.roomName, peer: this.id, ip, access: grant.access, protocol: this.protocol }, 'connection opened')
    this.listen()
    this.context.registry.join(this.roomName, this).then(
      (room) => this.joined(room, ip),
      () => this.close(CLOSE_TRY_AGAIN_LATER, 'room could not be loaded, try again later'),
    )
  }

  override received(data: RawData, isBinary: boolean): void {
    const bytes = this.admit(data, isBinary)
    if (!bytes) return
    if (this.room) { // joined
      this.room.receive(this, bytes)
      if (!this.paused && this.room.writeBacklog > MAX_WRITE_BACKLOG) this.pauseUntil(this.room.writesSettled())
    } else if (this.queue) {
      this.queue.push(bytes)
      this.queuedBytes += bytes.length
      if (this.queuedBytes > MAX_PRELOAD_BYTES && !this.paused) {
        // Read on once the room is there and what was queued is stored.
        this.pauseUntil(new Promise<Room>((resolve) => { this.loaded = resolve }).then((r) => r.writesSettled()))
      }
    }
  }

  override closed(code: number): void {
    this.state = 'closed'
    this.closeCode = code
    clearTimeout(this.expiry)
    this.queue = undefined
    this.context.peers.delete(this)
    this.room?.removePeer(this, code)
    this.reportClosed(code)
  }

  protected override labels(): Record<string, string> {
    return { room: this.roomName }
  }

  /** Its room has loaded: in, unless it closed meanwhile or its address may not create the room. */
  private joined(room: Room, ip: string): void {
    if (this.state === 'closed') return room.removePeer(this, this.closeCode)
    if (!this.context.admitNewRoom(room, ip)) return this.refused(room, ip)
    this.state = 'joined'
    this.room = room
    const pending = this.queue ?? []
    this.queue = undefined
    for (const bytes of pending) room.receive(this, bytes)
    this.loaded?.(room)
    this.loaded = undefined
  }

  /** Refused before any of its messages is applied: nothing of it is stored. */
  private refused(room: Room, ip: string): void {
    room.removePeer(this, CLOSE_TOO_MANY_NEW_ROOMS.code)
    this.queue = undefined
    this.context.log.warn({ event: 'room_creation_limited', room: this.roomName, peer: this.id, ip }, 'too many new rooms from this address, closing connection')
    this.close(CLOSE_TOO_MANY_NEW_ROOMS)
  }

  /** Stops reading the socket until `settled` (TCP pushes back on the client meanwhile). */
  private pauseUntil(settled: Promise<unknown>): void {
    this.paused = true
    this.ws.pause()
    void settled.then(() => {
      this.paused = false
      if (this.state !== 'closed') this.ws.resume()
    })
  }

  /** Closes the connection at `at` (a token's expiry); setTimeout fires at once past MAX_TIMER, so longer waits are chained. */
  private armExpiry(at: number): void {
    const delay = at - Date.now()
    this.expiry = delay > MAX_TIMER
      ? setTimeout(Connection.rearm, MAX_TIMER, this, at)
      : setTimeout(Connection.expire, Math.max(0, delay), this)
    this.expiry.unref()
  }

  // Static functions given the connection, not a closure per connection.
  private static rearm(connection: Connection, at: number): void {
    connection.armExpiry(at)
  }

  private static expire(connection: Connection): void {
    connection.context.log.info({ event: 'token_expired', room: connection.roomName, peer: connection.id }, 'token expired, closing connection')
    connection.close(CLOSE_UNAUTHORIZED, 'token expired')
  }
}

/** A Hocuspocus socket: its documents (each the peer of a room) are its HocuspocusConnection's. */
export class HocuspocusSocket extends WsPeer {
  private readonly documents: HocuspocusConnection
  private paused = false

  /** `request` is its upgrade request, for each document's authenticate hook; `ip` takes new rooms from its address's budget. */
  constructor(ws: WebSocket, context: ConnectionContext, rate: ConnectionRate, hub: HocuspocusHub, request: AuthRequest, ip: string) {
    super(ws, 'hocuspocus', false, false, context, rate)
    this.documents = new HocuspocusConnection(this, hub, request, (room) => context.admitNewRoom(room, ip))
  }

  open(ip: string): void {
    this.context.log.info({ event: 'connection_open', peer: this.id, ip, protocol: 'hocuspocus' }, 'connection opened')
    this.listen()
  }

  override received(data: RawData, isBinary: boolean): void {
    const bytes = this.admit(data, isBinary)
    if (!bytes) return
    this.documents.receive(bytes)
    if (this.paused) return
    const backlog = this.documents.backlog()
    if (backlog.size > MAX_WRITE_BACKLOG) {
      this.paused = true
      this.ws.pause()
      void backlog.settled.then(() => {
        this.paused = false
        if (this.ws.readyState === WebSocket.OPEN) this.ws.resume()
      })
    }
  }

  override closed(code: number): void {
    this.context.peers.delete(this)
    this.documents.close(code)
    this.reportClosed(code)
  }

  protected override labels(): Record<string, string> {
    return { protocol: 'hocuspocus' }
  }
}

/**
 * Frames at most this big are built once and shared; a bigger message (a large document's
 * sync step 2, sent to one connection) goes through ws, which writes it without a copy.
 */
const MAX_SHARED_FRAME = 64 * 1024
// ws's frame encoder; @types/ws does not declare the Sender class that ws exports.
const { Sender } = wsModule as unknown as { Sender: { frame(data: Uint8Array, options: object): Uint8Array[] } }
const BINARY_FRAME = { fin: true, opcode: 0x02, mask: false, readOnly: false, rsv1: false }
let framedMessage: Uint8Array | undefined
let framed: Buffer = Buffer.alloc(0)

/**
 * The WebSocket frame of `message`. A room relays one message object to all its
 * connections, so the last frame is kept: one header and one copy per message, not per
 * connection, and one socket write each instead of ws's two. Writing frames straight to
 * the socket is safe because ws queues nothing of its own here: compression is off and
 * no Blob is ever sent, so its sender writes each frame synchronously as well.
 */
function frameOf(message: Uint8Array): Buffer {
  if (message !== framedMessage) {
    framed = Buffer.concat(Sender.frame(message, BINARY_FRAME))
    framedMessage = message
  }
  return framed
}

/** The TCP socket under a `ws` WebSocket (`_socket` is internal to ws 8, hence the guard). */
function socketOf(ws: WebSocket): Duplex | undefined {
  const socket = (ws as unknown as { _socket?: Duplex })._socket
  return socket && typeof socket.cork === 'function' ? socket : undefined
}

function toUint8Array(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data)
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  return data
}
