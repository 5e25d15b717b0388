/**
 * The document API: rooms read and written over HTTP by backend services, on the server's
 * own port, under the same tokens as WebSocket clients.
 *
 *   GET  /api/rooms/ROOM?format=update|json|text[&stateVector=BASE64][&name=text]
 *   POST /api/rooms/ROOM/update   body: a Yjs update (application/octet-stream)
 *   POST /api/rooms/ROOM/text     body: {"name": "text", "text": "..."} (application/json)
 *
 * ROOM is percent-encoded (a `/` in a name is %2F) and checked as the WebSocket path checks
 * it. Writes take the path of a client's update (server/embedding/documents.ts) and are answered once
 * stored. Every request counts against its address's --max-messages-per-second and a body
 * against --max-bytes-per-second; a body is bounded by --max-message-size. Errors are JSON
 * `{ error: { code, message } }`, as the admin API's.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import * as Y from 'yjs'
import type { Logger } from 'pino'
import { CoeditError, type ErrorCode } from '../errors.js'
import { sendJson, type Route } from './http.js'
import { ApiRefusal, ERROR_STATUS, checkDeclaredLength, readBody, sendApiError } from './api-errors.js'
import { clientAddress, originAllowed, tokenOf, type Access, type AuthResult, type OriginPolicy } from '../transport/auth.js'
import { exportDoc, rootKindOf } from '../operator/doc-ops.js'
import { DEFAULT_TEXT_NAME } from '../room/protocol.js'
import { docFromUpdates } from '../room/yjs-log.js'
import { jsonNestingDepth } from '../room/json-depth.js'
import { AddressRates, NewRoomLimiter } from '../transport/limits.js'
import { decodeRoomPath } from '../room/room-name.js'
import { spliceInto, textSplices } from '../operator/text-splices.js'
import type { DocumentUser, Documents, RoomGuard } from '../embedding/documents.js'
import type { Room } from '../room/room.js'

export type ApiAuthorization =
  | { ok: true; access: Access; user?: DocumentUser }
  | Extract<AuthResult, { ok: false }>

/**
 * Who may do what in `room`: the one place the API asks (the JWT check, or what replaces
 * it). `token` is the `token` query parameter or the Bearer token, if any.
 */
export type ApiAuthorize = (req: IncomingMessage, room: string, token: string | undefined) => Promise<ApiAuthorization>

export interface DocumentApiOptions {
  documents: Documents
  authorize: ApiAuthorize
  /** Browser origins allowed besides the server's own, as for WebSockets. */
  origins: OriginPolicy
  trustProxy: boolean
  /** Largest body (--max-message-size). */
  maxBodySize: number
  maxMessagesPerSecond: number
  maxBytesPerSecond: number
  maxNewRoomsPerMinute: number
  loopbackExempt: boolean
  log: Logger
}

const FORMATS = ['update', 'json', 'text'] as const
type Format = (typeof FORMATS)[number]

/** A GET takes no body: a declared one past this is refused (413). */
const MAX_EMPTY_BODY = 64 * 1024
/** Longest root type name accepted (`name`). */
const MAX_ROOT_NAME_LENGTH = 1024
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

const STATUS: Readonly<Partial<Record<ErrorCode, number>>> = {
  BAD_REQUEST: 400,
  BAD_ROOM_NAME: 400,
  BAD_UPDATE: 400,
  BAD_STATE_VECTOR: 400,
  BAD_JSON: 400,
  IMPLAUSIBLE_CLOCK: 400,
  TOKEN_MISSING: 401,
  TOKEN_INVALID: 401,
  TOKEN_EXPIRED: 401,
  ROOM_FORBIDDEN: 403,
  READ_ONLY: 403,
  ORIGIN_FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  NOT_TEXT: 409,
  NOT_PLAIN_TEXT: 409,
  TOO_LARGE: 413,
  DOCUMENT_TOO_LARGE: 413,
  BAD_CONTENT_TYPE: 415,
  TOO_DEEP: 422,
  MESSAGE_RATE: 429,
  BYTE_RATE: 429,
  TOO_MANY_NEW_ROOMS: 429,
  TOO_MANY_ROOMS: 503,
  ROOM_UNAVAILABLE: 503,
  SHUTTING_DOWN: 503,
  STORE_FAILED: 503,
}

/** Seconds a refused client should wait, by code. */
const RETRY_AFTER: Readonly<Record<string, number>> = { MESSAGE_RATE: 1, BYTE_RATE: 1, TOO_MANY_NEW_ROOMS: 60, TOO_MANY_ROOMS: 5, ROOM_UNAVAILABLE: 5, STORE_FAILED: 5 }

const PATH = /^\/api\/rooms\/([^/]+)(?:\/(update|text))?$/

