/** Where the package's own files are, whether running from source (tsx) or from dist/. */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const pkg = join(dir, 'package.json')
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'coedit') return dir
    const parent = dirname(dir)
    if (parent === dir) throw new Error('coedit package root not found')
    dir = parent
  }
}

export const PACKAGE_ROOT = findPackageRoot()
/** The built editor (npm run build writes it). */
export const WEB_DIST = join(PACKAGE_ROOT, 'dist', 'web')

/** The version in coedit's package.json, for `coedit --version`. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version
}
