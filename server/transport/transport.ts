/**
 * WebSocket transport: the only module that imports `ws`. It turns an HTTP upgrade
 * into a `Peer` of a room, holds the peer's messages until the room has loaded,
 * and finds dead peers by ping/pong.
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, WebSocket, type RawData } from 'ws'
import * as wsModule from 'ws'
import type { Logger } from 'pino'
import {
  CLOSE_GOING_AWAY, CLOSE_MESSAGE_TOO_BIG, CLOSE_TRY_AGAIN_LATER, CLOSE_UNSUPPORTED_DATA, closeReason,
  type CloseCode,
} from '../room/close-codes.js'
import { COEDIT_OPT_IN_PARAM } from '../room/protocol.js'
import type { RoomRegistry } from '../room/registry.js'
import type { Room } from '../room/room.js'
import type { Peer, User } from '../room/peer.js'
import { parseRoomPath } from '../room/room-name.js'
import { OPEN_GRANT, clientAddress, originAllowed, tokenOf, type Grant, type OriginPolicy } from './auth.js'
import { NO_REQUEST, authRequestOf, type AuthRequest, type Authorizer } from './authorizer.js'
import type { EventSink } from '../base/events.js'
import { CLOSE_BAD_ROOM_NAME, CLOSE_RATE_LIMITED, CLOSE_SLOW_CONSUMER, CLOSE_TOO_MANY_NEW_ROOMS, CLOSE_UNAUTHORIZED } from '../room/close-codes.js'
import { AddressCounter, ConnectionRate, NewRoomLimiter } from './limits.js'
import { HocuspocusConnection, type HocuspocusHub } from './hocuspocus.js'
import { underPath } from './attach.js'

export interface TransportOptions {
  /** Largest accepted frame in bytes; bigger ones close the connection with 1009. */
  maxMessageSize: number
  /** ms between pings; a peer that has not answered the previous ping is dropped. */
  pingInterval: number
  /** Where the transport's events go (server/base/events.ts): sockets and every message (metrics). */
  events: EventSink<TransportEvents>
  /** Who may open which room (the authenticate hook, tokens, or everyone). */
  authorizer: Authorizer
  /** Browser origins allowed besides the server's own (default: only its own). */
  origins?: OriginPolicy
  /** Client address from X-Forwarded-For, host from X-Forwarded-Host. */
  trustProxy?: boolean
  /** 0 or absent = no limit. */
  maxConnectionsPerIp?: number
  /** Rooms with nothing stored one address may open per minute (loopback exempt); 0 or absent = no limit. */
  maxNewRoomsPerMinute?: number
  /** Loopback addresses are spared the per-address limits (default true). */
  loopbackExempt?: boolean
  maxMessagesPerSecond?: number
  maxBytesPerSecond?: number
  /** Unsent bytes allowed per connection beyond its largest queued message; 0 or absent = no limit. */
  maxBufferedBytes?: number
  maxRoomNameLength?: number
  roomNamePattern?: RegExp
  /** Hocuspocus clients, recognized by connecting to the root path (see handleUpgrade); absent = refused there. */
  hocuspocus?: HocuspocusHub
  /**
   * Attached to an app's server (see attach.ts): the path upgrades arrive under. The room is
   * the rest of the path, and `basePath` itself is the Hocuspocus root. Default '/'.
   */
  basePath?: string
}

/** setTimeout fires at once for delays past 2^31-1 ms; longer waits are chained. */
const MAX_TIMER = 2 ** 31 - 1
/** Distinct refused origins warned about; past it a page cycling origins cannot flood the log. */
const MAX_WARNED_ORIGINS = 100
/** A slow consumer gets this long to take its close frame before the socket is destroyed. */
const SLOW_CLOSE_GRACE = 1000
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

let nextPeerId = 1

