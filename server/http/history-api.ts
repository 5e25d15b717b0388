/**
 * The history API behind the editor's history panel (issue 18). Unlike the admin API it is
 * for the room's own users: every request is authorized for its room by `authorize` (by
 * default the editor's access token, as for its WebSocket; the server is open when tokens
 * are off, as editing is), and restoring needs write access.
 *
 *   GET  /api/rooms/ROOM/history[?limit=N][&cursor=NEXT][&gap=MS]   moments, newest first (JSON)
 *   GET  /api/rooms/ROOM/at?t=VERSION|TIME[&name=text]               the text as it was then (JSON)
 *   POST /api/rooms/ROOM/revert?to=VERSION|TIME                      restore it, as a new change (JSON)
 *
 * ROOM is percent-encoded and checked as the WebSocket path is. A restore goes the admin
 * revert's way (Operations.revert: the state before it recorded as a pinned version, the
 * revert computed in a worker, applied through the live room so every client sees it),
 * one at a time per room. Errors are JSON `{ error: { code, message } }`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { MAX_EMPTY_BODY, checkDeclaredLength, sendApiError } from './api-errors.js'
import { liveAccess } from './admin.js'
import { clientAddress, type AuthResult, type Grant } from '../transport/auth.js'
import { authRequestOf, type Authorizer } from '../transport/authorizer.js'
import { bearerOf } from './bearer.js'
import type { Containment } from '../base/containment.js'
import { MAX_TIME_SPEC_LENGTH } from '../operator/doc-ops.js'
import { DEFAULT_TEXT_NAME } from '../room/protocol.js'
import { textOf } from '../operator/diff.js'
import { CoeditError } from '../errors.js'
import type { HistoryKeeper } from '../operator/history.js'
import { sendJson, type Route } from './http.js'
import { DEFAULT_MOMENT_OPTIONS, MAX_MOMENT_LIMIT, momentsPage, parseCursor, type Moment } from '../operator/moments.js'
import { Operations } from '../operator/operations.js'
import { isHistoryLogStore, isVersionedStore, type Store } from '../persistence/store.js'
import type { RoomRegistry } from '../room/registry.js'
import { computeRevertInWorker } from '../operator/revert-thread.js'
import { checkRoomName, decodeRoomPath } from '../room/room-name.js'

/**
 * Who may do what in `room`: the grant of the request's credentials, or why not (401/403).
 * A parameter, so that whatever authenticates the WebSocket can authorize these too.
 */
export type RequestAuthorizer = (req: IncomingMessage, room: string) => Promise<AuthResult>

/**
 * The editor's access token (`Authorization: Bearer JWT`, never in the URL: proxies log
 * URLs), checked as the WebSocket's is; everyone may everything when tokens are off.
 */
export function bearerAuthorizer(authorizer: Authorizer, trustProxy: boolean): RequestAuthorizer {
  return (req, room) => authorizer.authorize({ room, token: bearerOf(req), request: authRequestOf(req, clientAddress(req, trustProxy)) })
}

export interface HistoryApiOptions {
  authorize: RequestAuthorizer
  store: Store
  registry: RoomRegistry
  history: HistoryKeeper
  /** The WebSocket's origin check: a page of another site may not restore (on an open server, a form post would). */
  originAllowed?: (req: IncomingMessage) => boolean
  maxRoomNameLength?: number
  roomNamePattern?: RegExp
  containment?: Containment
  /** The clock times are read against (tests inject one). */
  now?: () => number
}

const ROUTE = /^\/api\/rooms\/([^/]+)\/(history|at|revert)$/
/** `name` picks a root; nobody names one longer than this. */
const MAX_ROOT_NAME_LENGTH = 256
const MIN_GAP = 100
const MAX_GAP = 3_600_000

/** A moment as the panel gets it: `t` is what to pass back as `?t=` or `?to=`. */
type ListedMoment = Moment & { t: string }

function listed(m: Moment): ListedMoment {
  return { ...m, t: m.kind === 'version' ? String(m.id) : new Date(m.at).toISOString() }
}

function intParam(url: URL, name: string, fallback: number, min: number, max: number): number {
  const raw = url.searchParams.get(name)
  if (raw === null || raw === '') return fallback
  const n = /^\d{1,10}$/.test(raw) ? Number(raw) : NaN
  if (!(n >= min && n <= max)) throw new CoeditError('BAD_REQUEST', `${name} must be a whole number from ${min} to ${max}`)
  return n
}

