/**
 * Reading other servers' data for `coedit migrate`: each source yields its documents as
 * (room, Yjs state) pairs, with the room named so that the client URL that reached the
 * document before reaches it on coedit too.
 *
 * - `y-leveldb`: a y-websocket-server (`@y/websocket-server` with YPERSISTENCE) data
 *   directory, read with y-leveldb itself. That server names a room by the raw URL path,
 *   still percent-encoded (`/team%2Fnotes` is stored as `team%2Fnotes`); coedit decodes
 *   the path, so the name is decoded the way coedit decodes a path (parseRoomPath).
 * - `hocuspocus-sqlite`: the file of `@hocuspocus/extension-sqlite` (table `documents`,
 *   columns `name`, `data`), read with sql.js (SQLite compiled to WebAssembly: nothing to
 *   build at install). Hocuspocus names documents as the provider does, and so does coedit.
 * - `files`: a folder of Yjs update files, one per room, named after the room
 *   percent-encoded (a `/` cannot be in a file name), with an optional `.bin`, `.yjs` or
 *   `.update` extension.
 *
 * y-leveldb and sql.js are loaded only here, when a migration runs.
 */
import { readFile, readdir, stat } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import * as Y from 'yjs'
import { CoeditError } from '../errors.js'
import { parseRoomPath } from '../room/room-name.js'

export const MIGRATE_SOURCES = ['y-leveldb', 'hocuspocus-sqlite', 'files'] as const
export type MigrateSource = (typeof MIGRATE_SOURCES)[number]

/** One document of the source: its coedit room name, or why it cannot have one. */
export type SourceDocument =
  | { ok: true; source: string; room: string; update: Uint8Array }
  | { ok: false; source: string; error: string }

export interface SourceReader {
  /** How many documents there are (for a progress bar). */
  readonly count: number
  documents(): AsyncIterable<SourceDocument>
  close(): Promise<void>
}

export async function openSource(kind: MigrateSource, path: string): Promise<SourceReader> {
  switch (kind) {
    case 'y-leveldb': return openYLeveldb(path)
    case 'hocuspocus-sqlite': return openHocuspocusSqlite(path)
    case 'files': return openFiles(path)
  }
}

/** The coedit room a y-websocket-server room name (a raw URL path) is reached as. */
export function roomOfUrlPath(raw: string): SourceDocument | { ok: true; room: string } {
  const parsed = parseRoomPath(`/${raw}`)
  return parsed.ok ? { ok: true, room: parsed.room } : { ok: false, source: raw, error: parsed.error }
}

async function mustExist(path: string, what: string, directory: boolean): Promise<void> {
  let isDir: boolean
  try {
    isDir = (await stat(path)).isDirectory()
  } catch {
    throw new CoeditError('SOURCE_NOT_FOUND', `${what} ${path} does not exist`)
  }
  if (isDir !== directory) throw new CoeditError('SOURCE_NOT_FOUND', `${path} is not ${directory ? 'a directory' : 'a file'} (${what})`)
}

interface LeveldbPersistence {
  getAllDocNames(): Promise<string[]>
  getYDoc(name: string): Promise<Y.Doc>
  destroy(): Promise<void>
}

async function openYLeveldb(dir: string): Promise<SourceReader> {
  await mustExist(dir, 'the y-leveldb directory', true)
  // y-leveldb's types are not reachable through its package exports; a variable module
  // name keeps tsc from resolving them, and the shape used is declared above.
  const moduleName = 'y-leveldb'
  const { LeveldbPersistence } = await import(moduleName) as { LeveldbPersistence: new (location: string) => LeveldbPersistence }
  let db: LeveldbPersistence
  try {
    db = new LeveldbPersistence(dir)
    const names = await db.getAllDocNames()
    return {
      count: names.length,
      async *documents() {
        for (const name of names) {
          const mapped = roomOfUrlPath(name)
          if (!mapped.ok) {
            yield mapped
            continue
          }
          let update: Uint8Array
          try {
            const doc = await db.getYDoc(name)
            update = Y.encodeStateAsUpdate(doc)
            doc.destroy()
          } catch (err) {
            yield { ok: false, source: name, error: `cannot be read (${(err as Error).message})` }
            continue
          }
          yield { ok: true, source: name, room: mapped.room, update }
        }
      },
      close: () => db.destroy(),
    }
  } catch (err) {
    throw new CoeditError('SOURCE_UNREADABLE', `cannot read ${dir} as a y-leveldb directory (is a y-websocket-server still running on it?): ${(err as Error).message}`, { cause: err })
  }
}

async function openHocuspocusSqlite(file: string): Promise<SourceReader> {
  await mustExist(file, 'the Hocuspocus SQLite file', false)
  const { default: initSqlJs } = await import('sql.js')
  // The WebAssembly binary beside sql.js' own entry point, wherever npm put the package.
  const wasmDir = join(createRequire(import.meta.url).resolve('sql.js'), '..')
  const SQL = await initSqlJs({ locateFile: (name: string) => join(wasmDir, name) })
  let rows: Array<{ name: string; data: Uint8Array }>
  try {
    const db = new SQL.Database(await readFile(file))
    try {
      const result = db.exec('SELECT name, data FROM documents ORDER BY name')
      rows = (result[0]?.values ?? []).map(([name, data]) => ({ name: String(name), data: data instanceof Uint8Array ? data : new Uint8Array(0) }))
    } finally {
      db.close()
    }
  } catch (err) {
    throw new CoeditError('SOURCE_UNREADABLE', `cannot read ${file} as a Hocuspocus SQLite database (table "documents"): ${(err as Error).message}`, { cause: err })
  }
  return {
    count: rows.length,
    async *documents() {
      for (const row of rows) yield checked(row.name, row.name, row.data)
    },
    close: async () => {},
  }
}

const FILE_EXTENSIONS = /\.(bin|yjs|update)$/

async function openFiles(dir: string): Promise<SourceReader> {
  await mustExist(dir, 'the folder of update files', true)
  const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile() && !e.name.startsWith('.')).map((e) => e.name).sort()
  return {
    count: entries.length,
    async *documents() {
      for (const file of entries) {
        const base = file.replace(FILE_EXTENSIONS, '')
        let room: string
        try {
          room = decodeURIComponent(base)
        } catch {
          room = base
        }
        yield checked(file, room, await readFile(join(dir, file)))
      }
    },
    close: async () => {},
  }
}

/** A document whose bytes must be a Yjs update and whose name a coedit room name. */
function checked(source: string, name: string, data: Uint8Array): SourceDocument {
  const parsed = parseRoomPath(`/${encodeURIComponent(name)}`)
  if (!parsed.ok) return { ok: false, source, error: parsed.error }
  try {
    // Throws on bytes that are not a Yjs update; the merged state is what gets imported.
    const doc = new Y.Doc()
    Y.applyUpdate(doc, data)
    const update = Y.encodeStateAsUpdate(doc)
    doc.destroy()
    return { ok: true, source, room: parsed.room, update }
  } catch (err) {
    return { ok: false, source, error: `not a Yjs update (${(err as Error).message})` }
  }
}