class WsPeer implements Peer {
  readonly id: string
  readonly wantsAck: boolean
  readonly ws: WebSocket
  readonly readOnly: boolean
  user?: User
  readonly openedAt = Date.now()
  alive = true
  bytesIn = 0
  bytesOut = 0
  closeSent: CloseCode | undefined
  events: EventSink<TransportEvents> | undefined
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
    private readonly maxBuffered: number,
    /** Shared by every connection (a closure each would be kept as long as the connection). */
    private readonly onSlow: (peer: WsPeer, backlog: number) => void,
  ) {
    this.id = (nextPeerId++).toString(36)
    this.ws = ws
    this.wantsAck = wantsAck
    this.readOnly = readOnly
  }

  send(message: Uint8Array): void {
    if (this.ws.readyState !== WebSocket.OPEN) return
    const backlog = this.ws.bufferedAmount
    if (backlog === 0) this.largestPending = 0
    if (this.maxBuffered > 0 && backlog > this.maxBuffered + this.largestPending) {
      this.onSlow(this, backlog)
      this.close(CLOSE_SLOW_CONSUMER)
      // It is not reading, so it will not read the close frame either: free the buffers soon.
      setTimeout(() => this.ws.terminate(), SLOW_CLOSE_GRACE).unref()
      return
    }
    this.largestPending = Math.max(this.largestPending, message.length)
    this.bytesOut += message.length
    if (this.events?.listens('message.sent')) this.events.emit('message.sent', { message, protocol: this.protocol })
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
}

/** A y-websocket connection: the peer of one room, and what its socket's listeners need. */
class YPeer extends WsPeer {
  room: Room | undefined
  /** Frames received while the room loads (undefined once it is there, or closed). */
  queue: Uint8Array[] | undefined = []
  queuedBytes = 0
  closed = false
  /** The close code, once closed (for `peer.left` if the room was still loading). */
  closeCode = 0
  paused = false
  /** Set when the socket was paused while the room loaded: resolved once it has loaded. */
  loaded: ((room: Room) => void) | undefined
  expiry: NodeJS.Timeout | undefined

  constructor(
    ws: WebSocket,
    readonly roomName: string,
    wantsAck: boolean,
    readOnly: boolean,
    maxBuffered: number,
    onSlow: (peer: WsPeer, backlog: number) => void,
    readonly rate: ConnectionRate,
  ) {
    super(ws, 'y-websocket', wantsAck, readOnly, maxBuffered, onSlow)
  }

  /** Stops reading the socket until `settled` (TCP pushes back on the client meanwhile). */
  pauseUntil(settled: Promise<unknown>): void {
    this.paused = true
    this.ws.pause()
    void settled.then(() => {
      this.paused = false
      if (!this.closed) this.ws.resume()
    })
  }
}

const CONNECTION = Symbol('coedit.connection')
interface SocketConnection { transport: Transport; peer: YPeer }
type ConnectedSocket = WebSocket & { [CONNECTION]: SocketConnection }

const connectionOf = (ws: WebSocket): SocketConnection => (ws as ConnectedSocket)[CONNECTION]
// ws calls its listeners with the socket as `this`.
function onPong(this: WebSocket): void { connectionOf(this).peer.heard() }
function onMessage(this: WebSocket, data: RawData, isBinary: boolean): void { Transport.received(connectionOf(this), data, isBinary) }
function onError(this: WebSocket, err: Error & { code?: string }): void { Transport.errored(connectionOf(this), err) }
function onClose(this: WebSocket, code: number): void { Transport.closed(connectionOf(this), code) }

export class Transport {
  private readonly wss: WebSocketServer
  private readonly peers = new Set<WsPeer>()
  private readonly pingTimer: NodeJS.Timeout
  private readonly registry: RoomRegistry
  private readonly log: Logger
  private readonly options: TransportOptions
  private readonly addresses: AddressCounter
  /** Origins already warned about (see originRefused). */
  private readonly warnedOrigins = new Set<string>()
  private readonly newRooms: NewRoomLimiter
  /**
   * Loaded rooms with nothing stored that someone was let into: later joiners (even
   * concurrent ones, who all find the room empty) are not creating it. A room object
   * lives one load, so an empty room that was unloaded counts again.
   */
  private readonly created = new WeakSet<Room>()

