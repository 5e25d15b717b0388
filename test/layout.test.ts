/**
 * The import graph keeps its layers (README "Architecture"): dependency-cruiser runs the rules
 * of .dependency-cruiser.cjs over server/, scripts/ and web/src/, as `npm run lint:deps` does,
 * and any violation fails the test with the list. A second cruise, over a two-file tree with the
 * back-edge this layering removed (persistence/ importing room/), shows the rules can fail.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cruise, type ICruiseResult, type IViolation } from 'dependency-cruiser'
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options'
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CONFIG = join(ROOT, '.dependency-cruiser.cjs')

/** The violations of a cruise of `paths` (relative to `baseDir`) under the repository's rules. */
async function violations(baseDir: string, paths: string[]): Promise<{ result: ICruiseResult; violations: IViolation[] }> {
  const options = await extractDepcruiseOptions(CONFIG)
  const tsConfig = extractTSConfig(join(ROOT, 'tsconfig.json'))
  const { output } = await cruise(paths, { ...options, baseDir, validate: true }, {}, { tsConfig })
  // outputType is left at its default, so the output is the result object, not text.
  const result = output as ICruiseResult
  return { result, violations: result.summary.violations }
}

/** One line per violation: the rule, then the import (or the cycle) that breaks it. */
function lines(list: readonly IViolation[]): string[] {
  return list.map((v) => {
    const path = v.cycle ? [v.from, ...v.cycle.map((c) => c.name)] : v.from === v.to ? [v.from] : [v.from, v.to]
    return `${v.rule.name}: ${path.join(' → ')}`
  })
}

test('server/, scripts/ and web/src/ break none of .dependency-cruiser.cjs\'s rules', async () => {
  const { result, violations: found } = await violations(ROOT, ['server', 'scripts', 'web/src'])
  // The rules and why: .dependency-cruiser.cjs, README "Architecture", server/*/README.md.
  assert.deepEqual(lines(found), [])
  // Not a vacuous pass: every source of server/ was cruised, with its imports resolved.
  const cruised = new Set(result.modules.map((m) => m.source))
  for (const folder of readdirSync(join(ROOT, 'server'), { withFileTypes: true })) {
    const dir = folder.isDirectory() ? `server/${folder.name}` : 'server'
    const files = folder.isDirectory() ? readdirSync(join(ROOT, dir)) : [folder.name]
    for (const file of files.filter((f) => f.endsWith('.ts'))) assert.ok(cruised.has(`${dir}/${file}`), `${dir}/${file} was cruised`)
  }
  const room = result.modules.find((m) => m.source === 'server/room/room.ts')
  assert.ok(room?.dependencies.some((d) => d.resolved === 'server/persistence/store.ts'), 'room.ts → persistence/store.ts resolved')
})

test('the rules catch a back-edge between folders and a cycle', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coedit-layout-'))
  try {
    mkdirSync(join(dir, 'server', 'room'), { recursive: true })
    mkdirSync(join(dir, 'server', 'persistence'), { recursive: true })
    writeFileSync(join(dir, 'server', 'room', 'room.ts'), "import { store } from '../persistence/store.js'\nexport const room = store\n")
    writeFileSync(join(dir, 'server', 'persistence', 'store.ts'), "import type { room } from '../room/room.js'\nexport const store = 1\nexport type R = typeof room\n")
    const { violations: found } = await violations(dir, ['server'])
    const names = new Set(found.map((v) => v.rule.name))
    assert.ok(names.has('layer-persistence'), `persistence/ → room/ is refused:\n${lines(found).join('\n')}`)
    assert.ok(names.has('no-circular'), `room ↔ persistence is a cycle:\n${lines(found).join('\n')}`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
