/**
 * The Hocuspocus dialect (what `@hocuspocus/provider` 4.x speaks), beside y-websocket's in
 * protocol.ts. Pure codec: no I/O, no timers, no Yjs documents.
 *
 * One WebSocket carries many documents, so every frame, both directions, starts with the
 * document's address; after it comes a message whose type numbers and bodies are
 * y-websocket's for sync (0), awareness (1) and query awareness (3):
 *
 *   varString address   the document name, or `name \0 sessionId` (the provider's
 *                       `sessionAwareness` option); replies use the address as received
 *   varuint   type
 *     0 sync            as y-websocket (step 1, step 2, update)
 *     1 awareness       as y-websocket
 *     2 auth            varuint subtype:
 *                         0 token          varString token [, varString providerVersion]  (client → server, first)
 *                         1 denied         varString reason                               (server → client)
 *                         2 authenticated  varString scope: "read-write" | "readonly"     (server → client)
 *     3 query awareness
 *     5 stateless       varString payload (application-defined, both ways)
 *     7 close           client → server: nothing (the provider detaches the document);
 *                       server → client: varString reason
 *     8 sync status     varuint 1 | 0 (server → client): one per document message (sync
 *                       step 2 or update) the client sent: 1 = applied (coedit: stored), 0 = refused
 *   Connection-level, without an address: a lone byte 9 (ping, server → client) or 10 (pong).
 *
 * Decoding is as strict as protocol.ts: truncation, bad UTF-8 and unknown types are
 * ProtocolErrors.
 */
import * as encoding from 'lib0/encoding'
import { ProtocolError, Reader, decodeWith } from '../room/protocol.js'

export const HP_SYNC = 0
export const HP_AWARENESS = 1
export const HP_AUTH = 2
export const HP_QUERY_AWARENESS = 3
export const HP_STATELESS = 5
export const HP_CLOSE = 7
export const HP_SYNC_STATUS = 8
export const HP_PING = 9
export const HP_PONG = 10

export const HP_AUTH_TOKEN = 0
export const HP_AUTH_DENIED = 1
export const HP_AUTH_AUTHENTICATED = 2

export type HpScope = 'read-write' | 'readonly'

/** A client frame, split into its address and the message after it. */
export type HpClientFrame =
  | { kind: 'pong' }
  | {
    kind: 'document'
    address: string
    /** The document name: the address without a `\0 sessionId` suffix. */
    document: string
    type: number
    /** The message from its type on: for sync, awareness and query awareness, exactly a y-websocket message. */
    message: Uint8Array
  }

/** Splits a client frame. Throws ProtocolError if it has no well-formed address and type. */
export function decodeHpFrame(buf: Uint8Array): HpClientFrame {
  if (buf.length === 1 && buf[0] === HP_PONG) return { kind: 'pong' }
  const r = new Reader(buf)
  const address = r.string()
  const start = r.offset
  const type = r.varUint()
  const separator = address.indexOf('\0')
  return {
    kind: 'document',
    address,
    document: separator === -1 ? address : address.slice(0, separator),
    type,
    message: buf.subarray(start),
  }
}

/** The token of an auth message (`message` as decodeHpFrame returns it). */
export function decodeHpAuth(message: Uint8Array): { token: string; providerVersion: string | undefined } {
  return decodeWith(message, (r) => {
    r.varUint()
    const sub = r.varUint()
    if (sub !== HP_AUTH_TOKEN) throw new ProtocolError('UNKNOWN_AUTH_TYPE', `unexpected auth message type ${sub} from a client`)
    const token = r.string()
    const providerVersion = r.done ? undefined : r.string()
    return { token, providerVersion }
  })
}

/** The payload of a stateless message. */
export function decodeHpStateless(message: Uint8Array): string {
  return decodeWith(message, (r) => {
    r.varUint()
    return r.string()
  })
}

function encode(address: string, write: (e: encoding.Encoder) => void): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarString(e, address)
  write(e)
  return encoding.toUint8Array(e)
}

/** Prefixes a y-websocket message (sync, awareness) with a document address. */
export function encodeHpMessage(address: string, message: Uint8Array): Uint8Array {
  return encode(address, (e) => encoding.writeUint8Array(e, message))
}

export function encodeHpAuthenticated(address: string, scope: HpScope): Uint8Array {
  return encode(address, (e) => {
    encoding.writeVarUint(e, HP_AUTH)
    encoding.writeVarUint(e, HP_AUTH_AUTHENTICATED)
    encoding.writeVarString(e, scope)
  })
}

export function encodeHpDenied(address: string, reason: string): Uint8Array {
  return encode(address, (e) => {
    encoding.writeVarUint(e, HP_AUTH)
    encoding.writeVarUint(e, HP_AUTH_DENIED)
    encoding.writeVarString(e, reason)
  })
}

export function encodeHpSyncStatus(address: string, applied: boolean): Uint8Array {
  return encode(address, (e) => {
    encoding.writeVarUint(e, HP_SYNC_STATUS)
    encoding.writeVarUint(e, applied ? 1 : 0)
  })
}

export function encodeHpStateless(address: string, payload: string): Uint8Array {
  return encode(address, (e) => {
    encoding.writeVarUint(e, HP_STATELESS)
    encoding.writeVarString(e, payload)
  })
}

export function encodeHpClose(address: string, reason: string): Uint8Array {
  return encode(address, (e) => {
    encoding.writeVarUint(e, HP_CLOSE)
    encoding.writeVarString(e, reason)
  })
}

/** Client side of the auth handshake (tests and headless clients). */
export function encodeHpToken(address: string, token: string): Uint8Array {
  return encode(address, (e) => {
    encoding.writeVarUint(e, HP_AUTH)
    encoding.writeVarUint(e, HP_AUTH_TOKEN)
    encoding.writeVarString(e, token)
  })
}