  constructor(registry: RoomRegistry, options: TransportOptions, log: Logger) {
    this.registry = registry
    this.log = log
    this.options = options
    this.addresses = new AddressCounter(options.maxConnectionsPerIp ?? 0, options.loopbackExempt ?? true)
    this.newRooms = new NewRoomLimiter(options.maxNewRoomsPerMinute ?? 0, options.loopbackExempt ?? true)
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.maxMessageSize,
      perMessageDeflate: false,
      clientTracking: false,
    })
    this.pingTimer = setInterval(() => this.ping(), options.pingInterval)
    this.pingTimer.unref()
  }

  get connectionCount(): number {
    return this.peers.size
  }

  /** Open connections of each protocol (a Hocuspocus socket counts once, however many documents it carries). */
  connectionsByProtocol(): Record<WireProtocol, number> {
    const counts: Record<WireProtocol, number> = { 'y-websocket': 0, hocuspocus: 0 }
    for (const peer of this.peers) counts[peer.protocol]++
    return counts
  }

  /**
   * Handles an HTTP upgrade request. Refused with an HTTP status and no WebSocket opened:
   * a foreign browser origin (403), a missing, forged or expired
   * token (401), a token for other rooms (403), too many connections from one address (429).
   * A refused room name is closed with 4400 after the upgrade (see refuseRoomName).
   * The URL is never logged: it may carry a token.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const ip = clientAddress(req, this.options.trustProxy ?? false)
    const refuse = (status: number, code: string, reason: string, room?: string): void => {
      rejectUpgrade(socket, status, reason)
      this.log.info({ event: 'upgrade_refused', status, code, reason, room, ip }, 'upgrade refused')
    }
    // The caller only hands over upgrades under the base path.
    const path = underPath(url.pathname, this.options.basePath ?? '/') ?? url.pathname
    if (path === '/' && this.options.hocuspocus) return this.upgradeHocuspocus(req, socket, head, ip, refuse)
    const parsed = parseRoomPath(path, this.options.maxRoomNameLength, this.options.roomNamePattern)
    if (!originAllowed(req, this.options.origins ?? [], this.options.trustProxy ?? false)) {
      this.originRefused(req, ip)
      return refuse(403, 'ORIGIN_FORBIDDEN', 'origin not allowed', parsed.ok ? parsed.room : undefined)
    }
    if (!parsed.ok) return this.refuseRoomName(req, socket, head, ip, parsed.error)
    const room = parsed.room
    // Until ws takes the socket over, a reset during the token check must not be an unhandled 'error'.
    const onEarlyError = (): void => { socket.destroy() }
    socket.on('error', onEarlyError)
    const upgrade = (grant: Grant): void => {
      if (socket.destroyed) return
      if (!this.addresses.acquire(ip)) return refuse(429, 'TOO_MANY_CONNECTIONS', 'too many connections from this address', room)
      socket.on('close', releaseOnClose(this.addresses, ip))
      socket.off('error', onEarlyError)
      const wantsAck = url.searchParams.get(COEDIT_OPT_IN_PARAM) !== null
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, room, wantsAck, grant, ip))
    }
    const authorizer = this.options.authorizer
    if (authorizer.mode === 'open') return upgrade(OPEN_GRANT)
    const request = authorizer.usesRequest ? authRequestOf(req, ip) : NO_REQUEST
    authorizer.authorize({ room, token: tokenOf(req, url), request }).then(
      (result) => {
        if (result.ok) upgrade(result.grant)
        else if (!socket.destroyed) refuse(result.status, result.code, result.reason, room)
      },
      (err: unknown) => {
        // authorize never rejects; should it, the client is refused all the same.
        this.log.error({ event: 'auth_failed', room, err: String(err) }, 'authorization failed')
        if (!socket.destroyed) rejectUpgrade(socket, 500, 'internal error')
      },
    )
  }

  /**
   * A page on a foreign origin cannot see why its handshake failed, and its provider
   * retries forever: the operator gets one warning per origin, with the flag that lets it
   * in. Later refusals of the same origin stay at info level (upgrade_refused).
   */
  private originRefused(req: IncomingMessage, ip: string): void {
    const origin = req.headers.origin ?? ''
    let shown: string
    try {
      shown = new URL(origin).origin
    } catch {
      shown = JSON.stringify(origin.slice(0, 100))
    }
    if (this.warnedOrigins.has(shown) || this.warnedOrigins.size >= MAX_WARNED_ORIGINS) return
    this.warnedOrigins.add(shown)
    this.log.warn(
      { event: 'origin_refused', origin: shown, ip },
      `WebSocket from origin ${shown} refused: if that page is yours, start with --allowed-origins ${shown} (comma-separated list; http://localhost:* allows every port)`,
    )
  }

  /**
   * A refused room name is told after the upgrade, with 4400 and the reason: the stock
   * provider retries an HTTP refusal every 2.5 s forever, but stops on a 44xx close.
   * The connection counts toward the address's limit until it is gone, and a client that
   * does not answer the close frame is cut off after a short grace.
   */
  private refuseRoomName(req: IncomingMessage, socket: Duplex, head: Buffer, ip: string, reason: string): void {
    this.log.info({ event: 'upgrade_refused', status: 101, code: 'BAD_ROOM_NAME', close: CLOSE_BAD_ROOM_NAME.code, reason, ip }, 'room name refused')
    if (!this.addresses.acquire(ip)) {
      rejectUpgrade(socket, 429, 'too many connections from this address')
      return
    }
    socket.once('close', releaseOnClose(this.addresses, ip))
    socket.on('error', () => socket.destroy())
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => {})
      ws.close(CLOSE_BAD_ROOM_NAME.code, closeReason(reason))
      setTimeout(() => ws.terminate(), SLOW_CLOSE_GRACE).unref()
    })
  }

  /**
   * A y-websocket provider always names its room in the path, so a connection to the root
   * path is a Hocuspocus provider (`new HocuspocusProvider({ url: 'ws://host:1234', name })`),
   * which names its documents in its messages and authenticates each with its own token.
   * The origin and per-address checks are the same; tokens are checked per document.
   */
  private upgradeHocuspocus(req: IncomingMessage, socket: Duplex, head: Buffer, ip: string, refuse: (status: number, code: string, reason: string) => void): void {
    if (!originAllowed(req, this.options.origins ?? [], this.options.trustProxy ?? false)) {
      this.originRefused(req, ip)
      return refuse(403, 'ORIGIN_FORBIDDEN', 'origin not allowed')
    }
    if (!this.addresses.acquire(ip)) return refuse(429, 'TOO_MANY_CONNECTIONS', 'too many connections from this address')
    socket.on('close', releaseOnClose(this.addresses, ip))
    // Each document authenticates on its own, later: the hook (if any) gets this request then.
    const request = this.options.authorizer.usesRequest ? authRequestOf(req, ip) : NO_REQUEST
    this.wss.handleUpgrade(req, socket, head, (ws) => this.acceptHocuspocus(ws, ip, request))
  }

  private acceptHocuspocus(ws: WebSocket, ip: string, request: AuthRequest): void {
    const hub = this.options.hocuspocus!
    const peer = new WsPeer(ws, 'hocuspocus', false, false, this.options.maxBufferedBytes ?? 0, this.slowConsumer)
    this.peers.add(peer)
    const connection = new HocuspocusConnection(peer, hub, request, (room) => this.admitNewRoom(room, ip))
    const rate = this.newRate()
    let paused = false
    this.log.info({ event: 'connection_open', peer: peer.id, ip, protocol: 'hocuspocus' }, 'connection opened')
    peer.events = this.options.events
    this.options.events.emit('socket.opened', { protocol: peer.protocol })
    ws.on('pong', () => peer.heard())
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const bytes = this.admitFrame(peer, rate, data, isBinary, { protocol: 'hocuspocus' })
      if (!bytes) return
      connection.receive(bytes)
      if (paused) return
      const backlog = connection.backlog()
      if (backlog.size > MAX_WRITE_BACKLOG) {
        paused = true
        ws.pause()
        void backlog.settled.then(() => {
          paused = false
          if (ws.readyState === WebSocket.OPEN) ws.resume()
        })
      }
    })
    ws.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') peer.closeSent = CLOSE_MESSAGE_TOO_BIG
      this.log.warn({ event: 'connection_error', peer: peer.id, code: err.code, err: err.message, protocol: 'hocuspocus' }, 'connection error')
      this.options.events.emit('socket.error', { code: err.code, protocol: peer.protocol })
    })
    ws.on('close', (code: number) => {
      this.peers.delete(peer)
      connection.close(code)
      this.options.events.emit('socket.closed', { code, protocol: peer.protocol })
      this.log.info({
        event: 'connection_close', peer: peer.id, code, sent: peer.closeSent?.code, protocol: 'hocuspocus',
        ms: Date.now() - peer.openedAt, bytesIn: peer.bytesIn, bytesOut: peer.bytesOut,
      }, 'connection closed')
    })
  }

  private accept(ws: WebSocket, roomName: string, wantsAck: boolean, grant: Grant, ip: string): void {
    const peer = new YPeer(ws, roomName, wantsAck, grant.access === 'read', this.options.maxBufferedBytes ?? 0, this.slowConsumer, this.newRate())
    if (grant.user !== undefined) peer.user = grant.user
    this.peers.add(peer)
    if (grant.expiresAt !== undefined) this.armExpiry(peer, grant.expiresAt)
    this.log.info({ event: 'connection_open', room: roomName, peer: peer.id, ip, access: grant.access, protocol: peer.protocol }, 'connection opened')
    peer.events = this.options.events
    this.options.events.emit('socket.opened', { protocol: peer.protocol })
    // Shared listeners that find the connection on the socket: idle connections are many,
    // and four closures and their context cost each one about half a kilobyte.
    ;(ws as ConnectedSocket)[CONNECTION] = { transport: this, peer }
    ws.on('pong', onPong)
    ws.on('message', onMessage)
    ws.on('error', onError)
    ws.on('close', onClose)

    this.registry.join(roomName, peer).then(
      (joined) => {
        if (peer.closed) {
          joined.removePeer(peer, peer.closeCode)
          return
        }
        if (!this.admitNewRoom(joined, ip)) {
          // Refused before any of its messages is applied: nothing of it is stored.
          joined.removePeer(peer, CLOSE_TOO_MANY_NEW_ROOMS.code)
          peer.queue = undefined
          this.log.warn({ event: 'room_creation_limited', room: roomName, peer: peer.id, ip }, 'too many new rooms from this address, closing connection')
          peer.close(CLOSE_TOO_MANY_NEW_ROOMS)
          return
        }
        peer.room = joined
        const pending = peer.queue ?? []
        peer.queue = undefined
        for (const bytes of pending) joined.receive(peer, bytes)
        peer.loaded?.(joined)
        peer.loaded = undefined
      },
      () => peer.close(CLOSE_TRY_AGAIN_LATER, 'room could not be loaded, try again later'),
    )
  }

  /** Closes `peer` when its token expires (setTimeout fires at once past MAX_TIMER: chained). */
  private armExpiry(peer: YPeer, at: number): void {
    const delay = at - Date.now()
    peer.expiry = delay > MAX_TIMER
      ? setTimeout(() => this.armExpiry(peer, at), MAX_TIMER)
      : setTimeout(() => {
        this.log.info({ event: 'token_expired', room: peer.roomName, peer: peer.id }, 'token expired, closing connection')
        peer.close(CLOSE_UNAUTHORIZED, 'token expired')
      }, Math.max(0, delay))
    peer.expiry.unref()
  }

  /** A frame of a y-websocket connection (ws's 'message'). */
  private received(peer: YPeer, data: RawData, isBinary: boolean): void {
    const bytes = this.admitFrame(peer, peer.rate, data, isBinary, { room: peer.roomName })
    if (!bytes) return
    if (peer.room) {
      peer.room.receive(peer, bytes)
      if (!peer.paused && peer.room.writeBacklog > MAX_WRITE_BACKLOG) peer.pauseUntil(peer.room.writesSettled())
    } else if (peer.queue) {
      peer.queue.push(bytes)
      peer.queuedBytes += bytes.length
      if (peer.queuedBytes > MAX_PRELOAD_BYTES && !peer.paused) {
        // Read on once the room is there and what was queued is stored.
        peer.pauseUntil(new Promise<Room>((resolve) => { peer.loaded = resolve }).then((r) => r.writesSettled()))
      }
    }
  }

  private errored(peer: YPeer, err: Error & { code?: string }): void {
    // ws has already started closing (1009 for an oversized frame, 1002 for a bad frame).
    if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') peer.closeSent = CLOSE_MESSAGE_TOO_BIG
    this.log.warn({ event: 'connection_error', room: peer.roomName, peer: peer.id, code: err.code, err: err.message, protocol: peer.protocol }, 'connection error')
    this.options.events.emit('socket.error', { code: err.code, protocol: peer.protocol })
  }

  private closed(peer: YPeer, code: number): void {
    peer.closed = true
    peer.closeCode = code
    clearTimeout(peer.expiry)
    peer.queue = undefined
    this.peers.delete(peer)
    peer.room?.removePeer(peer, code)
    this.options.events.emit('socket.closed', { code, protocol: peer.protocol })
    this.log.info({
      event: 'connection_close', room: peer.roomName, peer: peer.id, code, sent: peer.closeSent?.code, protocol: peer.protocol,
      ms: Date.now() - peer.openedAt, bytesIn: peer.bytesIn, bytesOut: peer.bytesOut,
    }, 'connection closed')
  }

  /** Per connection, unless both limits are off: then one stateless instance serves all. */
  private newRate(): ConnectionRate {
    const perMessage = this.options.maxMessagesPerSecond ?? 0
    const perByte = this.options.maxBytesPerSecond ?? 0
    return perMessage > 0 || perByte > 0 ? new ConnectionRate(perMessage, perByte) : (this.unlimitedRate ??= new ConnectionRate(0, 0))
  }

  /** One function for every connection (see WsPeer's constructor). */
  private readonly slowConsumer = (peer: WsPeer, backlog: number): void => {
    if (peer instanceof YPeer) this.log.warn({ event: 'slow_consumer', room: peer.roomName, peer: peer.id, backlog }, 'connection not reading, closing it')
    else this.log.warn({ event: 'slow_consumer', peer: peer.id, backlog, protocol: 'hocuspocus' }, 'connection not reading, closing it')
  }

  private unlimitedRate: ConnectionRate | undefined

  /** For the shared listeners below. */
  static received(c: SocketConnection, data: RawData, isBinary: boolean): void { c.transport.received(c.peer, data, isBinary) }
  static errored(c: SocketConnection, err: Error & { code?: string }): void { c.transport.errored(c.peer, err) }
  static closed(c: SocketConnection, code: number): void { c.transport.closed(c.peer, code) }

  /**
   * What every frame of either protocol goes through before it is handled: liveness, the
   * traffic counters, the rate limits (4429) and the binary-only rule (1003). Returns the
   * frame's bytes, or undefined if the connection is closing or was just closed for it.
   */
  private admitFrame(peer: WsPeer, rate: ConnectionRate, data: RawData, isBinary: boolean, context: Record<string, string>): Uint8Array | undefined {
    peer.heard()
    if (peer.closeSent) return undefined
    const bytes = toUint8Array(data)
    peer.bytesIn += bytes.length
    if (this.options.events.listens('message.received')) this.options.events.emit('message.received', { message: bytes, protocol: peer.protocol })
    const verdict = rate.admit(bytes.length)
    if (!verdict.ok) {
      this.log.warn({ event: 'rate_limited', ...context, peer: peer.id, code: verdict.code }, 'rate limit exceeded, closing connection')
      peer.close(CLOSE_RATE_LIMITED, verdict.code === 'MESSAGE_RATE' ? 'too many messages per second' : 'too many bytes per second')
      return undefined
    }
    if (!isBinary) {
      this.log.warn({ event: 'bad_message', ...context, peer: peer.id, code: 'TEXT_FRAME' }, 'text frame, closing connection')
      peer.close(CLOSE_UNSUPPORTED_DATA)
      return undefined
    }
    return bytes
  }

  /** Joining a room with nothing stored creates it: that takes one from the address's budget. */
  private admitNewRoom(room: Room, ip: string): boolean {
    if (this.created.has(room) || room.lastApplied > 0 || room.doc.store.clients.size > 0) return true
    if (!this.newRooms.admit(ip)) return false
    this.created.add(room)
    return true
  }

  private ping(): void {
    // After this turn's I/O: a loop stalled past an interval runs the overdue timer before
    // it reads the pongs that arrived meanwhile, and would drop live peers as dead.
    setImmediate(() => this.sweep())
  }

  private sweep(): void {
    for (const peer of this.peers) {
      if (!peer.alive) {
        this.log.info({ event: 'peer_timeout', peer: peer.id }, 'no pong, dropping connection')
        peer.ws.terminate()
        continue
      }
      peer.alive = false
      if (peer.ws.readyState === WebSocket.OPEN) peer.ws.ping()
    }
  }

  /** Closes every connection with 1001 and stops pinging. */
  closeAll(close: CloseCode = CLOSE_GOING_AWAY): void {
    clearInterval(this.pingTimer)
    for (const peer of this.peers) peer.close(close)
  }

  /** Resolves once every connection has closed, terminating stragglers after `timeout` ms. */
  async drained(timeout: number): Promise<void> {
    const deadline = Date.now() + timeout
    while (this.peers.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    for (const peer of this.peers) peer.ws.terminate()
    this.wss.close()
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

/**
 * The socket's 'close' listener lives as long as the connection (`on`, not `once`: a socket
 * closes once, and `once` adds a wrapper and its state per connection). Made here, outside
 * handleUpgrade, it holds only the counter and the address: a closure made there would
 * keep the upgrade request, its headers and its URL alive (~1.5 KB per connection).
 */
function releaseOnClose(addresses: AddressCounter, ip: string): () => void {
  return () => addresses.release(ip)
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

/** Answers an upgrade request with an HTTP error instead of a WebSocket. */
export function rejectUpgrade(socket: Duplex, status: number, message: string): void {
  const body = `${message}\n`
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    'Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  )
}
