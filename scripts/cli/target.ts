/**
 * Where a verb acts: a data directory no server holds (`--data DIR`, through the store)
 * or a running server (`--server URL --admin-token TOKEN`, through its admin HTTP API).
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { readdir, rename, rm, stat } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { CoeditError, isErrorCode } from '../../server/errors.js'
import { checkRoomName } from '../../server/room/room-name.js'
import { verifyBackup, type UnreadableRoom } from '../../server/operator/backup-format.js'
import type { ExportFormat, ImportFormat } from '../../server/operator/doc-ops.js'
import { Operations, type ImportResult, type RestoreResult, type RevertResult } from '../../server/operator/operations.js'
import { LevelStore } from '../../server/persistence/leveldb.js'
import type { RoomInfo, VersionInfo } from '../../server/persistence/store.js'
import type { DiffFormat } from '../../server/operator/diff.js'
import { mergeActivity, type ActivityBucket } from '../../server/operator/history-log.js'
import type { Progress } from './progress.js'

export interface BackupResult {
  file: string
  rooms: number
  bytes: number
  /** Rooms that could not be read: named in the file, their data is not in it. */
  unreadable: UnreadableRoom[]
}

/** What `coedit delete` did. */
export interface DeleteOutcome {
  room: string
  tombstone: boolean
  /** Connections the running server closed (undefined offline: there are none). */
  connections: number | undefined
}

export interface Target {
  rooms(): Promise<RoomInfo[]>
  /** Deletes the room for good; ROOM_NOT_FOUND if nothing of it is stored (or loaded). */
  delete(room: string, tombstone: boolean): Promise<DeleteOutcome>
  export(room: string, format: ExportFormat, textName?: string, at?: string): Promise<Uint8Array>
  import(room: string, body: Uint8Array, format: ImportFormat, textName?: string): Promise<ImportResult>
  history(room: string): Promise<VersionInfo[]>
  revert(room: string, to: string): Promise<RevertResult>
  /** Who changed the room how much per `bucket` ms, and from when its history is exact. */
  activity(room: string, bucket: number): Promise<{ exactSince: number | undefined; activity: ActivityBucket[] }>
  diff(room: string, from: string, to: string | undefined, format: DiffFormat, textName?: string): Promise<string>
  /** Writes the backup to `out` (through a temporary file: `out` appears only once it is complete and checked). */
  backup(out: string, bar: Progress): Promise<BackupResult>
  /** Restores a backup file that `verifyBackupFile` accepted. */
  restore(file: string, force: boolean, bar: Progress): Promise<RestoreResult>
  close(): Promise<void>
}

/** Reads a backup file through, checking it; throws BAD_BACKUP. Nothing is changed. */
export async function verifyBackupFile(file: string, bar?: Progress): Promise<{ rooms: number; unreadable: UnreadableRoom[] }> {
  let rooms = 0
  const unreadable: UnreadableRoom[] = []
  await verifyBackup(createReadStream(file), (room) => {
    rooms++
    bar?.tick(room.name)
  }, (room) => {
    unreadable.push(room)
    bar?.tick(room.name)
  }).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new CoeditError('FILE_NOT_FOUND', `no file ${file}`)
    throw err
  })
  return { rooms, unreadable }
}

/** `verifyBar` ticks while the written file is checked (when the download itself cannot count rooms). */
async function writeChecked(out: string, chunks: AsyncIterable<Uint8Array>, bar: Progress, verifyBar?: Progress): Promise<BackupResult> {
  const partial = `${out}.partial-${process.pid}`
  try {
    await pipeline(Readable.from(chunks), createWriteStream(partial, { flags: 'wx' }))
    const { rooms, unreadable } = await verifyBackupFile(partial, verifyBar)
    const { size } = await stat(partial)
    await rename(partial, out)
    return { file: out, rooms, bytes: size, unreadable }
  } catch (err) {
    await rm(partial, { force: true })
    throw err
  } finally {
    bar.stop()
  }
}

// ---- offline ---------------------------------------------------------------------------

async function dirState(dir: string): Promise<'missing' | 'empty' | 'used'> {
  try {
    return (await readdir(dir)).length === 0 ? 'empty' : 'used'
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing'
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') throw new CoeditError('BAD_DATA_DIR', `${dir} is not a directory`)
    throw err
  }
}

