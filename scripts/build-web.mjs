#!/usr/bin/env node
/**
 * Builds the browser editor: web/src/main.ts and web/src/style.css bundled by esbuild into
 * dist/web/assets/app.{js,css}, and web/index.html copied to dist/web/index.html with a
 * content hash on the asset URLs (so a rebuilt editor is never mixed with a cached one).
 * Everything is served by coedit itself; nothing comes from a CDN.
 *
 * No source maps unless asked (`--sourcemap` or COEDIT_SOURCEMAP=1, for development): a
 * served map hands out the unminified source and its paths to anyone.
 */
import { build } from 'esbuild'
import { createHash } from 'node:crypto'
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const out = join(root, 'dist', 'web')
const assets = join(out, 'assets')

const sourcemap = process.argv.includes('--sourcemap') || process.env.COEDIT_SOURCEMAP === '1'
const started = performance.now()
// Built next to the final place, then swapped in, so a running server never serves half a build.
const staging = join(root, 'dist', `web.tmp-${process.pid}`)
await rm(staging, { recursive: true, force: true })
await mkdir(join(staging, 'assets'), { recursive: true })

const result = await build({
  absWorkingDir: root,
  entryPoints: { app: 'web/src/main.ts', 'app-style': 'web/src/style.css' },
  outdir: join(staging, 'assets'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022', 'chrome100', 'firefox100', 'safari15'],
  minify: true,
  sourcemap: sourcemap ? 'linked' : false,
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
  write: false,
})
const hash = createHash('sha256')
for (const file of result.outputFiles) {
  // esbuild names the CSS entry app-style.css; the page wants app.css.
  const name = file.path.split(/[\\/]/).pop().replace(/^app-style\.css/, 'app.css')
  let contents = file.contents
  if (name === 'app.css') contents = Buffer.from(file.text.replace(/app-style\.css\.map/g, 'app.css.map'))
  hash.update(contents)
  await writeFile(join(staging, 'assets', name), contents)
}
const version = hash.digest('hex').slice(0, 12)
const html = (await readFile(join(root, 'web', 'index.html'), 'utf8')).replaceAll('__VERSION__', version)
await writeFile(join(staging, 'index.html'), html)

await rm(out, { recursive: true, force: true })
await rename(staging, out)
const bytes = result.outputFiles.filter((f) => !f.path.endsWith('.map')).reduce((n, f) => n + f.contents.length, 0)
console.log(`built dist/web (${Math.round(bytes / 1024)} KiB, ${Math.round(performance.now() - started)} ms)`)
