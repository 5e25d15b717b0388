/**
 * The web editor in headless Chromium against a real coedit (fixture: test/helpers/editor-suite.ts),
 * what the page says about storage: edits made offline survive a reload and arrive when the
 * connection is back; "Saved" appears only once the server has stored the edit (the fixture's store
 * holds the write back).
 */
import assert from 'node:assert/strict'
import type { WebSocketRoute } from 'playwright-core'
import { assertNoErrors, setCaret, waitForSaved } from './helpers/browser.js'
import { storedText, waitForValue, editorSuite, editorTest } from './helpers/editor-suite.js'
import { waitFor } from './helpers/index.js'

editorSuite('web editor in Chromium: saving', (fx) => {
  editorTest('edits made offline survive a reload and arrive when the connection is back', async () => {
    const r = fx.room('offline')
    const context = await fx.browser.newContext({ viewport: { width: 1000, height: 640 } })
    let offline = false
    const routes = new Set<WebSocketRoute>()
    // Playwright stands between the page and the server: "offline" closes and refuses the socket.
    await context.routeWebSocket(() => true, (ws) => {
      if (offline) {
        ws.close({ code: 1001, reason: 'offline' })
        return
      }
      routes.add(ws)
      ws.connectToServer()
    })
    const a = await fx.open(r, 'Alice', { context })
    const b = await fx.open(r, 'Bob')
    try {
      await setCaret(a.page, 0)
      await a.page.keyboard.type('online.')
      await waitForValue(b.page, (v) => v === 'online.', 'B to see A\'s text')
      await waitForSaved(a.page)

      offline = true
      for (const ws of routes) ws.close({ code: 1001, reason: 'offline' })
      routes.clear()
      await a.page.waitForSelector('#connection[data-state="offline"]', { timeout: 10_000 })
      await setCaret(a.page, 7)
      await a.page.keyboard.type(' offline edit.')
      await a.page.waitForSelector('#save-status[data-state="offline-unsaved"]', { timeout: 20_000 })
      assert.equal(await a.page.textContent('#save-status'), 'Offline — not saved')
      await a.page.evaluate(() => (globalThis as unknown as { coedit: { idbFlushed(): Promise<void> } }).coedit.idbFlushed())

      await a.page.reload()
      await waitForValue(a.page, (v) => v === 'online. offline edit.', 'the offline edit back from IndexedDB after the reload')
      await a.page.waitForSelector('#save-status[data-state="offline-unsaved"]', { timeout: 10_000 })
      await setCaret(b.page, 0)
      await b.page.keyboard.type('B: ')
      // Typing returns once the keys are dispatched, not once the server stored them: wait for
      // the store (it never equals this if A's offline edit got there first).
      await waitFor(async () => (await storedText(fx.inner, r)) === 'B: online.', { message: 'B\'s edit stored, without A\'s offline edit' })

      offline = false
      await waitForValue(b.page, (v) => v === 'B: online. offline edit.', 'A\'s offline edit to reach B', 30_000)
      await waitForValue(a.page, (v) => v === 'B: online. offline edit.', 'B\'s edit to reach A', 30_000)
      await waitForSaved(a.page, 30_000)
      assert.equal(await storedText(fx.inner, r), 'B: online. offline edit.')
      assertNoErrors(a, b)
    } finally {
      await a.close()
      await b.close()
      await context.close()
    }
  })

  editorTest('"Saved" appears only once the server has stored the edit', async (t) => {
    const r = fx.room('saved')
    // A failure while the store is held must not hold the next test's writes.
    t.after(() => fx.control.release())
    await fx.editors(r, ['Alice', 'Bob'], async ([a, b]) => {
      await setCaret(a.page, 0)
      await a.page.keyboard.type('first')
      await waitForSaved(a.page)
      await a.page.evaluate(() => {
        const g = globalThis as unknown as { savedLog: string[]; document: { querySelector(s: string): { dataset: { state?: string } } } }
        g.savedLog = []
        const el = g.document.querySelector('#save-status')
        const Observer = (globalThis as unknown as { MutationObserver: new (cb: () => void) => { observe(n: unknown, o: object): void } }).MutationObserver
        new Observer(() => g.savedLog.push(el.dataset.state ?? '')).observe(el, { attributes: true, childList: true, characterData: true, subtree: true })
      })
      fx.control.hold()
      await a.page.keyboard.type(' second')
      await waitFor(() => fx.control.heldAppends > 0, { timeout: 10_000, message: 'the server to start storing the edit' })
      assert.equal(await a.page.getAttribute('#save-status', 'data-state'), 'saving')
      assert.equal(await a.page.textContent('#save-status'), 'Saving…')
      // Round trips through the server after the held write: the page keeps saying "Saving…".
      for (let i = 0; i < 5; i++) {
        await a.page.fill('#name', `Alice ${i}`)
        await b.page.waitForSelector(`#people .person-name:text-is("Alice ${i}")`, { timeout: 10_000 })
        assert.equal(await a.page.getAttribute('#save-status', 'data-state'), 'saving')
      }
      assert.equal(await storedText(fx.inner, r), 'first')
      fx.control.release()
      await waitForSaved(a.page)
      assert.equal(await storedText(fx.inner, r), 'first second')
      const log = await a.page.evaluate(() => (globalThis as unknown as { savedLog: string[] }).savedLog)
      assert.equal(log.indexOf('saved'), log.length - 1, `"Saved" only at the end: ${log.join(', ')}`)
      await waitForValue(b.page, (v) => v === 'first second', 'B to get the edit once stored')
    })
  })
})
