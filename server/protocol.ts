/**
 * The wire protocol: y-websocket's messages (as y-protocols defines them) plus
 * coedit's opt-in extension. Pure codec: no I/O, no timers, no Yjs documents.
 *
 * Every frame is one binary message that starts with a varuint message type:
 *
 *   0 sync       varuint subtype, then
 *                  0 step 1  varUint8Array state vector
 *                  1 step 2  varUint8Array update (what the receiver lacks)
 *                  2 update  varUint8Array update
 *   1 awareness  varUint8Array awareness update:
 *                  varuint n, n × (varuint clientID, varuint clock, varString JSON state)
 *   2 auth       varuint 0 (permission denied), varString reason   (server → client)
 *   3 query awareness (no payload; the server answers with every awareness state)
 *   100 coedit   extension, only sent to clients that opted in (`?coedit=1`):
 *                  varuint subtype, then
 *                  0 persisted  varuint n: the first n document messages (sync step 2
 *                               and update) this connection sent are durably stored.
 *
 * Decoding is strict: truncated input, declared lengths beyond the frame, trailing
 * bytes and unknown types are errors, because a server that guesses at a malformed
 * message risks storing garbage that every later load would trip over.
 */
import * as encoding from 'lib0/encoding'

export const MESSAGE_SYNC = 0
export const MESSAGE_AWARENESS = 1
export const MESSAGE_AUTH = 2
export const MESSAGE_QUERY_AWARENESS = 3
export const MESSAGE_COEDIT = 100

export const SYNC_STEP1 = 0
export const SYNC_STEP2 = 1
export const SYNC_UPDATE = 2

export const AUTH_PERMISSION_DENIED = 0

export const COEDIT_PERSISTED = 0

/** Query parameter a client sets to receive coedit extension messages. */
export const COEDIT_OPT_IN_PARAM = 'coedit'
export const COEDIT_PROTOCOL_VERSION = 1

export type ClientMessage =
  | { type: 'sync-step1'; stateVector: Uint8Array }
  | { type: 'sync-step2'; update: Uint8Array }
  | { type: 'sync-update'; update: Uint8Array }
  | { type: 'awareness'; update: Uint8Array }
  | { type: 'query-awareness' }

export type ServerMessage =
  | ClientMessage
  | { type: 'auth-denied'; reason: string }
  | { type: 'coedit-persisted'; count: number }

