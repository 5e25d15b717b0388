/**
 * Key layout shared by the key-value backends. Room names are percent-encoded, so
 * a name can never contain the ':' separator, never escape its own key range, and
 * never be read as a path.
 *
 *   m:<room>          JSON metadata { updatedAt }
 *   s:<room>          compacted state: varuint upTo, then the merged update
 *   u:<room>:<seq>    one update; seq is 16 hex digits so keys sort numerically
 *   x:<room>          the tombstone a delete left (server/persistence/tombstone.ts); nothing else of the room
 */
export const escapeRoom = (room: string): string => encodeURIComponent(room)
export const unescapeRoom = (escaped: string): string => decodeURIComponent(escaped)

export const metaKey = (room: string): string => `m:${escapeRoom(room)}`
export const stateKey = (room: string): string => `s:${escapeRoom(room)}`
export const tombstoneKey = (room: string): string => `x:${escapeRoom(room)}`
export const updatePrefix = (room: string): string => `u:${escapeRoom(room)}:`
export const updateKey = (room: string, seq: number): string =>
  updatePrefix(room) + seq.toString(16).padStart(16, '0')
export const seqOfUpdateKey = (key: string): number => parseInt(key.slice(key.lastIndexOf(':') + 1), 16)
/** Upper bound of a prefix range: ';' is the character after ':'. */
export const prefixEnd = (prefix: string): string => prefix.slice(0, -1) + ';'

export function encodeState(upTo: number, state: Uint8Array): Uint8Array {
  const header: number[] = []
  let n = upTo
  while (n >= 0x80) {
    header.push((n % 0x80) | 0x80)
    n = Math.floor(n / 0x80)
  }
  header.push(n)
  const out = new Uint8Array(header.length + state.length)
  out.set(header, 0)
  out.set(state, header.length)
  return out
}

export function decodeState(value: Uint8Array): { upTo: number; state: Uint8Array } {
  let upTo = 0
  let mult = 1
  let pos = 0
  for (;;) {
    if (pos >= value.length) throw new Error('corrupt compacted state: truncated header')
    const byte = value[pos++]!
    upTo += (byte & 0x7f) * mult
    if (byte < 0x80) break
    mult *= 128
  }
  return { upTo, state: value.subarray(pos) }
}
