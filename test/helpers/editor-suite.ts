/**
 * The fixture the web editor's browser tests share (browser-editing, browser-presence,
 * browser-saving, browser-access, browser-big): one headless Chromium and one coedit on port 0
 * per file, over a LevelDB store whose appends can be held back, plus the page helpers those
 * tests use. Split by behaviour, the files run side by side under `--test-concurrency`.
 *
 * Needs Debian's `chromium` (/usr/bin/chromium). In CI a missing browser fails the run;
 * elsewhere these tests skip with a line saying how to enable them.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test as nodeTest, type TestContext } from 'node:test'
import * as Y from 'yjs'
import type { Browser, Page } from 'playwright-core'
import { startServer, type CoeditServer, type Store } from '../../server/index.js'
import { LevelStore } from '../../server/persistence/leveldb.js'
import { PACKAGE_ROOT } from '../../server/http/paths.js'
import {
  SKIP_MESSAGE, browserAvailable, editorValue, ensureWebBuild, launchBrowser, openEditor, waitForConnected, type EditorPage,
} from './browser.js'
import { tempDir, waitFor } from './index.js'

export const ARTIFACTS = join(PACKAGE_ROOT, 'test-artifacts')

export interface HoldControl {
  /** Appends that reached the store while held. */
  heldAppends: number
  hold(): void
  release(): void
}

/** A store whose appends can be held back, to see what the page claims while the server has not stored an edit. */
export function holdableStore(inner: Store): { store: Store; control: HoldControl } {
  let gate: Promise<void> | undefined
  let open: (() => void) | undefined
  const control: HoldControl = {
    heldAppends: 0,
    hold(): void {
      gate = new Promise((resolve) => { open = resolve })
      control.heldAppends = 0
    },
    release(): void {
      open?.()
      gate = undefined
    },
  }
  const append = async (room: string, updates: readonly Uint8Array[]): Promise<number> => {
    if (gate) {
      control.heldAppends++
      await gate
    }
    return inner.append(room, updates)
  }
  // A proxy keeps every other capability of the real store (history, backup) as it is.
  const store = new Proxy(inner, {
    get(target, prop) {
      if (prop === 'append') return append
      const value: unknown = Reflect.get(target, prop, target)
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
  })
  return { store, control }
}

export async function storedText(store: Store, room: string): Promise<string> {
  const stored = await store.load(room)
  const doc = new Y.Doc()
  for (const update of stored.updates) Y.applyUpdate(doc, update)
  const text = doc.getText('text').toString()
  doc.destroy()
  return text
}

/** Polls until `get` yields a value (`undefined` = not yet); a wrapper so '' and 0 count as values. */
export async function until<T>(get: () => Promise<T | undefined>, message: string, timeout = 20_000): Promise<T> {
  const found = await waitFor(async () => {
    const value = await get()
    return value === undefined ? false : { value }
  }, { timeout, interval: 25, message })
  return (found as { value: T }).value
}

export const waitForValue = (page: Page, check: (value: string) => boolean, message: string, timeout = 20_000): Promise<string> =>
  until(async () => {
    const value = await editorValue(page)
    return check(value) ? value : undefined
  }, message, timeout)

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

export function summary(samples: number[]): { median: number; p95: number; max: number } {
  const sorted = [...samples].sort((a, b) => a - b)
  const round = (n: number): number => Math.round(n * 10) / 10
  return { median: round(percentile(sorted, 50)), p95: round(percentile(sorted, 95)), max: round(sorted[sorted.length - 1]!) }
}

/** Types `text` into the focused text area; for each key, ms from keydown to the frame after its input event. */
export async function timeTyping(page: Page, text: string): Promise<number[]> {
  await page.evaluate(() => {
    const g = globalThis as unknown as {
      keyMs: number[]; addEventListener(t: string, f: () => void, c?: boolean): void
      requestAnimationFrame(f: () => void): void; performance: { now(): number }
      document: { querySelector(s: string): { addEventListener(t: string, f: () => void): void } }
    }
    g.keyMs = []
    let down = 0
    g.addEventListener('keydown', () => { down = g.performance.now() }, true)
    // Registered after the editor's own listener: runs once the edit is applied and sent.
    g.document.querySelector('#editor').addEventListener('input', () => g.requestAnimationFrame(() => g.keyMs.push(g.performance.now() - down)))
  })
  await page.keyboard.type(text)
  return until(async () => {
    const ms = await page.evaluate(() => (globalThis as unknown as { keyMs: number[] }).keyMs)
    return ms.length === text.length ? ms : undefined
  }, 'every keystroke timed', 10_000)
}

/** What a file's tests get: set in the suite's `before`, so read it inside a test only. */
export interface EditorFixture {
  readonly browser: Browser
  readonly server: CoeditServer
  /** The real store under the holdable one: what the server has stored. */
  readonly inner: LevelStore
  readonly control: HoldControl
  /** A room name unique in this file's run (every run has a fresh data directory). */
  room(name: string): string
  /** Opens the editor on `r` as `name` and waits for it to connect (the browser's close closes what a test leaves open). */
  open(r: string, name: string, options?: Parameters<typeof openEditor>[2]): Promise<EditorPage>
}

/**
 * Each test has its own hang guard, far above what it takes on a loaded machine (35 s): a
 * budget for the whole suite would fail a healthy run on a busy one.
 */
export const editorTest = (name: string, fn: (t: TestContext) => Promise<void>): void => { nodeTest(name, { timeout: 300_000 }, fn) }

/** Declares `title`'s tests around one browser and one server (or one skip line without Chromium outside CI). */
export function editorSuite(title: string, body: (fx: EditorFixture) => void): void {
  if (!browserAvailable() && !process.env.CI) {
    nodeTest(title, { skip: SKIP_MESSAGE }, () => {})
    return
  }
  let browser: Browser | undefined
  let server: CoeditServer | undefined
  let inner: LevelStore | undefined
  let control: HoldControl | undefined
  let removeDir: (() => Promise<void>) | undefined
  let roomCounter = 0
  const ready = <T>(value: T | undefined): T => {
    assert.ok(value !== undefined, 'the editor fixture is read inside a test, after its before hook')
    return value
  }
  const fx: EditorFixture = {
    get browser() { return ready(browser) },
    get server() { return ready(server) },
    get inner() { return ready(inner) },
    get control() { return ready(control) },
    room: (name) => `${name}-${++roomCounter}`,
    async open(r, name, options = {}) {
      const p = await openEditor(ready(browser), `${ready(server).httpUrl}/r/${encodeURIComponent(r)}`, { name, ...options })
      await waitForConnected(p.page)
      return p
    },
  }
  describe(title, () => {
    before(async () => {
      assert.ok(browserAvailable(), `CI requires the browser tests: ${SKIP_MESSAGE}`)
      ensureWebBuild()
      const dir = await tempDir('coedit-browser-')
      removeDir = dir.remove
      inner = await LevelStore.open(dir.path, { sync: false })
      const holdable = holdableStore(inner)
      control = holdable.control
      server = await startServer({ port: 0, dataDir: dir.path, storage: holdable.store })
      browser = await launchBrowser()
    })

    after(async () => {
      control?.release()
      await browser?.close()
      await server?.close()
      await inner?.close()
      await removeDir?.()
    })

    body(fx)
  })
}
