/**
 * TCP connections, counted from the moment they are accepted: a client that opens sockets
 * and trickles (or never sends) its request headers holds them as surely as a WebSocket
 * does. Two bounds:
 *
 * - `maxConnectionsPerIp` per peer address (loopback exempt, as for WebSockets): HTTP 429;
 * - `maxConnections` for the whole server (loopback included): HTTP 503.
 *
 * A refused connection is answered at once, before its request is read (the client reads
 * the answer whatever it sent), and closed; under TLS nothing can be said before the
 * handshake, so it is just closed. Refused connections are not counted, and are gone
 * within a second, so a flood of them holds nothing.
 *
 * Except a liveness probe: a server full of connections is alive, and an orchestrator that
 * restarts it for failing /healthz drops every one of them. So up to PROBE_RESERVE
 * connections past --max-connections are read after all, for PROBE_DEADLINE_MS at most:
 * a `GET /healthz` on one is answered as usual (and the connection closed), anything else
 * gets the 503 (see `admits`). Past the reserve, connections are refused at once as above.
 * A client that fills the reserve on purpose must also hold --max-connections sockets, and
 * holds the reserve's only a second each.
 *
 * Counted at the socket's address, not X-Forwarded-For: no header has arrived yet. Behind
 * a proxy on loopback that leaves the server-wide bound (and the WebSocket count per
 * forwarded address in the transport).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Server } from 'node:net'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { AddressCounter } from './limits.js'

export interface ConnectionLimits {
  /** Whole server; 0 = no limit. */
  maxConnections: number
  /** Per peer address; 0 = no limit. */
  maxConnectionsPerIp: number
  /** Loopback addresses are not limited per address (--loopback-exempt, the default). */
  loopbackExempt: boolean
  /** Under TLS a refusal cannot be an HTTP answer: the socket is closed. */
  tls: boolean
}

/** A refused client that does not close its side is cut off after this long. */
const REFUSED_GRACE_MS = 1000
/** Connections past --max-connections read to see whether they are a liveness probe. */
export const PROBE_RESERVE = 16
/** How long such a connection may take to ask (a probe asks at once); then it is closed. */
const PROBE_DEADLINE_MS = 1000
/** The one request such a connection may make. */
const LIVENESS_PATH = '/healthz'
/** Refusals are logged at most once per this interval per kind, with the count since. */
const LOG_EVERY_MS = 10_000

type Refusal = 'TOO_MANY_CONNECTIONS' | 'SERVER_FULL'

export const SERVER_FULL_MESSAGE = 'the server has too many connections, try again later'

export class ConnectionGuard {
  private open = 0
  /**
   * Connections past the bound that may still ask for /healthz, by `address:port` (under
   * TLS a request's socket is not the one accepted here, but its ends are the same).
   */
  private readonly probing = new Set<string>()
  private readonly perAddress: AddressCounter
  private readonly refused: Record<Refusal, { count: number; loggedAt: number }> = {
    TOO_MANY_CONNECTIONS: { count: 0, loggedAt: 0 },
    SERVER_FULL: { count: 0, loggedAt: 0 },
  }

  constructor(private readonly limits: ConnectionLimits, private readonly log: Logger) {
    this.perAddress = new AddressCounter(limits.maxConnectionsPerIp, limits.loopbackExempt)
  }

  /** Open (accepted, not refused) TCP connections. */
  get count(): number {
    return this.open
  }

  /** Counts every connection `server` accepts, before its HTTP parser sees a byte. */
  attach(server: Server): void {
    server.prependListener('connection', (socket: Socket) => this.accept(socket))
  }

  private accept(socket: Socket): void {
    const address = socket.remoteAddress ?? 'unknown'
    if (this.limits.maxConnections > 0 && this.open >= this.limits.maxConnections) {
      if (this.probing.size < PROBE_RESERVE && socket.remotePort !== undefined) return this.probe(socket, `${address}:${socket.remotePort}`)
      return this.refuse(socket, 503, 'SERVER_FULL', SERVER_FULL_MESSAGE, address)
    }
    if (!this.perAddress.acquire(address)) {
      return this.refuse(socket, 429, 'TOO_MANY_CONNECTIONS', 'too many connections from this address', address)
    }
    this.open++
    // `on`: a socket closes once, and `once` would add a wrapper and its state per connection.
    socket.on('close', () => {
      this.open--
      this.perAddress.release(address)
    })
  }

  /** A connection past the bound, let through to the HTTP parser to see if it is a probe. */
  private probe(socket: Socket, key: string): void {
    this.probing.add(key)
    const deadline = setTimeout(() => socket.destroy(), PROBE_DEADLINE_MS)
    deadline.unref()
    socket.once('close', () => {
      clearTimeout(deadline)
      this.probing.delete(key)
    })
  }

  /**
   * For the request handler: true if the request may be served. On a connection past the
   * bound only `GET /healthz` may (it is told to close after the answer); anything else gets
   * the 503 here and false.
   */
  admits(req: IncomingMessage, res: ServerResponse): boolean {
    if (!this.isProbing(req.socket)) return true
    const path = (req.url ?? '').split('?')[0]
    if ((req.method === 'GET' || req.method === 'HEAD') && path === LIVENESS_PATH) {
      res.setHeader('Connection', 'close')
      return true
    }
    this.count503(req.socket.remoteAddress ?? 'unknown')
    res.writeHead(503, { 'Connection': 'close', 'Retry-After': '5', 'Content-Type': 'text/plain; charset=utf-8' })
    res.end(`${SERVER_FULL_MESSAGE}\n`)
    return false
  }

  /** An upgrade on a connection past the bound: counted as refused, for the caller to answer 503 (SERVER_FULL_MESSAGE). */
  refusesUpgrade(socket: Duplex): boolean {
    if (!this.isProbing(socket as Socket)) return false
    this.count503((socket as Socket).remoteAddress ?? 'unknown')
    return true
  }

  private isProbing(socket: Socket): boolean {
    return this.probing.size > 0 && this.probing.has(`${socket.remoteAddress ?? 'unknown'}:${socket.remotePort}`)
  }

  private count503(address: string): void {
    this.note(503, 'SERVER_FULL', SERVER_FULL_MESSAGE, address)
  }

  /** Counts a refusal; logs at most every LOG_EVERY_MS per kind, with the count since. */
  private note(status: 429 | 503, code: Refusal, message: string, address: string): void {
    const now = Date.now()
    const seen = this.refused[code]
    seen.count++
    if (now - seen.loggedAt >= LOG_EVERY_MS) {
      this.log.warn({ event: 'connection_refused', status, code, ip: address, refused: seen.count }, message)
      seen.loggedAt = now
      seen.count = 0
    }
  }

  private refuse(socket: Socket, status: 429 | 503, code: Refusal, message: string, address: string): void {
    this.note(status, code, message, address)
    // A socket error after this (a reset) is no news: nobody else listens before the HTTP parser.
    socket.on('error', () => {})
    if (this.limits.tls) {
      socket.destroy()
      return
    }
    const body = `${message}\n`
    socket.end(
      `HTTP/1.1 ${status} ${status === 429 ? 'Too Many Requests' : 'Service Unavailable'}\r\n` +
      `Connection: close\r\nRetry-After: ${status === 429 ? 10 : 5}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    )
    setTimeout(() => socket.destroy(), REFUSED_GRACE_MS).unref()
  }
}
