/**
 * The admin HTTP API behind `coedit <verb> --server URL --token TOKEN`. Off unless the
 * server was started with `--admin-token`; every request needs `Authorization: Bearer
 * TOKEN` (compared in constant time). Changes go through the live room, so connected
 * clients see imports, reverts and restores at once.
 *
 *   GET  /admin/rooms                                   rooms (JSON)
 *   GET  /admin/rooms/ROOM/export?format=text|json|update[&name=text][&at=VERSION|TIME]
 *   POST /admin/rooms/ROOM/import?format=update|text|json[&name=text]   body: the file
 *   GET  /admin/rooms/ROOM/history[?bucket=MS&after=SEQ&limit=N]  versions, a page of activity per bucket (JSON)
 *   POST /admin/rooms/ROOM/revert?to=VERSION|TIME       (JSON)
 *   GET  /admin/rooms/ROOM/diff?from=A[&to=B][&format=text|json][&name=text]   a unified diff (or JSON)
 *   DELETE /admin/rooms/ROOM[?tombstone=1]              deletes the room (JSON; see rooms-api.ts)
 *   GET  /admin/backup                                  the backup file (streamed)
 *   POST /admin/restore[?force=1]                       body: a backup file (JSON)
 *
 * ROOM is percent-encoded. Errors are JSON `{ error: { code, message } }`.
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import * as Y from 'yjs'
import { refuse, type BearerGuard } from './bearer.js'
import { CoeditError } from '../errors.js'
import { EXPORT_FORMATS, IMPORT_FORMATS, type ExportFormat, type ImportFormat } from '../operator/doc-ops.js'
import { mergeUpdates } from '../room/yjs-log.js'
import { verifyBackup } from '../operator/backup-format.js'
import { DIFF_FORMATS, type DiffFormat } from '../operator/diff.js'
import { DEFAULT_ACTIVITY_BUCKET, DEFAULT_ACTIVITY_LIMIT, MAX_ACTIVITY_LIMIT } from '../operator/history-log.js'
import type { HistoryKeeper } from '../operator/history.js'
import { sendJson, type Route } from './http.js'
import { MAX_EMPTY_BODY, checkDeclaredLength, limitedBody, readBody, sendApiError } from './api-errors.js'
import { Operations, type RoomAccess } from '../operator/operations.js'
import { checkRoomName, decodeRoomPath } from '../room/room-name.js'
import { computeRevertInWorker } from '../operator/revert-thread.js'
import type { Containment } from '../base/containment.js'
import type { Store } from '../persistence/store.js'
import type { RoomRegistry } from '../room/registry.js'
import type { Rooms } from '../embedding/rooms-api.js'

export interface AdminOptions {
  token: string
  /** Shared with /metrics and /status.json: a guesser of one token is a guesser of all. */
  tokens: BearerGuard
  store: Store
  registry: RoomRegistry
  history: HistoryKeeper
  /** What DELETE /admin/rooms/ROOM runs: the same delete as `server.rooms.delete`. */
  rooms: Rooms
  /** Largest import body accepted (bytes). */
  maxImportSize: number
  /** Room names as the WebSocket path checks them (--max-room-name-length, --room-name-pattern). */
  maxRoomNameLength?: number
  roomNamePattern?: RegExp
  /** Where the revert worker and the backup report what they caught. */
  containment?: Containment
  /** Largest backup accepted by /admin/restore (bytes). */
  maxRestoreSize: number
  /** The clock times are read against (tests inject one). */
  now?: () => number
}

