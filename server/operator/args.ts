/**
 * Command-line flags for `coedit serve` and every other verb, parsed into coedit's own
 * one-line errors (UsageError, exit code 2) with a "did you mean" for a mistyped flag,
 * and `--help` text laid out in aligned columns. node:util's parseArgs is not used: its
 * messages are multi-line, name its own API and cannot suggest anything.
 */

import { UsageError } from '../errors.js'

export interface FlagSpec {
  type: 'string' | 'boolean'
  /** Repeatable: the values are collected in an array. */
  multiple?: boolean
  /** One letter: `-h` for `--help`. */
  short?: string
  /** What the value is, for "needs a value" (`FILE`, `URL`). */
  value?: string
}

export type FlagSpecs = Record<string, FlagSpec>

export interface ParsedFlags {
  values: Record<string, string | boolean | string[] | undefined>
  positionals: string[]
}

/**
 * `--name value`, `--name=value`, `-h`; `--` ends the flags; `-` alone is an argument
 * (stdin or stdout). A string flag's value may start with one dash (`--out -`) but not
 * with two, so `--out --json` is a missing value rather than a file named `--json`.
 */
export function parseFlags(argv: readonly string[], specs: FlagSpecs): ParsedFlags {
  const values: ParsedFlags['values'] = {}
  const positionals: string[] = []
  const shorts = new Map(Object.entries(specs).flatMap(([name, s]) => (s.short ? [[s.short, name] as const] : [])))
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1))
      break
    }
    if (arg === '-' || !arg.startsWith('-')) {
      positionals.push(arg)
      continue
    }
    let name: string
    let inline: string | undefined
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=')
      name = eq === -1 ? arg.slice(2) : arg.slice(2, eq)
      inline = eq === -1 ? undefined : arg.slice(eq + 1)
    } else {
      const long = shorts.get(arg.slice(1))
      if (long === undefined) throw unknownFlag(arg, specs)
      name = long
    }
    // hasOwn: `--constructor` is not a flag just because every object has one.
    const spec = Object.hasOwn(specs, name) ? specs[name]! : undefined
    if (!spec) throw unknownFlag(`--${name}`, specs)
    if (spec.type === 'boolean') {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`)
      values[name] = true
      continue
    }
    let value = inline
    if (value === undefined) {
      const next = argv[i + 1]
      if (next === undefined || next.startsWith('--')) throw new UsageError(`--${name} needs a value${spec.value ? ` (--${name} ${spec.value})` : ''}`)
      value = next
      i++
    }
    if (spec.multiple) ((values[name] ??= []) as string[]).push(value)
    else values[name] = value
  }
  return { values, positionals }
}

function unknownFlag(flag: string, specs: FlagSpecs): UsageError {
  const suggestion = closest(flag.replace(/^-+/, ''), Object.keys(specs))
  return new UsageError(suggestion === undefined
    ? `unknown option ${flag} (--help lists the options)`
    : `unknown option ${flag}: did you mean --${suggestion}?`)
}

/**
 * The candidate `word` most likely meant: within 2 edits, or a third of its length for
 * long words (a typo, a swapped pair), else the only candidate it is a prefix of (`--adm`).
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  // Past this a mistyped word is not a typo, and the distance table stays small.
  if (word.length === 0 || word.length > 64) return undefined
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c)
    if (d < bestDistance) {
      best = c
      bestDistance = d
    }
  }
  if (bestDistance <= Math.min(word.length - 1, Math.max(2, Math.floor(word.length / 3)))) return best
  const prefixed = candidates.filter((c) => c.startsWith(word.toLowerCase()))
  return word.length >= 3 && prefixed.length === 1 ? prefixed[0] : undefined
}

/** Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0]![j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1)
      d[i]![j] = v
    }
  }
  return d[a.length]![b.length]!
}

/** The line width help text is wrapped to. */
const HELP_WIDTH = 100

/** The column help descriptions start at: two spaces past the longest flag of `rows`. */
export function helpColumn(rows: ReadonlyArray<readonly [string, string]>): number {
  return 2 + Math.max(...rows.map(([flag]) => flag.length)) + 2
}

/**
 * Help rows `[flag, description]` as two aligned columns: every description starts at
 * `column` and wraps within HELP_WIDTH; a description's own `\n` starts a new line in its
 * column. Pass one column to every section of a help text so they all line up.
 */
export function helpRows(rows: ReadonlyArray<readonly [string, string]>, column = helpColumn(rows)): string[] {
  const width = Math.max(30, HELP_WIDTH - column)
  return rows.flatMap(([flag, description]) => {
    const lines = description.split('\n').flatMap((part) => wrap(part, width))
    const first = `  ${flag}`
    // A flag too long for the column gets its description on the next line.
    if (first.length + 2 > column) lines.unshift('')
    return lines.map((line, i) => `${(i === 0 ? first : '').padEnd(column)}${line}`.trimEnd())
  })
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else {
      line = line === '' ? word : `${line} ${word}`
    }
  }
  lines.push(line)
  return lines
}