export class ProtocolError extends Error {
  readonly code: string
  constructor(code: string, message: string) {
    super(message)
    this.name = 'ProtocolError'
    this.code = code
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** A bounds-checked reader: lib0's decoder trusts declared lengths, we cannot. */
export class Reader {
  private pos = 0
  constructor(private readonly buf: Uint8Array) {}

  /** Bytes read so far. */
  get offset(): number {
    return this.pos
  }

  get done(): boolean {
    return this.pos === this.buf.length
  }

  varUint(): number {
    let num = 0
    let mult = 1
    while (this.pos < this.buf.length) {
      const byte = this.buf[this.pos++]!
      num += (byte & 0x7f) * mult
      if (byte < 0x80) return num
      mult *= 128
      if (num > Number.MAX_SAFE_INTEGER || mult > 2 ** 56) {
        throw new ProtocolError('VARINT_TOO_LARGE', 'varint exceeds 2^53')
      }
    }
    throw new ProtocolError('TRUNCATED', 'message ends inside a varint')
  }

  bytes(): Uint8Array {
    const len = this.varUint()
    if (len > this.buf.length - this.pos) {
      throw new ProtocolError('TRUNCATED', `declared length ${len} exceeds the ${this.buf.length - this.pos} bytes left`)
    }
    const out = this.buf.subarray(this.pos, this.pos + len)
    this.pos += len
    return out
  }

  string(): string {
    try {
      return utf8.decode(this.bytes())
    } catch (err) {
      if (err instanceof ProtocolError) throw err
      throw new ProtocolError('BAD_UTF8', 'string is not valid UTF-8')
    }
  }

  end(): void {
    if (this.pos !== this.buf.length) {
      throw new ProtocolError('TRAILING_BYTES', `${this.buf.length - this.pos} unexpected bytes after the message`)
    }
  }
}

export function decodeWith<T>(buf: Uint8Array, read: (r: Reader) => T): T {
  const r = new Reader(buf)
  const out = read(r)
  r.end()
  return out
}

/** Decodes one client → server frame. Throws ProtocolError on anything malformed. */
export function decodeClientMessage(buf: Uint8Array): ClientMessage {
  return decodeWith(buf, (r): ClientMessage => {
    const type = r.varUint()
    switch (type) {
      case MESSAGE_SYNC: {
        const sub = r.varUint()
        switch (sub) {
          case SYNC_STEP1: return { type: 'sync-step1', stateVector: r.bytes() }
          case SYNC_STEP2: return { type: 'sync-step2', update: r.bytes() }
          case SYNC_UPDATE: return { type: 'sync-update', update: r.bytes() }
          default: throw new ProtocolError('UNKNOWN_SYNC_TYPE', `unknown sync message type ${sub}`)
        }
      }
      case MESSAGE_AWARENESS: return { type: 'awareness', update: r.bytes() }
      case MESSAGE_QUERY_AWARENESS: return { type: 'query-awareness' }
      default: throw new ProtocolError('UNKNOWN_MESSAGE_TYPE', `unknown message type ${type}`)
    }
  })
}

/** Decodes one server → client frame (used by tests and headless clients). */
export function decodeServerMessage(buf: Uint8Array): ServerMessage {
  const r0 = new Reader(buf)
  const type = r0.varUint()
  if (type === MESSAGE_AUTH) {
    return decodeWith(buf, (r) => {
      r.varUint()
      const sub = r.varUint()
      if (sub !== AUTH_PERMISSION_DENIED) throw new ProtocolError('UNKNOWN_AUTH_TYPE', `unknown auth message type ${sub}`)
      return { type: 'auth-denied', reason: r.string() }
    })
  }
  if (type === MESSAGE_COEDIT) {
    return decodeWith(buf, (r) => {
      r.varUint()
      const sub = r.varUint()
      if (sub !== COEDIT_PERSISTED) throw new ProtocolError('UNKNOWN_COEDIT_TYPE', `unknown coedit message type ${sub}`)
      return { type: 'coedit-persisted', count: r.varUint() }
    })
  }
  return decodeClientMessage(buf)
}

function encode(write: (e: encoding.Encoder) => void): Uint8Array {
  const e = encoding.createEncoder()
  write(e)
  return encoding.toUint8Array(e)
}

export function encodeSyncStep1(stateVector: Uint8Array): Uint8Array {
  return encode((e) => {
    encoding.writeVarUint(e, MESSAGE_SYNC)
    encoding.writeVarUint(e, SYNC_STEP1)
    encoding.writeVarUint8Array(e, stateVector)
  })
}

export function encodeSyncStep2(update: Uint8Array): Uint8Array {
  return encode((e) => {
    encoding.writeVarUint(e, MESSAGE_SYNC)
    encoding.writeVarUint(e, SYNC_STEP2)
    encoding.writeVarUint8Array(e, update)
  })
}

export function encodeSyncUpdate(update: Uint8Array): Uint8Array {
  return encode((e) => {
    encoding.writeVarUint(e, MESSAGE_SYNC)
    encoding.writeVarUint(e, SYNC_UPDATE)
    encoding.writeVarUint8Array(e, update)
  })
}

export function encodeAwareness(update: Uint8Array): Uint8Array {
  return encode((e) => {
    encoding.writeVarUint(e, MESSAGE_AWARENESS)
    encoding.writeVarUint8Array(e, update)
  })
}

export function encodeQueryAwareness(): Uint8Array {
  return encode((e) => encoding.writeVarUint(e, MESSAGE_QUERY_AWARENESS))
}

export function encodeAuthDenied(reason: string): Uint8Array {
  return encode((e) => {
    encoding.writeVarUint(e, MESSAGE_AUTH)
    encoding.writeVarUint(e, AUTH_PERMISSION_DENIED)
    encoding.writeVarString(e, reason)
  })
}

export function encodeCoeditPersisted(count: number): Uint8Array {
  return encode((e) => {
    encoding.writeVarUint(e, MESSAGE_COEDIT)
    encoding.writeVarUint(e, COEDIT_PERSISTED)
    encoding.writeVarUint(e, count)
  })
}

/** One entry of an awareness update; `state === null` removes the client. */
export interface AwarenessEntry {
  clientID: number
  clock: number
  state: unknown
}

/**
 * Decodes the payload of an awareness message, validating every state as JSON,
 * so that y-protocols (which would throw halfway through applying) only ever
 * sees well-formed updates.
 */
export function decodeAwarenessUpdate(update: Uint8Array): AwarenessEntry[] {
  return decodeWith(update, (r) => {
    const n = r.varUint()
    // Each entry takes at least 3 bytes; a larger count is a lie about the frame.
    if (n > update.length) throw new ProtocolError('TRUNCATED', `awareness update claims ${n} entries`)
    const entries: AwarenessEntry[] = []
    for (let i = 0; i < n; i++) {
      const clientID = r.varUint()
      const clock = r.varUint()
      const json = r.string()
      let state: unknown
      try {
        state = JSON.parse(json)
      } catch {
        throw new ProtocolError('BAD_AWARENESS_JSON', `awareness state of client ${clientID} is not JSON`)
      }
      entries.push({ clientID, clock, state })
    }
    return entries
  })
}

export function encodeAwarenessUpdate(entries: readonly AwarenessEntry[]): Uint8Array {
  return encode((e) => {
    encoding.writeVarUint(e, entries.length)
    for (const { clientID, clock, state } of entries) {
      encoding.writeVarUint(e, clientID)
      encoding.writeVarUint(e, clock)
      encoding.writeVarString(e, JSON.stringify(state))
    }
  })
}
