/**
 * Token room globs: the same answers as the regex they replace, in linear time.
 *
 * The old construction (kept here as the reference) compiled `*` to `[^/]*` and `**` to
 * `.*`; it backtracked, so `*-*-*-*-x` against a 400-character name blocked the event
 * loop for 4.1 s. Equivalence is checked on a seeded random corpus small enough for the
 * regex; the cost bound by counting state visits, not by a clock.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { compileGlob, globMatches, type GlobStats } from '../server/transport/glob.js'
import { roomMatches } from '../server/transport/auth.js'
import { prng, testSeed } from './helpers/index.js'

function regexMatches(pattern: string, room: string): boolean {
  if (!pattern.includes('*')) return pattern === room
  const source = pattern
    .split(/(\*\*|\*)/)
    .map((part) => (part === '**' ? '.*' : part === '*' ? '[^/]*' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('')
  return new RegExp(`^${source}$`, 's').test(room)
}

test('globs answer as the regex did, on a seeded random corpus', (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed} (replay: SEED=${seed})`)
  const random = prng(seed)
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!
  // Few symbols, so that random names often match random patterns; regex specials and a newline too.
  const nameChars = ['a', 'b', '/', '-', '.', '\n', 'é', '\uD83D\uDE00']
  const patternChars = [...nameChars, '*', '*', '**', '(', '\\']
  let matched = 0
  for (let i = 0; i < 20_000; i++) {
    const pattern = Array.from({ length: Math.floor(random() * 8) }, () => pick(patternChars)).join('')
    const filler = (): string => Array.from({ length: Math.floor(random() * 4) }, () => pick(nameChars)).join('')
    // Half the names are the pattern with its stars filled in (often a match), half are random.
    const name = random() < 0.5
      ? pattern.replace(/\*+/g, filler)
      : Array.from({ length: Math.floor(random() * 10) }, () => pick(nameChars)).join('')
    const expected = regexMatches(pattern, name)
    if (expected) matched++
    assert.equal(roomMatches(pattern, name), expected, `pattern ${JSON.stringify(pattern)}, name ${JSON.stringify(name)}`)
  }
  // The corpus is only worth something if both answers are common.
  assert.ok(matched > 1000 && matched < 19_000, `${matched} of 20000 matched`)
})

test('adversarial globs cost at most (name length + 1) x (tokens + 1) state visits', () => {
  const cases: Array<[string, string]> = [
    ['*-*-*-*-x', 'a-'.repeat(200)],
    ['*-*-*-*-*-*-*-*-*-*-*-*-x', '-'.repeat(512)],
    ['**a**a**a**a**a**a**b', 'a'.repeat(512)],
    ['*'.repeat(300) + 'b', 'a'.repeat(512)],
    ['**/'.repeat(100) + 'z', '/'.repeat(512)],
  ]
  for (const [pattern, name] of cases) {
    const glob = compileGlob(pattern)
    const stats: GlobStats = { steps: 0 }
    // Each glob ends in a character the name lacks: the worst case for a backtracking matcher.
    assert.equal(globMatches(glob, name, stats), false, pattern)
    assert.ok(stats.steps <= (name.length + 1) * (glob.length + 1), `${pattern}: ${stats.steps} steps`)
  }
  // Linear in the name: twice the name is about twice the work (an order of magnitude is the margin).
  const glob = compileGlob('*-*-*-*-*-*-*-*-x')
  const work = (n: number): number => {
    const stats: GlobStats = { steps: 0 }
    globMatches(glob, '-'.repeat(n), stats)
    return stats.steps
  }
  const ratio = work(4000) / work(400)
  assert.ok(ratio > 5 && ratio < 20, `10x the name cost ${ratio.toFixed(1)}x the work`)
})
