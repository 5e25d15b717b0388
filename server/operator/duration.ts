/**
 * Durations, one rule for all of them: serve options, `coedit token --ttl`, history
 * retention tiers and times ago (`--at 2h`).
 */
import { UsageError } from '../errors.js'

/** The units of every duration coedit reads: serve options, `token --ttl`, history retention, times ago. */
const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 }
/** A number and one of DURATION_UNITS; the unit is required. */
const DURATION_PATTERN = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$/i

/** `text` as milliseconds if it is a number with a unit, else undefined (the caller says why). */
export function durationMs(text: string): number | undefined {
  const m = DURATION_PATTERN.exec(text)
  return m ? Math.round(Number(m[1]) * DURATION_UNITS[m[2]!.toLowerCase()]!) : undefined
}

/**
 * `500ms`, `30s`, `2m`, `1h`, `7d`, `1w`. The unit is required, only `0` may go without:
 * a bare number means seconds to a JWT user (`--ttl 3600`) and milliseconds to a Node
 * programmer, and guessing wrong either way fails silently (a token that expires at once,
 * a ping every 8 hours).
 */
export function parseDuration(text: string): number {
  if (/^\s*0+(\.0*)?\s*$/.test(text)) return 0
  const bare = /^\s*(\d+(?:\.\d+)?)\s*$/.exec(text)
  if (bare) throw new UsageError(`"${bare[1]}" has no unit: write ${bare[1]}s for seconds or ${bare[1]}ms for milliseconds (units: ms, s, m, h, d, w)`)
  const ms = durationMs(text)
  if (ms === undefined) throw new UsageError(`"${text}" is not a duration (examples: 500ms, 30s, 2m, 1h, 7d)`)
  return ms
}

/** The largest whole unit: `2h`, `90s`, `250ms` (as --help and the README show defaults). */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`
  if (ms % 60_000 === 0) return `${ms / 60_000}m`
  if (ms % 1000 === 0) return `${ms / 1000}s`
  return `${ms}ms`
}