export function documentApiRoutes(options: DocumentApiOptions): Route {
  const rates = new AddressRates(options.maxMessagesPerSecond, options.maxBytesPerSecond, options.loopbackExempt)
  const newRooms = new NewRoomLimiter(options.maxNewRoomsPerMinute, options.loopbackExempt)
  /** Rooms with nothing stored that a request was let into: later requests do not create them (as transport.ts). */
  const created = new WeakSet<Room>()
  const guardFor = (ip: string): RoomGuard => (room) => {
    if (created.has(room) || room.lastApplied > 0 || room.doc.store.clients.size > 0) return
    if (!newRooms.admit(ip)) throw new CoeditError('TOO_MANY_NEW_ROOMS', 'too many new rooms from this address, try again in a minute (--max-new-rooms-per-minute)')
    created.add(room)
  }

  const handle = async (req: IncomingMessage, res: ServerResponse, url: URL, ip: string): Promise<void> => {
    if (!originAllowed(req, options.origins, options.trustProxy)) throw new CoeditError('ORIGIN_FORBIDDEN', 'origin not allowed (--allowed-origins)')
    const rate = rates.admitRequest(ip)
    if (!rate.ok) throw new CoeditError(rate.code, 'too many requests from this address (--max-messages-per-second)')
    const m = PATH.exec(url.pathname)
    if (!m) throw new CoeditError('NOT_FOUND', `no document API endpoint at ${url.pathname.slice(0, 200)}`)
    const action = m[2] ?? 'read'
    const method = req.method ?? 'GET'
    const expected = action === 'read' ? 'GET' : 'POST'
    if (method !== expected) {
      res.setHeader('Allow', expected)
      throw new CoeditError('METHOD_NOT_ALLOWED', `${url.pathname.slice(0, 200)} takes ${expected}`)
    }
    const room = options.documents.roomName(decodeRoomPath(m[1]!))
    // Before the body is read: a refused request costs no more than its headers.
    const auth = await options.authorize(req, room, tokenOf(req, url))
    if (!auth.ok) {
      if (auth.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="coedit"')
      throw new ApiRefusal(auth.code, auth.reason, auth.status)
    }
    const guard = guardFor(ip)
    if (action === 'read') {
      checkDeclaredLength(req, MAX_EMPTY_BODY, 'no body expected')
      await read(res, url, room, guard)
      return
    }
    if (auth.access !== 'write') throw new CoeditError('READ_ONLY', 'this token grants read access only')
    const type = mediaType(req)
    const wanted = action === 'update' ? 'application/octet-stream' : 'application/json'
    if (type !== wanted) throw new CoeditError('BAD_CONTENT_TYPE', `the body must be ${wanted}, not ${type ? type.slice(0, 100) : 'untyped'}`)
    const body = await readBody(req, options.maxBodySize)
    const bytes = rates.admitBytes(ip, body.length)
    if (!bytes.ok) throw new CoeditError(bytes.code, 'too many bytes from this address (--max-bytes-per-second)')
    const changed = action === 'update'
      ? await options.documents.applyUpdate(room, body, auth.user, guard)
      : await writeText(room, parseTextBody(body), auth.user, guard)
    sendJson(res, 200, { room, changed })
  }

  const read = async (res: ServerResponse, url: URL, room: string, guard: RoomGuard): Promise<void> => {
    const format = formatOf(url.searchParams.get('format'))
    const svParam = url.searchParams.get('stateVector')
    const name = rootName(url.searchParams.get('name'))
    if (svParam !== null && format !== 'update') throw new CoeditError('BAD_REQUEST', 'stateVector goes with format=update')
    const sv = svParam === null ? undefined : parseStateVector(svParam)
    if (format === 'update') {
      const update = await options.documents.read(room, (live) => (sv ? Y.encodeStateAsUpdate(live.doc, sv) : live.encodeState()), guard)
      send(res, 'application/octet-stream', update)
      return
    }
    // json and text read root types by kind, which must not define them on the room's own document.
    const state = await options.documents.read(room, (live) => live.encodeState(), guard)
    const doc = docFromUpdates([state])
    try {
      if (format === 'json') {
        send(res, 'application/json; charset=utf-8', exportDoc(doc, 'json'))
        return
      }
      const kind = rootKindOf(doc, name)
      if (kind !== undefined && kind !== 'text') throw notText(name, kind)
      send(res, 'text/plain; charset=utf-8', exportDoc(doc, 'text', name))
    } finally {
      doc.destroy()
    }
  }

  const writeText = (room: string, body: { name: string; text: string }, user: DocumentUser | undefined, guard: RoomGuard): Promise<boolean> =>
    options.documents.transactAs(room, (doc) => {
      const kind = rootKindOf(doc, body.name)
      if (kind !== undefined && kind !== 'text') throw notText(body.name, kind)
      const type = doc.getText(body.name)
      const current = type.toString()
      // toString leaves embeds out, Y.Text's indices count them: the two would not line up.
      if (type.length !== current.length) throw new CoeditError('NOT_PLAIN_TEXT', `"${body.name}" holds embedded objects; replace it with a Yjs update instead`)
      spliceInto(type, textSplices(current, body.text))
    }, user, guard)

  return async (req, res, url) => {
    if (url.pathname !== '/api' && !url.pathname.startsWith('/api/')) return false
    const ip = clientAddress(req, options.trustProxy)
    try {
      await handle(req, res, url, ip)
    } catch (err) {
      const code = err instanceof CoeditError ? err.code : 'INTERNAL'
      const status = err instanceof ApiRefusal ? err.status : (err instanceof CoeditError ? STATUS[err.code] ?? ERROR_STATUS[err.code] : undefined) ?? 500
      // Never the URL: it may carry a token.
      if (status === 500) options.log.error({ event: 'api_failed', method: req.method, ip, err: String(err) }, 'document API request failed')
      else options.log.info({ event: 'api_refused', method: req.method, status, code, ip }, 'document API request refused')
      const retryAfter = RETRY_AFTER[code]
      if (retryAfter !== undefined) res.setHeader('Retry-After', String(retryAfter))
      sendApiError(res, err, STATUS)
    }
    return true
  }
}

function send(res: ServerResponse, type: string, body: Uint8Array): void {
  res.writeHead(200, { 'Content-Type': type, 'Content-Length': body.length, 'Cache-Control': 'no-store' })
  res.end(body)
}

function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
}

