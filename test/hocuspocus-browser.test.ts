/**
 * Hocuspocus clients in a real browser: Tiptap with its Collaboration and
 * CollaborationCaret extensions on a stock HocuspocusProvider co-edits with Tiptap on a
 * stock y-websocket provider, carets both ways; coedit's own editor (a text area on
 * y-websocket) and a Hocuspocus client share a Y.Text and see each other's presence.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import * as Y from 'yjs'
import WebSocket from 'ws'
import { build } from 'esbuild'
import type { Browser, Page } from 'playwright-core'
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'
import { startServer, type CoeditServer } from '../server/index.js'
import { SKIP_MESSAGE, browserAvailable, editorValue, ensureWebBuild, launchBrowser, openEditor, setCaret, waitForConnected } from './helpers/browser.js'
import { waitFor } from './helpers/index.js'

const available = browserAvailable()
if (!available) {
  if (process.env.CI) throw new Error(`CI requires the browser tests: ${SKIP_MESSAGE}`)
  console.log(SKIP_MESSAGE)
}

interface TiptapApp {
  text(): string
  synced(): boolean
  unsynced(): number
  focusEnd(): Promise<void>
}

describe('Hocuspocus clients in Chromium', { skip: !available }, () => {
  let browser: Browser
  let pages: Server
  let pagesUrl = ''
  let server: CoeditServer

  before(async () => {
    const bundle = await build({
      entryPoints: [fileURLToPath(new URL('./fixtures/tiptap/page.ts', import.meta.url))],
      bundle: true, format: 'esm', write: false, platform: 'browser', target: 'es2022', logLevel: 'silent',
    })
    const script = bundle.outputFiles[0]!.contents
    const html = '<!doctype html><meta charset="utf-8"><title>tiptap</title><div id="editor"></div><script type="module" src="/page.js"></script>'
    pages = createServer((req, res) => {
      if (req.url?.startsWith('/page.js')) res.writeHead(200, { 'content-type': 'text/javascript' }).end(script)
      else res.writeHead(200, { 'content-type': 'text/html' }).end(html)
    })
    await new Promise<void>((resolve) => pages.listen(0, '127.0.0.1', resolve))
    pagesUrl = `http://127.0.0.1:${(pages.address() as AddressInfo).port}`
    server = await startServer({ port: 0, allowedOrigins: pagesUrl })
    ensureWebBuild()
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    await server?.close()
    await new Promise((resolve) => pages?.close(resolve))
  })

  async function openTiptap(provider: 'hocuspocus' | 'y-websocket', room: string, name: string): Promise<{ page: Page; errors: string[]; close(): Promise<void> }> {
    const context = await browser.newContext()
    const page = await context.newPage()
    const errors: string[] = []
    page.on('pageerror', (err) => errors.push(err.message))
    const query = new URLSearchParams({ provider, server: server.url, room, name })
    await page.goto(`${pagesUrl}/?${query.toString()}`)
    await page.waitForFunction(() => (globalThis as unknown as { app?: TiptapApp }).app?.synced() === true, undefined, { timeout: 20_000 })
    return { page, errors, close: () => context.close() }
  }

  const text = (page: Page): Promise<string> => page.evaluate(() => (globalThis as unknown as { app: TiptapApp }).app.text())

  test('Tiptap on a HocuspocusProvider and Tiptap on y-websocket co-edit, with carets both ways', async () => {
    const alice = await openTiptap('hocuspocus', 'tiptap-room', 'Alice')
    const bob = await openTiptap('y-websocket', 'tiptap-room', 'Bob')
    try {
      await alice.page.evaluate(() => (globalThis as unknown as { app: TiptapApp }).app.focusEnd())
      await alice.page.keyboard.type('Alice was here. ')
      await waitFor(async () => (await text(bob.page)).includes('Alice was here.'), { timeout: 20_000, message: 'Bob sees Alice' })
      await bob.page.evaluate(() => (globalThis as unknown as { app: TiptapApp }).app.focusEnd())
      await bob.page.keyboard.type('Bob too.')
      await waitFor(async () => (await text(alice.page)) === (await text(bob.page)) && (await text(alice.page)).includes('Bob too.'), { timeout: 20_000, message: 'convergence' })
        .catch(async (err: Error) => {
          // What each side shows tells a lost relay from a lost keystroke.
          throw new Error(`${err.message}; Alice shows ${JSON.stringify(await text(alice.page))}, Bob shows ${JSON.stringify(await text(bob.page))}`)
        })
      await alice.page.waitForSelector('.collaboration-carets__label:has-text("Bob")', { timeout: 20_000 })
      await bob.page.waitForSelector('.collaboration-carets__label:has-text("Alice")', { timeout: 20_000 })
      // The Hocuspocus side's edits are all confirmed stored.
      await alice.page.waitForFunction(() => (globalThis as unknown as { app: TiptapApp }).app.unsynced() === 0, undefined, { timeout: 20_000 })
      assert.deepEqual([...alice.errors, ...bob.errors], [])
    } finally {
      await alice.close()
      await bob.close()
    }
  })

  test('coedit\'s editor and a Hocuspocus client share a Y.Text and see each other\'s presence', async () => {
    const editor = await openEditor(browser, `${server.httpUrl}/r/shared-text`, { name: 'Editor user' })
    const doc = new Y.Doc()
    // ws implements the WebSocket API the provider needs; its types differ from the DOM's.
    const socket = new HocuspocusProviderWebsocket({ url: server.url, WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket })
    const hp = new HocuspocusProvider({ websocketProvider: socket, name: 'shared-text', document: doc })
    hp.attach()
    try {
      await waitForConnected(editor.page)
      await waitFor(() => hp.isSynced, { message: 'hocuspocus synced' })
      hp.setAwarenessField('user', { name: 'Hocus Client', color: '#ef4444' })
      doc.getText('text').insert(0, 'from hocuspocus ')
      await waitFor(async () => (await editorValue(editor.page)) === 'from hocuspocus ', { timeout: 20_000, message: 'the editor shows the Hocuspocus text' })
      await setCaret(editor.page, 16)
      await editor.page.keyboard.type('and the editor')
      await waitFor(() => doc.getText('text').toString() === 'from hocuspocus and the editor', { timeout: 20_000, message: 'the Hocuspocus client gets the editor\'s typing' })
      await editor.page.waitForSelector('.person-name:has-text("Hocus Client")', { timeout: 20_000 })
      await waitFor(() => [...hp.awareness!.getStates().values()].some((s) => (s.user as { name?: string } | undefined)?.name === 'Editor user'), { timeout: 20_000, message: 'the Hocuspocus client sees the editor user' })
      assert.deepEqual(editor.errors, [])
    } finally {
      hp.destroy()
      socket.destroy()
      await editor.close()
    }
  })
})
