/**
 * How a URL path spells a room name: `%XX` decoded where it is valid UTF-8 and taken
 * literally elsewhere. Shared by the server (room-name.ts, for WebSocket paths and the admin
 * API) and the browser editor (web/src/main.ts, for `/r/<room>` pages), so that a page and
 * its WebSocket always name the same room. No imports: the editor bundles it.
 */
const PERCENT_RUN = /(?:%[0-9a-fA-F]{2})+/g
// ignoreBOM keeps a leading U+FEFF in the name (for the check to see), instead of dropping it.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * Decodes each `%XX` sequence that spells a valid UTF-8 character; a `%` that does not
 * start one (`100%`, `50%off`, a lone `%FF`) is kept as it is. Never throws.
 */
export function decodeRoomPath(text: string): string {
  return text.replace(PERCENT_RUN, (run) => {
    const bytes = Uint8Array.from({ length: run.length / 3 }, (_, i) => parseInt(run.slice(i * 3 + 1, i * 3 + 3), 16))
    let out = ''
    let i = 0
    while (i < bytes.length) {
      const n = sequenceLength(bytes[i]!)
      const char = n > 0 && i + n <= bytes.length ? decodeUtf8(bytes.subarray(i, i + n)) : undefined
      if (char === undefined) {
        out += run.slice(i * 3, i * 3 + 3)
        i++
      } else {
        out += char
        i += n
      }
    }
    return out
  })
}

/** The length of the UTF-8 sequence a lead byte starts; 0 for a byte that cannot lead one. */
function sequenceLength(lead: number): number {
  if (lead < 0x80) return 1
  if (lead >= 0xc2 && lead <= 0xdf) return 2
  if (lead >= 0xe0 && lead <= 0xef) return 3
  if (lead >= 0xf0 && lead <= 0xf4) return 4
  return 0
}

function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    // fatal: overlong forms, surrogates and bad continuation bytes throw.
    return utf8.decode(bytes)
  } catch {
    return undefined
  }
}
