/**
 * Room globs of access tokens, matched in time linear in the name.
 *
 * `*` matches any run of characters except `/`, `**` any run including `/`; everything
 * else is literal (compared as UTF-16 code units, as the earlier regex did). A regex
 * compiled from a glob backtracks: `*-*-*-*-x` against a 400-character name took 4.1 s
 * of blocked event loop. Here the glob is a small NFA (one state per pattern token) run
 * over the name with a set of live states, so a match costs at most
 * (name length + 1) × (tokens + 1) state visits, whatever the pattern and the name.
 */

const STAR = -1
const GLOBSTAR = -2

/** A compiled glob: literal code units (≥ 0), STAR or GLOBSTAR. */
export type Glob = Int32Array

/** Counts work for tests that check the bound above; costs nothing when absent. */
export interface GlobStats {
  steps: number
}

export function compileGlob(pattern: string): Glob {
  const tokens: number[] = []
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charCodeAt(i)
    if (c !== 0x2a) {
      tokens.push(c)
    } else if (pattern.charCodeAt(i + 1) === 0x2a) {
      // Left to right, `**` before `*`: `***` is `**` then `*`, as the regex split it.
      tokens.push(GLOBSTAR)
      i++
    } else {
      tokens.push(STAR)
    }
  }
  return Int32Array.from(tokens)
}

/**
 * Whether `glob` matches all of `name`. `live[i]` means "tokens before i matched the
 * name so far"; a star token may also match nothing, so a live star state makes the
 * next one live (the closure, one forward pass since stars only skip forward).
 */
export function globMatches(glob: Glob, name: string, stats?: GlobStats): boolean {
  const k = glob.length
  let live = new Uint8Array(k + 1)
  let next = new Uint8Array(k + 1)
  live[0] = 1
  close(glob, live)
  for (let p = 0; p < name.length; p++) {
    const c = name.charCodeAt(p)
    next.fill(0)
    let any = false
    for (let i = 0; i < k; i++) {
      if (live[i] === 0) continue
      const t = glob[i]!
      if (t === GLOBSTAR || (t === STAR && c !== 0x2f)) {
        next[i] = 1
        any = true
      } else if (t === c) {
        next[i + 1] = 1
        any = true
      }
    }
    if (stats) stats.steps += k + 1
    if (!any) return false
    close(glob, next)
    const swap = live
    live = next
    next = swap
  }
  return live[k] === 1
}

function close(glob: Glob, live: Uint8Array): void {
  for (let i = 0; i < glob.length; i++) {
    if (live[i] === 1 && glob[i]! < 0) live[i + 1] = 1
  }
}