/** Reads through the server's live rooms; a room loaded only for this unloads after the grace period. */
export function liveAccess(registry: RoomRegistry, store: Store, history: HistoryKeeper): RoomAccess {
  return {
    live: true,
    async current(room) {
      const loaded = registry.loaded(room)
      // A room may hold only structs pending beyond a clock gap: it exists all the same.
      if (loaded) return loaded.lastApplied === 0 && loaded.doc.store.clients.size === 0 && !loaded.doc.store.pendingStructs ? undefined : { state: Y.encodeStateAsUpdate(loaded.doc), seq: loaded.lastApplied, generation: loaded.generation }
      const stored = await store.load(room)
      return stored.updates.length === 0 ? undefined : { state: mergeUpdates(stored.updates), seq: stored.lastSeq, generation: stored.generation ?? 0 }
    },
    async apply(room, update, meta) {
      const live = await registry.get(room)
      await live.applyAdminUpdate(update, meta?.user === undefined ? undefined : { id: meta.user })
      // The registry unloads a room when its last connection leaves; one nobody joined never had one.
      registry.release(live)
      return live.lastApplied
    },
    async recordVersion(room, state, seq, options) {
      await history.record(room, state, seq, options)
    },
    exclusive: (room, run) => history.reverts.run(room, run),
  }
}

/** `?name=N`: a whole number from `min` to `max` (absent: `fallback`), digits only. */
function wholeParam(url: URL, name: string, fallback: number, max: number, min = 0): number {
  const raw = url.searchParams.get(name)
  if (raw === null || raw === '') return fallback
  const n = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN
  if (!(n >= min && n <= max)) throw new CoeditError('BAD_REQUEST', `${name} must be a whole number from ${min} to ${max}`)
  return n
}

/** `?name=1` (or `true`) and `?name=0` (or `false`, or absent). */
function flag(value: string | null, what: string): boolean {
  if (value === null || value === '' || value === '0' || value === 'false') return false
  if (value === '1' || value === 'true') return true
  throw new CoeditError('BAD_REQUEST', `${what} must be 1 or 0`)
}

function choice<T extends string>(value: string | null, allowed: readonly T[], fallback: T, what: string): T {
  if (value === null || value === '') return fallback
  if (!(allowed as readonly string[]).includes(value)) throw new CoeditError('BAD_REQUEST', `${what} must be one of ${allowed.join(', ')}`)
  return value as T
}

const CONTENT_TYPE: Record<ExportFormat, string> = {
  text: 'text/plain; charset=utf-8',
  json: 'application/json; charset=utf-8',
  update: 'application/octet-stream',
}

