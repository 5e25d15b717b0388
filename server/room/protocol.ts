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
 * message risks storing garbage that every later load would trip over. Awareness states
 * are checked against size and nesting-depth limits before their JSON is parsed.
 */
import * as encoding from 'lib0/encoding'
import { CoeditError, type ErrorCode } from '../errors.js'
import { jsonNestingDepth } from './json-depth.js'

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

/**
 * The shared text clients bind to (`doc.getText(DEFAULT_TEXT_NAME)`): the editor, the README's
 * client example, webhooks' `includeText`, and the default of every `name` an export or diff takes.
 */
export const DEFAULT_TEXT_NAME = 'text'

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

/** A malformed or out-of-bounds message: its connection is closed, nothing of it is applied. */
export class ProtocolError extends CoeditError {
  constructor(code: ErrorCode, message: string) {
    super(code, message)
    this.name = 'ProtocolError'
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

function varUintLength(n: number): number {
  let len = 1
  while (n >= 128) {
    n = Math.floor(n / 128)
    len++
  }
  return len
}

/** Bytes of `text` in UTF-8 (JSON.stringify output: lone surrogates come escaped). */
function utf8Length(text: string): number {
  let bytes = text.length
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x80) continue
    if (c < 0x800) {
      bytes += 1
    } else {
      // Three bytes for one unit; a surrogate pair is two units and four bytes.
      bytes += 2
      if (c >= 0xd800 && c <= 0xdbff) i++
    }
  }
  return bytes
}

function utf8Text(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes)
  } catch {
    throw new ProtocolError('BAD_UTF8', 'string is not valid UTF-8')
  }
}

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
    const start = this.skipBytes()
    return this.buf.subarray(start, this.pos)
  }

  /** Reads past the next varUint8Array; returns where its bytes start (they end at `position`). */
  skipBytes(): number {
    const len = this.varUint()
    if (len > this.buf.length - this.pos) {
      throw new ProtocolError('TRUNCATED', `declared length ${len} exceeds the ${this.buf.length - this.pos} bytes left`)
    }
    const start = this.pos
    this.pos += len
    return start
  }

  get position(): number {
    return this.pos
  }

  string(): string {
    return utf8Text(this.bytes())
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

/** An entry as received, with what it weighs. */
export interface ReceivedAwarenessEntry extends AwarenessEntry {
  /** Bytes the entry takes in the update (client ID, clock and JSON): what relaying it costs. */
  size: number
}

/**
 * Bounds on each awareness state, checked before its JSON is parsed. Breaking one is a
 * ProtocolError: AWARENESS_STATE_TOO_LARGE or AWARENESS_TOO_DEEP.
 */
export interface AwarenessLimits {
  /** Largest state, in bytes of its JSON text, as sent and as the server re-encodes it. */
  maxStateBytes: number
  /** Deepest nesting of arrays and objects in a state (`{"a":[1]}` is 2). */
  maxDepth: number
}

export const NO_AWARENESS_LIMITS: AwarenessLimits = { maxStateBytes: Infinity, maxDepth: Infinity }

/** An awareness entry not parsed yet: bytes `start` to `end` of its update hold the state's JSON. */
export interface AwarenessEntryRef {
  clientID: number
  clock: number
  start: number
  end: number
}

/**
 * Reads the structure of an awareness update (client IDs, clocks, where each state lies)
 * one entry at a time, without parsing any state: a receiver can stop at the first entry
 * it refuses, drop most entries unparsed and parse (parseAwarenessState) only those it
 * keeps. A message of 200,000 entries then costs one pass over its bytes at most. Throws
 * ProtocolError on a malformed frame; the check for trailing bytes runs once the last
 * entry was read, so a receiver must read to the end before acting on any entry.
 */
export function* readAwarenessUpdate(update: Uint8Array): Generator<AwarenessEntryRef, void> {
  const r = new Reader(update)
  const n = r.varUint()
  // Each entry takes at least 3 bytes; a larger count is a lie about the frame.
  if (n > update.length) throw new ProtocolError('TRUNCATED', `awareness update claims ${n} entries`)
  for (let i = 0; i < n; i++) {
    const clientID = r.varUint()
    const clock = r.varUint()
    const start = r.skipBytes()
    yield { clientID, clock, start, end: r.position }
  }
  r.end()
}

const NULL_JSON = [0x6e, 0x75, 0x6c, 0x6c]

/** The entry removes its client (its JSON is `null`, as y-protocols writes it), known without parsing. */
export function isAwarenessRemoval(update: Uint8Array, ref: AwarenessEntryRef): boolean {
  return ref.end - ref.start === 4 && NULL_JSON.every((b, i) => update[ref.start + i] === b)
}

/**
 * Parses one entry's state within `limits`: size and nesting depth are checked before the
 * JSON is parsed (a state nested thousands deep parses fine but overflows the stack of
 * every JSON.stringify after), then the size again as re-encoded. Throws ProtocolError.
 */
export function parseAwarenessState(update: Uint8Array, ref: AwarenessEntryRef, limits: AwarenessLimits = NO_AWARENESS_LIMITS): ReceivedAwarenessEntry {
  const { clientID, clock } = ref
  const raw = update.subarray(ref.start, ref.end)
  if (raw.length > limits.maxStateBytes) {
    throw new ProtocolError('AWARENESS_STATE_TOO_LARGE', `awareness state of client ${clientID} is ${raw.length} bytes, over the limit of ${limits.maxStateBytes}`)
  }
  if (jsonNestingDepth(raw, limits.maxDepth) > limits.maxDepth) {
    throw new ProtocolError('AWARENESS_TOO_DEEP', `awareness state of client ${clientID} nests deeper than ${limits.maxDepth}`)
  }
  let state: unknown
  try {
    state = JSON.parse(utf8Text(raw))
  } catch (err) {
    if (err instanceof ProtocolError) throw err
    throw new ProtocolError('BAD_AWARENESS_JSON', `awareness state of client ${clientID} is not JSON`)
  }
  // What is relayed is the state re-encoded, which can be longer than what was sent
  // (`1e20` comes back as 21 digits): that is the size that counts.
  const bytes = raw.length <= 2 ? raw.length : utf8Length(JSON.stringify(state))
  if (bytes > limits.maxStateBytes) {
    throw new ProtocolError('AWARENESS_STATE_TOO_LARGE', `awareness state of client ${clientID} is ${bytes} bytes re-encoded, over the limit of ${limits.maxStateBytes}`)
  }
  return { clientID, clock, state, size: varUintLength(clientID) + varUintLength(clock) + varUintLength(bytes) + bytes }
}

/**
 * Decodes the payload of an awareness message, validating every state as JSON within
 * `limits`, so that y-protocols (which would throw halfway through applying, or overflow
 * the stack re-encoding a deep state later) only ever sees well-formed, bounded updates.
 */
export function decodeAwarenessEntries(update: Uint8Array, limits: AwarenessLimits = NO_AWARENESS_LIMITS): ReceivedAwarenessEntry[] {
  return Array.from(readAwarenessUpdate(update), (ref) => parseAwarenessState(update, ref, limits))
}

/** Like decodeAwarenessEntries, without the sizes. */
export function decodeAwarenessUpdate(update: Uint8Array, limits: AwarenessLimits = NO_AWARENESS_LIMITS): AwarenessEntry[] {
  return decodeAwarenessEntries(update, limits).map(({ clientID, clock, state }) => ({ clientID, clock, state }))
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