async function openStore(dir: string): Promise<LevelStore> {
  try {
    return await LevelStore.open(dir)
  } catch (err) {
    if (err instanceof CoeditError && err.code === 'STORE_LOCKED') {
      throw new CoeditError('STORE_LOCKED', `data directory ${dir} is in use by a running server: use --server URL --admin-token TOKEN`, { cause: err })
    }
    throw err
  }
}

/**
 * A room an offline import may create or change: the server's rule (server/room/room-name.ts)
 * with its defaults, as no server is there to say its --max-room-name-length or
 * --room-name-pattern. Checked before the data directory is opened (or created).
 */
function checkNewName(room: string): void {
  const checked = checkRoomName(room)
  if (!checked.ok) throw new CoeditError('BAD_ROOM_NAME', `${checked.error} (offline, the server's default rules apply; --server URL uses the server's own)`)
}

/**
 * A target on `dir`. The store is opened on first use: for reading verbs a missing
 * directory is an error, not a new empty database.
 */
export function offlineTarget(dir: string): Target {
  let store: LevelStore | undefined
  const open = async (create: boolean): Promise<Operations> => {
    if (!store) {
      if (!create && (await dirState(dir)) === 'missing') {
        throw new CoeditError('NO_DATA_DIR', `there is no data directory ${dir} (give --data DIR, or --server URL to use a running server)`)
      }
      store = await openStore(dir)
    }
    return new Operations(store)
  }
  return {
    rooms: async () => (await open(false)).rooms(),
    async delete(room, tombstone) {
      const { existed } = await (await open(false)).store.delete(room, { tombstone })
      if (!existed) throw new CoeditError('ROOM_NOT_FOUND', `there is no room "${room}"`)
      return { room, tombstone, connections: undefined }
    },
    export: async (room, format, textName, at) => (await open(false)).export(room, format, textName, at),
    import: async (room, body, format, textName) => {
      checkNewName(room)
      return (await open(true)).import(room, body, format, textName)
    },
    history: async (room) => (await open(false)).history(room),
    revert: async (room, to) => (await open(false)).revert(room, to),
    async activity(room, bucket) {
      const ops = await open(false)
      const all: ActivityBucket[] = []
      let page = await ops.activity(room, bucket)
      mergeActivity(all, page.activity)
      while (page.next !== undefined) {
        page = await ops.activity(room, bucket, { after: page.next })
        mergeActivity(all, page.activity)
      }
      return { exactSince: page.exactSince, activity: all }
    },
    diff: async (room, from, to, format, textName) => (await open(false)).diff(room, from, to, format, textName),
    async backup(out, bar) {
      const ops = await open(false)
      return writeChecked(out, ops.backup((n) => bar.start(n), (room) => bar.tick(room)), bar)
    },
    async restore(file, force, bar) {
      const state = await dirState(dir)
      const ops = await open(true)
      if (state === 'used' && !force && (await ops.rooms()).length > 0) {
        throw new CoeditError('NOT_EMPTY', `data directory ${dir} already holds rooms: restore into an empty directory, or give --force to replace the rooms the backup holds`)
      }
      try {
        return await ops.restore(() => createReadStream(file), (header) => bar.start(header.rooms), (room) => bar.tick(room))
      } finally {
        bar.stop()
      }
    },
    async close() {
      await store?.close()
    },
  }
}

// ---- against a running server ------------------------------------------------------------

