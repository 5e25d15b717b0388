/**
 * Turns the security options of the configuration into what the transport and the
 * HTTP server need, failing at startup (never at the first connection) on a bad key,
 * certificate, origin or pattern.
 */
import { readFileSync } from 'node:fs'
import { Authenticator, parseAllowedOrigins } from './auth.js'
import { CoeditError } from '../errors.js'
import { roomNamePattern } from '../room/room-name.js'
import type { TransportOptions } from './transport.js'

export interface Security {
  transport: Omit<TransportOptions, 'maxMessageSize' | 'pingInterval' | 'events' | 'authorizer'>
  /** JWT checking, when --auth-secret or --auth-public-key is set (server/transport/authorizer.ts decides whether it is used). */
  tokens: Authenticator | undefined
  /** Present when TLS is on: the server speaks https:// and wss://. */
  tls: { cert: Buffer; key: Buffer } | undefined
}

/** The security options of the configuration (the composition passes the whole ServerConfig, server/config.ts). */
export interface SecurityConfig {
  authSecret: string
  authPublicKey: string
  allowedOrigins: string
  trustProxy: boolean
  loopbackExempt: boolean
  maxConnectionsPerIp: number
  maxMessagesPerSecond: number
  maxBytesPerSecond: number
  maxBufferedBytes: number
  maxRoomNameLength: number
  roomNamePattern: string
  tlsCert: string
  tlsKey: string
}

/** `config` has passed validateConfig (server/config.ts): the TLS pair is whole or absent. */
export function securityOptions(config: SecurityConfig): Security {
  return {
    tokens: Authenticator.fromOptions(config),
    transport: {
      origins: parseAllowedOrigins(config.allowedOrigins),
      trustProxy: config.trustProxy,
      loopbackExempt: config.loopbackExempt,
      maxConnectionsPerIp: config.maxConnectionsPerIp,
      maxMessagesPerSecond: config.maxMessagesPerSecond,
      maxBytesPerSecond: config.maxBytesPerSecond,
      maxBufferedBytes: config.maxBufferedBytes,
      maxRoomNameLength: config.maxRoomNameLength,
      roomNamePattern: roomNamePattern(config.roomNamePattern),
    },
    tls: config.tlsCert ? { cert: readPem(config.tlsCert, 'certificate'), key: readPem(config.tlsKey, 'key') } : undefined,
  }
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file)
  } catch (err) {
    throw new CoeditError('TLS_UNREADABLE', `cannot read the TLS ${what} ${file}: ${(err as Error).message}`, { cause: err })
  }
}
