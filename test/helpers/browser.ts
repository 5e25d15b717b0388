/**
 * Browser test helpers: Debian's Chromium driven by playwright-core, the web pages (editor,
 * status page) built on demand, and pages that record every console error.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { PACKAGE_ROOT, WEB_DIST } from '../../server/http/paths.js'

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
export const SKIP_MESSAGE = `browser tests skipped: ${CHROMIUM_PATH} not found (apt-get install chromium enables them)`

/** Whether the browser tests can run; in CI a missing browser is a failure, not a skip. */
export function browserAvailable(): boolean {
  return existsSync(CHROMIUM_PATH)
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    timeout: 60_000,
  })
}

function newestMtime(path: string): number {
  const st = statSync(path)
  if (!st.isDirectory()) return st.mtimeMs
  let newest = 0
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)))
  return newest
}

/** What scripts/build-web.mjs writes: the pages and their scripts. */
const BUILT = ['index.html', 'status.html', 'assets/app.js', 'assets/status.js']

/** Whether dist/web holds every page and is newer than every source of it. */
function webBuildFresh(): boolean {
  const index = join(WEB_DIST, 'index.html')
  const script = join(PACKAGE_ROOT, 'scripts', 'build-web.mjs')
  // server/room/room-path.ts is bundled into the editor too (and server/room/protocol.ts: any server change rebuilds).
  const sources = Math.max(newestMtime(join(PACKAGE_ROOT, 'web')), newestMtime(script), newestMtime(join(PACKAGE_ROOT, 'server')))
  try {
    return BUILT.every((f) => existsSync(join(WEB_DIST, f))) && statSync(index).mtimeMs >= sources
  } catch {
    return false // swapped by another file's build between the two looks: it holds the lock
  }
}

/** Whether the process that wrote `lock` (its pid is the file's content) is gone. */
function lockAbandoned(lock: string): boolean {
  let pid: number
  try {
    pid = Number(readFileSync(lock, 'utf8'))
  } catch {
    return false // removed meanwhile, or not written yet: look again
  }
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return false
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

/**
 * Builds dist/web unless it is newer than every source of it: web/, and server/ (the pages
 * import the protocol codec's constants from it). Test files run side by side
 * (`--test-concurrency`), so one file builds while the others wait on a lock file, then find
 * the build fresh; two builds swapping dist/web at once would leave it missing or half there.
 */
export function ensureWebBuild(): void {
  const lock = join(PACKAGE_ROOT, 'dist', '.web-build.lock')
  const pause = new Int32Array(new SharedArrayBuffer(4))
  for (;;) {
    if (webBuildFresh()) return
    mkdirSync(dirname(lock), { recursive: true })
    let fd: number
    try {
      fd = openSync(lock, 'wx')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      // Another test file is building: wait for its lock to go (or for its process to be gone).
      if (lockAbandoned(lock)) rmSync(lock, { force: true })
      else Atomics.wait(pause, 0, 0, 100)
      continue
    }
    try {
      writeSync(fd, String(process.pid))
      closeSync(fd)
      if (webBuildFresh()) return
      const result = spawnSync(process.execPath, [join(PACKAGE_ROOT, 'scripts', 'build-web.mjs')], { cwd: PACKAGE_ROOT, encoding: 'utf8' })
      if (result.status !== 0) throw new Error(`building the editor failed:\n${result.stdout}${result.stderr}`)
      return
    } finally {
      rmSync(lock, { force: true })
    }
  }
}

/** The part of HTMLTextAreaElement the tests touch (the Node tsconfig has no DOM lib). */
export interface TextArea {
  value: string
  selectionStart: number
  selectionEnd: number
  scrollTop: number
  focus(): void
  setSelectionRange(start: number, end: number): void
}

export interface EditorPage {
  context: BrowserContext
  page: Page
  /** Console errors and uncaught exceptions seen so far. */
  errors: string[]
  close(): Promise<void>
}

export interface OpenOptions {
  viewport?: { width: number; height: number }
  /** Set the user's name in localStorage before the page loads. */
  name?: string
  /** Reuse a context (to reload or open a second tab with the same storage). */
  context?: BrowserContext
}

/** Opens the editor at `url` in a fresh context and waits until its text area is connected. */
export async function openEditor(browser: Browser, url: string, options: OpenOptions = {}): Promise<EditorPage> {
  const context = options.context ?? await browser.newContext({ viewport: options.viewport ?? { width: 1000, height: 640 } })
  if (options.name !== undefined) {
    await context.addInitScript((name: string) => {
      // Runs in the page; this tsconfig has no DOM lib.
      const storage = (globalThis as unknown as { localStorage: { getItem(k: string): string | null; setItem(k: string, v: string): void } }).localStorage
      if (!storage.getItem('coedit:name')) storage.setItem('coedit:name', name)
    }, options.name)
  }
  const page = await context.newPage()
  const errors: string[] = []
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console: ${msg.text()}`)
  })
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`))
  await page.goto(url)
  await page.waitForSelector('#editor')
  return {
    context,
    page,
    errors,
    close: async () => {
      if (!options.context) await context.close()
      else await page.close()
    },
  }
}

export function assertNoErrors(...pages: EditorPage[]): void {
  for (const p of pages) assert.deepEqual(p.errors, [], 'console errors or uncaught exceptions in the page')
}

export async function waitForConnected(page: Page, timeout = 20_000): Promise<void> {
  await page.waitForSelector('#connection[data-state="connected"]', { timeout })
}

export async function waitForSaved(page: Page, timeout = 20_000): Promise<void> {
  await page.waitForSelector('#save-status[data-state="saved"]', { timeout })
}

export const editorValue = (page: Page): Promise<string> => page.$eval('#editor', (el) => (el as unknown as TextArea).value)

export const selection = (page: Page): Promise<[number, number]> =>
  page.$eval('#editor', (el) => [(el as unknown as TextArea).selectionStart, (el as unknown as TextArea).selectionEnd] as [number, number])

/** Focuses the text area and puts the caret (or selection) at the given indices. */
export async function setCaret(page: Page, start: number, end = start): Promise<void> {
  await page.$eval('#editor', (el, [s, e]) => {
    const ta = el as unknown as TextArea
    ta.focus()
    ta.setSelectionRange(s!, e!)
  }, [start, end])
}

/** The id of the element that has focus ('' for none, or one without an id). */
export const activeId = (page: Page): Promise<string> =>
  page.evaluate(() => (globalThis as unknown as { document: { activeElement: { id: string } | null } }).document.activeElement?.id ?? '')

/** Presses Tab until the element `id` has focus (at most `max` times), as someone with only a keyboard would. */
export async function tabTo(page: Page, id: string, max = 15): Promise<void> {
  for (let i = 0; i < max; i++) {
    if (await activeId(page) === id) return
    await page.keyboard.press('Tab')
  }
  assert.equal(await activeId(page), id, `#${id} is reachable with Tab`)
}