export function remoteTarget(server: string, token: string): Target {
  let base: URL
  try {
    base = new URL(server.replace(/^ws(s?):/, 'http$1:'))
  } catch {
    throw new CoeditError('BAD_SERVER_URL', `"${server}" is not a URL (example: http://localhost:1234)`)
  }
  const url = (path: string, query: Record<string, string | undefined> = {}): URL => {
    const u = new URL(path, base)
    for (const [k, v] of Object.entries(query)) if (v !== undefined) u.searchParams.set(k, v)
    return u
  }
  const roomPath = (room: string, action?: string): string => `/admin/rooms/${encodeURIComponent(room)}${action === undefined ? '' : `/${action}`}`

  const request = async (u: URL, init: RequestInit = {}): Promise<Response> => {
    let res: Response
    try {
      res = await fetch(u, { ...init, headers: { ...(init.headers as Record<string, string> | undefined), Authorization: `Bearer ${token}` } })
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause
      throw new CoeditError('SERVER_UNREACHABLE', `cannot reach ${base.origin}: ${cause?.code ?? cause?.message ?? (err as Error).message}`)
    }
    if (res.ok) return res
    const text = await res.text()
    let error: { code?: string; message?: string } | undefined
    try {
      error = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error
    } catch {
      error = undefined
    }
    if (res.status === 401) throw new CoeditError('UNAUTHORIZED', `${base.origin} refused the admin token (check --admin-token or COEDIT_TOKEN)`)
    if (!error) {
      throw new CoeditError('NO_ADMIN_API', `${base.origin} has no admin API (HTTP ${res.status}): start the server with --admin-token TOKEN`)
    }
    // A code this CLI does not know (a server of another version, its 500s' INTERNAL) is the server's error.
    throw new CoeditError(isErrorCode(error.code) ? error.code : 'SERVER_ERROR', error.message ?? `HTTP ${res.status}`)
  }
  const json = async <T>(u: URL, init?: RequestInit): Promise<T> => (await (await request(u, init)).json()) as T

  return {
    rooms: async () => (await json<{ rooms: RoomInfo[] }>(url('/admin/rooms'))).rooms,
    async delete(room, tombstone) {
      const done = await json<{ room: string; tombstone: boolean; connections: number }>(url(roomPath(room), { tombstone: tombstone ? '1' : undefined }), { method: 'DELETE' })
      return { room: done.room, tombstone: done.tombstone, connections: done.connections }
    },
    export: async (room, format, name, at) => new Uint8Array(await (await request(url(roomPath(room, 'export'), { format, name, at }))).arrayBuffer()),
    import: (room, body, format, name) => json<ImportResult>(url(roomPath(room, 'import'), { format, name }), {
      method: 'POST', body, headers: { 'Content-Type': 'application/octet-stream' },
    }),
    history: async (room) => (await json<{ versions: VersionInfo[] }>(url(roomPath(room, 'history')))).versions,
    revert: (room, to) => json<RevertResult>(url(roomPath(room, 'revert'), { to }), { method: 'POST' }),
    async activity(room, bucket) {
      // The server answers a page at a time: follow `next` (each page a bounded read of its log).
      const all: ActivityBucket[] = []
      let after: number | undefined
      let exactSince: number | undefined
      for (;;) {
        const body = await json<{ exactSince?: number; activity?: ActivityBucket[]; next?: number }>(url(roomPath(room, 'history'), { bucket: String(bucket), after: after === undefined ? undefined : String(after) }))
        exactSince = body.exactSince
        mergeActivity(all, body.activity ?? [])
        // A server that does not page, or a cursor that does not move on: done.
        if (typeof body.next !== 'number' || (after !== undefined && body.next <= after)) break
        after = body.next
      }
      return { exactSince, activity: all }
    },
    diff: async (room, from, to, format, name) => (await request(url(roomPath(room, 'diff'), { from, to, format, name }))).text(),
    async backup(out, bar) {
      const res = await request(url('/admin/backup'))
      const rooms = Number(res.headers.get('x-coedit-rooms') ?? 0)
      bar.start(rooms)
      const body = res.body
      if (!body) throw new CoeditError('SERVER_ERROR', 'the server sent no backup')
      async function* chunks(): AsyncGenerator<Uint8Array> {
        try {
          for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) yield chunk
        } catch (err) {
          throw new CoeditError('BACKUP_INTERRUPTED', `the backup stream broke off: ${(err as Error).message}`)
        }
      }
      // The bar fills while the downloaded file is checked: counting rooms as bytes arrive would parse it twice.
      return writeChecked(out, chunks(), bar, bar)
    },
    async restore(file, force, bar) {
      bar.start(1)
      try {
        // Streamed: a backup can be larger than memory. `duplex` is what fetch needs for a stream body.
        return await json<RestoreResult>(url('/admin/restore', { force: force ? '1' : undefined }), {
          method: 'POST',
          body: Readable.toWeb(createReadStream(file)) as unknown as RequestInit['body'],
          headers: { 'Content-Type': 'application/octet-stream' },
          duplex: 'half',
        } as RequestInit)
      } finally {
        bar.stop()
      }
    },
    async close() {},
  }
}
