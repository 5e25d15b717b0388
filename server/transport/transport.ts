/**
 * WebSocket transport: with connection.ts, the only modules that import `ws`. It turns an
 * HTTP upgrade into a connection (a y-websocket `Connection`, the peer of one room, or a
 * Hocuspocus socket of many documents; connection.ts), keeps the set of open ones, and
 * finds dead ones by ping/pong.
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, WebSocket } from 'ws'
import type { Logger } from 'pino'
import { CLOSE_BAD_ROOM_NAME, CLOSE_GOING_AWAY, closeReason, type CloseCode } from '../room/close-codes.js'
import { COEDIT_OPT_IN_PARAM } from '../room/protocol.js'
import type { RoomRegistry } from '../room/registry.js'
import type { Room } from '../room/room.js'
import { parseRoomPath } from '../room/room-name.js'
import { OPEN_GRANT, clientAddress, originAllowed, tokenOf, type Grant, type OriginPolicy } from './auth.js'
import { NO_REQUEST, authRequestOf, type AuthRequest, type Authorizer } from './authorizer.js'
import type { EventSink } from '../base/events.js'
import { Connection, HocuspocusSocket, SLOW_CLOSE_GRACE, WIRE_PROTOCOLS, type ConnectionContext, type TransportEvents, type WireProtocol, type WsPeer } from './connection.js'
import { AddressCounter, ConnectionRate, NewRoomLimiter } from './limits.js'
import type { HocuspocusHub } from './hocuspocus.js'
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

/** Distinct refused origins warned about; past it a page cycling origins cannot flood the log. */
const MAX_WARNED_ORIGINS = 100

// Declared beside the connections that emit them; named here too for the transport's users.
export { WIRE_PROTOCOLS, type WireProtocol, type TransportEvents }

export class Transport {
  private readonly wss: WebSocketServer
  /** Open connections of both protocols (each adds and removes itself, see connection.ts). */
  private readonly peers = new Set<WsPeer>()
  private readonly pingTimer: NodeJS.Timeout
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
  /** One for every connection of this transport (see connection.ts). */
  private readonly context: ConnectionContext
  private unlimitedRate: ConnectionRate | undefined

  constructor(registry: RoomRegistry, options: TransportOptions, log: Logger) {
    this.log = log
    this.options = options
    this.context = {
      log,
      events: options.events,
      registry,
      maxBuffered: options.maxBufferedBytes ?? 0,
      peers: this.peers,
      admitNewRoom: (room, ip) => this.admitNewRoom(room, ip),
    }
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
    new HocuspocusSocket(ws, this.context, this.newRate(), this.options.hocuspocus!, request, ip).open(ip)
  }

  private accept(ws: WebSocket, roomName: string, wantsAck: boolean, grant: Grant, ip: string): void {
    new Connection(ws, this.context, roomName, wantsAck, grant, this.newRate()).open(grant, ip)
  }

  /** Per connection, unless both limits are off: then one stateless instance serves all. */
  private newRate(): ConnectionRate {
    const perMessage = this.options.maxMessagesPerSecond ?? 0
    const perByte = this.options.maxBytesPerSecond ?? 0
    return perMessage > 0 || perByte > 0 ? new ConnectionRate(perMessage, perByte) : (this.unlimitedRate ??= new ConnectionRate(0, 0))
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
 * The socket's 'close' listener lives as long as the connection (`on`, not `once`: a socket
 * closes once, and `once` adds a wrapper and its state per connection). Made here, outside
 * handleUpgrade, it holds only the counter and the address: a closure made there would
 * keep the upgrade request, its headers and its URL alive (~1.5 KB per connection).
 */
function releaseOnClose(addresses: AddressCounter, ip: string): () => void {
  return () => addresses.release(ip)
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
