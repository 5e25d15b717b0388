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
 * Counted at the socket's address, not X-Forwarded-For: no header has arrived yet. Behind
 * a proxy on loopback that leaves the server-wide bound (and the WebSocket count per
 * forwarded address in the transport).
 */
import type { Server } from 'node:net'
import type { Socket } from 'node:net'
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
/** Refusals are logged at most once per this interval per kind, with the count since. */
const LOG_EVERY_MS = 10_000

type Refusal = 'TOO_MANY_CONNECTIONS' | 'SERVER_FULL'

export class ConnectionGuard {
  private open = 0
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
      return this.refuse(socket, 503, 'SERVER_FULL', 'the server has too many connections, try again later', address)
    }
    if (!this.perAddress.acquire(address)) {
      return this.refuse(socket, 429, 'TOO_MANY_CONNECTIONS', 'too many connections from this address', address)
    }
    this.open++
    socket.once('close', () => {
      this.open--
      this.perAddress.release(address)
    })
  }

  private refuse(socket: Socket, status: 429 | 503, code: Refusal, message: string, address: string): void {
    const now = Date.now()
    const seen = this.refused[code]
    seen.count++
    if (now - seen.loggedAt >= LOG_EVERY_MS) {
      this.log.warn({ event: 'connection_refused', status, code, ip: address, refused: seen.count }, message)
      seen.loggedAt = now
      seen.count = 0
    }
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
