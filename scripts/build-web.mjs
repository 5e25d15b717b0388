#!/usr/bin/env node
/**
 * Builds the browser pages: for each, a TypeScript entry and a stylesheet bundled by esbuild
 * into dist/web/assets/<name>.{js,css}, and its HTML copied into dist/web with a content hash
 * on the asset URLs (so a rebuilt page is never mixed with a cached one). The editor is
 * web/index.html (web/src/main.ts, style.css), the /status page web/status.html
 * (web/src/status-page.ts, status-page.css). Everything is served by coedit itself; nothing
 * comes from a CDN, and nothing is inline (the pages' CSP allows only their own files).
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
const PAGES = [
  { html: 'index.html', name: 'app', script: 'web/src/main.ts', style: 'web/src/style.css' },
  { html: 'status.html', name: 'status', script: 'web/src/status-page.ts', style: 'web/src/status-page.css' },
]
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
  // Entry names are keys, so a page's stylesheet enters as <name>-style (renamed below).
  entryPoints: Object.fromEntries(PAGES.flatMap((p) => [[p.name, p.script], [`${p.name}-style`, p.style]])),
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
  // esbuild names a CSS entry <name>-style.css; the page wants <name>.css.
  const name = file.path.split(/[\\/]/).pop().replace(/^([a-z]+)-style\.css/, '$1.css')
  let contents = file.contents
  if (name.endsWith('.css')) contents = Buffer.from(file.text.replace(/([a-z]+)-style\.css\.map/g, '$1.css.map'))
  hash.update(contents)
  await writeFile(join(staging, 'assets', name), contents)
}
const version = hash.digest('hex').slice(0, 12)
for (const page of PAGES) {
  const html = (await readFile(join(root, 'web', page.html), 'utf8')).replaceAll('__VERSION__', version)
  await writeFile(join(staging, page.html), html)
}

await rm(out, { recursive: true, force: true })
await rename(staging, out)
const bytes = result.outputFiles.filter((f) => !f.path.endsWith('.map')).reduce((n, f) => n + f.contents.length, 0)
console.log(`built dist/web (${Math.round(bytes / 1024)} KiB, ${Math.round(performance.now() - started)} ms)`)
