/**
 * Keys of the history (versions) and backup additions to the LevelDB layout in keys.ts:
 *
 *   h:<room>:<id>     JSON { at, seq, bytes } of one version (listed without reading states)
 *   v:<room>:<id>     that version's state (a whole Yjs update)
 *   a:<room>          JSON [id, ...]: versions whose state is the room's compacted state
 *                     (s:<room>) byte for byte, stored once there instead of in v: keys
 *
 * ids are 16 hex digits, like update sequence numbers, so they sort numerically.
 */
import { escapeRoom } from './keys.js'

export const versionMetaPrefix = (room: string): string => `h:${escapeRoom(room)}:`
export const versionStatePrefix = (room: string): string => `v:${escapeRoom(room)}:`
const hex = (id: number): string => id.toString(16).padStart(16, '0')
export const versionMetaKey = (room: string, id: number): string => versionMetaPrefix(room) + hex(id)
export const versionStateKey = (room: string, id: number): string => versionStatePrefix(room) + hex(id)
export const aliasKey = (room: string): string => `a:${escapeRoom(room)}`
export const idOfVersionKey = (key: string): number => parseInt(key.slice(key.lastIndexOf(':') + 1), 16)

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export function encodeVersionMeta(meta: { at: number; seq: number; bytes: number; pinned?: boolean }): Uint8Array {
  return encoder.encode(JSON.stringify({ at: meta.at, seq: meta.seq, bytes: meta.bytes, ...(meta.pinned ? { pinned: true } : {}) }))
}

export function decodeVersionMeta(value: Uint8Array): { at: number; seq: number; bytes: number; pinned?: boolean } {
  const parsed = JSON.parse(decoder.decode(value)) as { at?: unknown; seq?: unknown; bytes?: unknown; pinned?: unknown }
  const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0)
  return { at: num(parsed.at), seq: num(parsed.seq), bytes: num(parsed.bytes), ...(parsed.pinned === true ? { pinned: true } : {}) }
}

/** The ids an `a:` key holds (anything else reads as none). */
export function decodeAliases(value: Uint8Array | undefined): number[] {
  if (value === undefined) return []
  try {
    const parsed = JSON.parse(decoder.decode(value)) as unknown
    return Array.isArray(parsed) ? parsed.filter((id): id is number => Number.isInteger(id) && id > 0) : []
  } catch {
    return []
  }
}

export function encodeAliases(ids: readonly number[]): Uint8Array {
  return encoder.encode(JSON.stringify(ids))
}