/** A VERSION|TIME parameter, required, bounded before anything parses it. */
function specParam(url: URL, name: string): string {
  const spec = url.searchParams.get(name)
  if (!spec) throw new CoeditError('BAD_REQUEST', `${name} is required: a version id or a time (ISO 8601, or a time ago like 10m)`)
  if (spec.length > MAX_TIME_SPEC_LENGTH) throw new CoeditError('BAD_TIME', `${name} is longer than ${MAX_TIME_SPEC_LENGTH} characters: not a version or a time`)
  return spec
}

export function historyRoutes(options: HistoryApiOptions): Route {
  const now = options.now ?? Date.now
  const ops = new Operations(
    options.store, liveAccess(options.registry, options.store, options.history),
    (current, old, room) => computeRevertInWorker(current, old, options.containment, room), options.containment, now,
  )
  /** The room's newest stored seq: the loaded room knows it; otherwise the store. */
  const lastSeqOf = async (room: string): Promise<number> => {
    const loaded = options.registry.rooms.find((r) => r.name === room && !r.isDestroyed)
    return loaded ? loaded.lastApplied : (await options.store.load(room)).lastSeq
  }

  const listing = async (room: string, url: URL, grant: Grant): Promise<unknown> => {
    const store = options.store
    if (!isVersionedStore(store)) throw new CoeditError('HISTORY_UNAVAILABLE', 'this server\'s store keeps no history')
    const cursorText = url.searchParams.get('cursor')
    const page = await momentsPage(
      isHistoryLogStore(store) ? (range) => store.readLog(room, range) : undefined,
      cursorText ? 0 : await lastSeqOf(room),
      await store.listVersions(room),
      cursorText ? parseCursor(cursorText) : undefined,
      {
        ...DEFAULT_MOMENT_OPTIONS,
        limit: intParam(url, 'limit', DEFAULT_MOMENT_OPTIONS.limit, 1, MAX_MOMENT_LIMIT),
        gap: intParam(url, 'gap', DEFAULT_MOMENT_OPTIONS.gap, MIN_GAP, MAX_GAP),
      },
    )
    return {
      room,
      now: now(),
      canRestore: grant.access === 'write',
      ...(page.exactSince === undefined ? {} : { exactSince: page.exactSince }),
      moments: page.moments.map(listed),
      ...(page.next === undefined ? {} : { next: page.next }),
    }
  }

  const textAt = async (room: string, url: URL): Promise<unknown> => {
    const t = specParam(url, 't')
    const name = url.searchParams.get('name') || DEFAULT_TEXT_NAME
    if (name.length > MAX_ROOT_NAME_LENGTH) throw new CoeditError('BAD_REQUEST', `name is longer than ${MAX_ROOT_NAME_LENGTH} characters`)
    const found = await ops.stateAt(room, t)
    return {
      room, t, at: found.version.at, exact: found.exact,
      ...(found.exact ? {} : { version: found.version.id }),
      text: textOf(found.state, name),
    }
  }

  const handle = async (req: IncomingMessage, res: ServerResponse, encodedRoom: string, action: string, url: URL): Promise<void> => {
    if (options.originAllowed && !options.originAllowed(req)) throw new CoeditError('ORIGIN_FORBIDDEN', 'origin not allowed')
    checkDeclaredLength(req, MAX_EMPTY_BODY, 'no body expected')
    const checked = checkRoomName(decodeRoomPath(encodedRoom), options.maxRoomNameLength, options.roomNamePattern)
    if (!checked.ok) throw new CoeditError('BAD_ROOM_NAME', checked.error)
    const room = checked.room
    const method = req.method ?? 'GET'
    const expected = action === 'revert' ? 'POST' : 'GET'
    if (method !== expected) throw new CoeditError('BAD_REQUEST', `${action} takes ${expected}`)
    const auth = await options.authorize(req, room)
    if (!auth.ok) {
      if (auth.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="coedit"')
      sendJson(res, auth.status, { error: { code: auth.code, message: auth.reason } })
      return
    }
    switch (action) {
      case 'history':
        sendJson(res, 200, await listing(room, url, auth.grant))
        return
      case 'at':
        sendJson(res, 200, await textAt(room, url))
        return
      case 'revert': {
        if (auth.grant.access !== 'write') throw new CoeditError('READ_ONLY', 'this token is read-only: restoring needs write access')
        const to = specParam(url, 'to')
        const by = auth.grant.user === undefined ? undefined : { user: auth.grant.user.id }
        // Queued with the admin API's reverts of the room (liveAccess: history.reverts).
        sendJson(res, 200, await ops.revert(room, to, now(), by))
        return
      }
    }
  }

  return async (req, res, url) => {
    const m = ROUTE.exec(url.pathname)
    if (!m) return false
    try {
      await handle(req, res, m[1]!, m[2]!, url)
    } catch (err) {
      sendApiError(res, err)
    }
    return true
  }
}
