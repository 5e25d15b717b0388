/**
 * The fixture the web editor's browser tests share (browser-editing, browser-presence,
 * browser-saving, browser-access, browser-big): one headless Chromium and one coedit on port 0
 * per file, over a LevelDB store whose appends can be held back, plus the page helpers those
 * tests use. Split by behaviour, the files run side by side under `--test-concurrency`.
 * Tests that bring their own servers (browser-history, hooks-browser) take the browser alone
 * (`browserSuite`).
 *
 * Needs Debian's `chromium` (/usr/bin/chromium). In CI a missing browser fails the run;
 * elsewhere these tests skip with a line saying how to enable them.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test as nodeTest, type TestContext } from 'node:test'
import * as Y from 'yjs'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { startServer, type CoeditServer, type Store } from '../../server/index.js'
import { LevelStore } from '../../server/persistence/leveldb.js'
import { PACKAGE_ROOT } from '../../server/http/paths.js'
import {
  SKIP_MESSAGE, assertNoErrors, browserAvailable, editorValue, ensureWebBuild, launchBrowser, openEditor, waitForConnected,
  type EditorPage, type OpenOptions,
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

/** Waits until the editor's text is `expected` (or passes it, a check) and returns the text. */
export const waitForValue = (page: Page, expected: string | ((value: string) => boolean), message: string, timeout = 20_000): Promise<string> =>
  until(async () => {
    const value = await editorValue(page)
    return (typeof expected === 'string' ? value === expected : expected(value)) ? value : undefined
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

/** Screenshots side by side, each captioned, as one PNG: what two people see at once. */
export async function sideBySide(context: BrowserContext, shots: ReadonlyArray<readonly [png: Buffer, caption: string]>): Promise<Buffer> {
  const frame = await context.newPage()
  try {
    await frame.setViewportSize({ width: 1300, height: 400 })
    const img = ([buf, caption]: readonly [Buffer, string]): string =>
      `<figure style="margin:0"><img alt="${caption}" style="width:630px;border:1px solid #d1d5db;display:block" src="data:image/png;base64,${buf.toString('base64')}">` +
      `<figcaption style="font:13px system-ui,sans-serif;color:#4b5563;padding:4px 0">${caption}</figcaption></figure>`
    await frame.setContent(`<body style="margin:0;padding:12px;display:flex;gap:16px;background:#fff">${shots.map(img).join('')}</body>`)
    return await frame.screenshot()
  } finally {
    await frame.close()
  }
}

/** One editor page per name, in order. */
export type EditorsOf<Names extends readonly string[]> = { -readonly [K in keyof Names]: EditorPage }

/** What a file's tests get from `browserSuite`: set in the suite's `before`, so read it inside a test only. */
export interface BrowserFixture {
  readonly browser: Browser
  /** Opens the editor at `url` and waits for it to connect (the browser's close closes what a test leaves open). */
  openAt(url: string, options?: OpenOptions): Promise<EditorPage>
}

/** What a file's tests get from `editorSuite`. */
export interface EditorFixture extends BrowserFixture {
  readonly server: CoeditServer
  /** The real store under the holdable one: what the server has stored. */
  readonly inner: LevelStore
  readonly control: HoldControl
  /** A room name unique in this file's run (every run has a fresh data directory). */
  room(name: string): string
  /** Opens the editor on `r` as `name` and waits for it to connect (the browser's close closes what a test leaves open). */
  open(r: string, name: string, options?: OpenOptions): Promise<EditorPage>
  /**
   * Opens one editor per name on `r`, one after the other, runs `use` with them, then asserts
   * that no page logged an error; the pages are closed whatever happened.
   */
  editors<const Names extends readonly string[]>(r: string, names: Names, use: (pages: EditorsOf<Names>) => Promise<void>, options?: Omit<OpenOptions, 'name'>): Promise<void>
}

/**
 * Each test has its own hang guard, far above what it takes on a loaded machine (35 s): a
 * budget for the whole suite would fail a healthy run on a busy one.
 */
export const editorTest = (name: string, fn: (t: TestContext) => Promise<void>): void => { nodeTest(name, { timeout: 300_000 }, fn) }

const ready = <T>(value: T | undefined): T => {
  assert.ok(value !== undefined, 'the browser fixture is read inside a test, after its before hook')
  return value
}

/**
 * Declares `title`'s tests around one browser (or one skip line without Chromium outside CI).
 * `body` may add its own `before` and `after` hooks: they run after the browser's.
 */
export function browserSuite(title: string, body: (fx: BrowserFixture) => void): void {
  if (!browserAvailable() && !process.env.CI) {
    nodeTest(title, { skip: SKIP_MESSAGE }, () => {})
    return
  }
  let browser: Browser | undefined
  const fx: BrowserFixture = {
    get browser() { return ready(browser) },
    async openAt(url, options = {}) {
      const p = await openEditor(ready(browser), url, options)
      await waitForConnected(p.page)
      return p
    },
  }
  describe(title, () => {
    before(async () => {
      assert.ok(browserAvailable(), `CI requires the browser tests: ${SKIP_MESSAGE}`)
      ensureWebBuild()
      browser = await launchBrowser()
    })

    after(async () => {
      await browser?.close()
    })

    body(fx)
  })
}

/** Declares `title`'s tests around one browser and one server (or one skip line without Chromium outside CI). */
export function editorSuite(title: string, body: (fx: EditorFixture) => void): void {
  browserSuite(title, (browserFx) => {
    let server: CoeditServer | undefined
    let inner: LevelStore | undefined
    let control: HoldControl | undefined
    let removeDir: (() => Promise<void>) | undefined
    let roomCounter = 0
    const open = (r: string, name: string, options: OpenOptions = {}): Promise<EditorPage> =>
      browserFx.openAt(`${ready(server).httpUrl}/r/${encodeURIComponent(r)}`, { name, ...options })
    const fx: EditorFixture = {
      get browser() { return browserFx.browser },
      openAt: browserFx.openAt,
      get server() { return ready(server) },
      get inner() { return ready(inner) },
      get control() { return ready(control) },
      room: (name) => `${name}-${++roomCounter}`,
      open,
      async editors(r, names, use, options = {}) {
        const pages: EditorPage[] = []
        try {
          for (const name of names) pages.push(await open(r, name, options))
          // One page per name, in the names' order: the tuple the body is typed with.
          await use(pages as EditorsOf<typeof names>)
          assertNoErrors(...pages)
        } finally {
          for (const p of pages) await p.close()
        }
      },
    }

    before(async () => {
      const dir = await tempDir('coedit-browser-')
      removeDir = dir.remove
      inner = await LevelStore.open(dir.path, { sync: false })
      const holdable = holdableStore(inner)
      control = holdable.control
      server = await startServer({ port: 0, dataDir: dir.path, storage: holdable.store })
    })

    after(async () => {
      control?.release()
      await server?.close()
      await inner?.close()
      await removeDir?.()
    })

    body(fx)
  })
}