function formatOf(value: string | null): Format {
  if (value === null || value === '') return 'update'
  if (!(FORMATS as readonly string[]).includes(value)) throw new CoeditError('BAD_REQUEST', `format must be one of ${FORMATS.join(', ')}`)
  return value as Format
}

function rootName(value: unknown): string {
  if (value === null || value === undefined) return DEFAULT_TEXT_NAME
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_ROOT_NAME_LENGTH || LONE_SURROGATE.test(value)) {
    throw new CoeditError('BAD_REQUEST', `name must be a non-empty string of at most ${MAX_ROOT_NAME_LENGTH} characters`)
  }
  return value
}

function notText(name: string, kind: string): CoeditError {
  return new CoeditError('NOT_TEXT', `"${name.slice(0, 100)}" is a ${kind}, not a Y.Text`)
}

/**
 * A state vector in base64 or base64url. In a query string an unencoded `+` arrives as a
 * space: it is read back as `+`.
 */
function parseStateVector(text: string): Uint8Array {
  const b64 = text.replace(/ /g, '+')
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(b64) || b64.replace(/=+$/, '').length % 4 === 1) {
    throw new CoeditError('BAD_STATE_VECTOR', 'stateVector must be base64 (or base64url) of Y.encodeStateVector')
  }
  const bytes = new Uint8Array(Buffer.from(b64, b64.includes('-') || b64.includes('_') ? 'base64url' : 'base64'))
  let decoded: Map<number, number>
  try {
    decoded = Y.decodeStateVector(bytes)
  } catch {
    throw new CoeditError('BAD_STATE_VECTOR', 'stateVector is not an encoded Yjs state vector')
  }
  // Re-encoded: trailing bytes past the vector are dropped, not passed on to Yjs.
  return Y.encodeStateVector(decoded)
}

/** `{ "name"?: string, "text": string }`, nothing else. */
function parseTextBody(body: Uint8Array): { name: string; text: string } {
  // A flat object: deeper JSON is refused before it is parsed (see json-depth.ts).
  if (jsonNestingDepth(body, 1) > 1) throw new CoeditError('BAD_JSON', 'the body must be a JSON object {"name": "...", "text": "..."}')
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body))
  } catch (err) {
    throw new CoeditError('BAD_JSON', `the body is not JSON: ${(err as Error).message.slice(0, 200)}`)
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new CoeditError('BAD_JSON', 'the body must be a JSON object {"name": "...", "text": "..."}')
  const fields = value as Record<string, unknown>
  const unknown = Object.keys(fields).filter((k) => k !== 'name' && k !== 'text')
  if (unknown.length > 0) throw new CoeditError('BAD_REQUEST', `unknown field ${JSON.stringify(unknown[0]!.slice(0, 100))}: the body is {"name", "text"}`)
  if (typeof fields.text !== 'string') throw new CoeditError('BAD_REQUEST', 'text must be a string')
  if (LONE_SURROGATE.test(fields.text)) throw new CoeditError('BAD_REQUEST', 'text is not well-formed Unicode (a lone surrogate)')
  return { name: rootName(fields.name), text: fields.text }
}