export function adminRoutes(options: AdminOptions): Route {
  const ops = new Operations(
    options.store, liveAccess(options.registry, options.store, options.history),
    (current, old, room) => computeRevertInWorker(current, old, options.containment, room), options.containment, options.now,
  )
  const handle = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const auth = options.tokens.check(req, options.token)
    if (!auth.ok) {
      refuse(res, auth, 'coedit admin')
      if (auth.status === 429) throw new CoeditError('TOO_MANY_ATTEMPTS', `too many wrong admin tokens from this address: try again in ${auth.retryAfterSeconds} s`)
      throw new CoeditError('UNAUTHORIZED', 'missing or wrong admin token')
    }
    const method = req.method ?? 'GET'
    const path = url.pathname
    const takesBody = method === 'POST' && (path === '/admin/restore' || /\/import$/.test(path))
    if (!takesBody) checkDeclaredLength(req, MAX_EMPTY_BODY, 'no body expected')
    if (path === '/admin/rooms' && method === 'GET') {
      sendJson(res, 200, { rooms: await ops.rooms() })
      return
    }
    if (path === '/admin/backup' && method === 'GET') {
      const chunks = ops.backup((rooms) => {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Cache-Control': 'no-store', 'X-Coedit-Rooms': String(rooms) })
      })
      // The first chunk takes the snapshot (and writes the head); errors before it are JSON errors.
      const first = await chunks.next()
      res.write(first.value as Uint8Array)
      await pipeline(chunks, res)
      return
    }
    if (path === '/admin/restore' && method === 'POST') {
      const force = url.searchParams.get('force') === '1'
      if (!force && (await ops.rooms()).length > 0) {
        throw new CoeditError('NOT_EMPTY', 'the server already has rooms: restore merges into them only with --force')
      }
      // Checked in full before anything changes: the body goes to a temporary file first.
      const dir = await mkdtemp(join(tmpdir(), 'coedit-restore-'))
      try {
        const file = join(dir, 'backup')
        await pipeline(limitedBody(req, options.maxRestoreSize, '--max-restore-size'), createWriteStream(file))
        await verifyBackup(createReadStream(file))
        const result = await ops.restore(() => createReadStream(file))
        sendJson(res, 200, result)
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
      return
    }
    const m = /^\/admin\/rooms\/([^/]+)(?:\/(export|import|history|revert|diff))?$/.exec(path)
    if (!m) throw new CoeditError('NOT_FOUND', `no admin endpoint ${method} ${path}`)
    // The same decoding and check as the WebSocket path: no name is writable here that a client could not open.
    const checked = checkRoomName(decodeRoomPath(m[1]!), options.maxRoomNameLength, options.roomNamePattern)
    if (!checked.ok) throw new CoeditError('BAD_ROOM_NAME', checked.error)
    const room = checked.room
    const action = m[2]
    if (action === undefined) {
      if (method !== 'DELETE') throw new CoeditError('BAD_REQUEST', `/admin/rooms/ROOM takes DELETE (the room's data: /admin/rooms/ROOM/export)`)
      const tombstone = flag(url.searchParams.get('tombstone'), 'tombstone')
      const deleted = await options.rooms.delete(room, { tombstone })
      if (!deleted.existed) throw new CoeditError('ROOM_NOT_FOUND', `there is no room "${room}"`)
      sendJson(res, 200, { room, deleted: true, tombstone: deleted.tombstone, connections: deleted.connections })
      return
    }
    const expected = action === 'import' || action === 'revert' ? 'POST' : 'GET'
    if (method !== expected) throw new CoeditError('BAD_REQUEST', `${action} takes ${expected}`)
    const textName = url.searchParams.get('name') || undefined
    switch (action) {
      case 'export': {
        const format = choice<ExportFormat>(url.searchParams.get('format'), EXPORT_FORMATS, 'text', 'format')
        const body = await ops.export(room, format, textName, url.searchParams.get('at') || undefined)
        res.writeHead(200, { 'Content-Type': CONTENT_TYPE[format], 'Content-Length': body.length, 'Cache-Control': 'no-store' })
        res.end(body)
        return
      }
      case 'import': {
        const format = choice<ImportFormat>(url.searchParams.get('format'), IMPORT_FORMATS, 'update', 'format')
        const body = await readBody(req, options.maxImportSize)
        sendJson(res, 200, await ops.import(room, body, format, textName))
        return
      }
      case 'history': {
        const bucket = Number(url.searchParams.get('bucket') || DEFAULT_ACTIVITY_BUCKET)
        if (!Number.isInteger(bucket) || bucket < 1000) throw new CoeditError('BAD_REQUEST', 'bucket must be a whole number of ms, at least 1000')
        // A page of the log at a time (the whole window can be millions of updates): `next` says where the next one starts.
        const after = wholeParam(url, 'after', 0, Number.MAX_SAFE_INTEGER)
        const limit = wholeParam(url, 'limit', DEFAULT_ACTIVITY_LIMIT, MAX_ACTIVITY_LIMIT, 1)
        sendJson(res, 200, { room, versions: await ops.history(room), ...(await ops.activity(room, bucket, { after, limit })) })
        return
      }
      case 'diff': {
        const from = url.searchParams.get('from')
        if (!from) throw new CoeditError('BAD_REQUEST', 'diff needs ?from=VERSION|TIME')
        const format = choice<DiffFormat>(url.searchParams.get('format'), DIFF_FORMATS, 'text', 'format')
        const body = await ops.diff(room, from, url.searchParams.get('to') || undefined, format, textName)
        res.writeHead(200, { 'Content-Type': format === 'json' ? CONTENT_TYPE.json : 'text/x-diff; charset=utf-8', 'Cache-Control': 'no-store' })
        res.end(body)
        return
      }
      case 'revert': {
        const to = url.searchParams.get('to')
        if (!to) throw new CoeditError('BAD_REQUEST', 'revert needs ?to=VERSION|TIME')
        sendJson(res, 200, await ops.revert(room, to))
        return
      }
    }
  }
  return async (req, res, url) => {
    if (url.pathname !== '/admin' && !url.pathname.startsWith('/admin/')) return false
    try {
      await handle(req, res, url)
    } catch (err) {
      sendApiError(res, err)
    }
    return true
  }
}
