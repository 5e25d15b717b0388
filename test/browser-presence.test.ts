/**
 * The web editor in headless Chromium against a real coedit (fixture: test/helpers/editor-suite.ts),
 * presence: names and remote carets, a closed tab leaving at once; two users' windows side by side
 * (screenshots in test-artifacts/), with the keystroke latency between them printed, not asserted.
 */
import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { editorValue, setCaret } from './helpers/browser.js'
import { ARTIFACTS, sideBySide, summary, waitForValue, editorSuite, editorTest } from './helpers/editor-suite.js'
import { waitFor } from './helpers/index.js'

editorSuite('web editor in Chromium: presence', (fx) => {
  editorTest('each user sees the other\'s name and caret; a closed tab leaves at once', async () => {
    const r = fx.room('presence')
    await fx.editors(r, ['Alice', 'Bob'], async ([a, b]) => {
      await setCaret(a.page, 0)
      await a.page.keyboard.type('Hello')
      await setCaret(b.page, 0)
      await a.page.waitForSelector('#people .person-name:text-is("Bob")', { timeout: 10_000 })
      await b.page.waitForSelector('#people .person-name:text-is("Alice")', { timeout: 10_000 })
      await a.page.waitForSelector('.remote-caret[data-name="Bob"]', { timeout: 10_000 })
      await b.page.waitForSelector('.remote-caret[data-name="Alice"]', { timeout: 10_000 })
      // Renaming is live and remembered.
      await a.page.fill('#name', 'Alice L.')
      await b.page.waitForSelector('#people .person-name:text-is("Alice L.")', { timeout: 10_000 })
      assert.equal(await a.page.evaluate(() => (globalThis as unknown as { localStorage: { getItem(k: string): string | null } }).localStorage.getItem('coedit:name')), 'Alice L.')
      await b.close()
      await a.page.waitForSelector('#people .person-name:text-is("Bob")', { state: 'detached', timeout: 20_000 })
      assert.equal(await a.page.locator('.remote-caret').count(), 0)
    })
  })

  editorTest('two users editing: screenshot, and keystroke latency between the windows', async (t) => {
    const r = 'team-notes'
    const viewport = { width: 960, height: 540 }
    await fx.editors(r, ['Ada', 'Grace'], async ([a, b]) => {
      await setCaret(a.page, 0)
      await a.page.keyboard.type('Meeting notes\n\n- Ship the web editor\n- Measure keystroke latency\n- ')
      await waitForValue(b.page, (v) => v.endsWith('latency\n- '), 'B to see A\'s notes')
      await setCaret(b.page, (await editorValue(b.page)).length)
      await b.page.keyboard.type('Write the README section')

      // Latency: A types one character at a time; B notes when each shows up (next frame after it lands).
      await b.page.evaluate(() => {
        const g = globalThis as unknown as {
          arrivals: number[]; coedit: { ytext: { observe(f: () => void): void; length: number } }
          requestAnimationFrame(f: () => void): void; performance: { timeOrigin: number; now(): number }
        }
        g.arrivals = []
        g.coedit.ytext.observe(() => g.requestAnimationFrame(() => g.arrivals.push(g.performance.timeOrigin + g.performance.now())))
      })
      await a.page.evaluate(() => {
        const g = globalThis as unknown as { keydowns: number[]; addEventListener(t: string, f: () => void, c: boolean): void; performance: { timeOrigin: number; now(): number } }
        g.keydowns = []
        g.addEventListener('keydown', () => g.keydowns.push(g.performance.timeOrigin + g.performance.now()), true)
      })
      await setCaret(a.page, 'Meeting notes'.length)
      const probe = ' (draft)'
      for (let i = 0; i < probe.length * 3; i++) {
        const ch = probe[i % probe.length]!
        const before = await b.page.evaluate(() => (globalThis as unknown as { arrivals: number[] }).arrivals.length)
        await a.page.keyboard.type(ch)
        await waitFor(() => b.page.evaluate((n) => (globalThis as unknown as { arrivals: number[] }).arrivals.length > n, before), { timeout: 10_000, message: 'the keystroke to reach B' })
      }
      const keydowns = await a.page.evaluate(() => (globalThis as unknown as { keydowns: number[] }).keydowns)
      const arrivals = await b.page.evaluate(() => (globalThis as unknown as { arrivals: number[] }).arrivals)
      const latencies = keydowns.map((k, i) => arrivals[i]! - k)
      const s = summary(latencies)
      const line = `keystroke → other window: median ${s.median} ms, p95 ${s.p95} ms, max ${s.max} ms (n=${latencies.length})`
      console.log(line)
      t.diagnostic(line)
      // Every keystroke arrived (how fast is printed above: speeds are the bench's business).
      assert.equal(latencies.length, probe.length * 3)
      // Remove the extra probe copies, leaving "Meeting notes (draft)".
      await setCaret(a.page, 'Meeting notes (draft)'.length, 'Meeting notes (draft)'.length + probe.length * 2)
      await a.page.keyboard.press('Backspace')
      await waitForValue(b.page, (v) => v.startsWith('Meeting notes (draft)\n'), 'the cleanup to reach B')

      // Something selected in B, the caret in A at the end of its line.
      const v = await editorValue(b.page)
      const word = v.indexOf('web editor')
      await setCaret(b.page, word, word + 'web editor'.length)
      await setCaret(a.page, v.indexOf('latency') + 'latency'.length)
      const caret = a.page.locator('.remote-caret[data-name="Grace"]')
      await caret.waitFor({ timeout: 10_000 })
      await a.page.waitForSelector('.remote-selection', { timeout: 10_000 })
      await b.page.waitForSelector('.remote-caret[data-name="Ada"]', { timeout: 10_000 })
      // The overlay re-renders its carets on every remote change: a box read while one is
      // being replaced is null, so read until both are laid out.
      const [caretBox, areaBox] = (await waitFor(async () => {
        const boxes = [await caret.boundingBox(), await a.page.locator('#editor').boundingBox()] as const
        return boxes[0] && boxes[1] ? [boxes[0], boxes[1]] as const : undefined
      }, { timeout: 10_000, message: 'caret and text area are laid out' }))!
      assert.ok(caretBox.x > areaBox.x && caretBox.x < areaBox.x + areaBox.width && caretBox.y > areaBox.y && caretBox.y < areaBox.y + areaBox.height,
        'the remote caret is drawn inside the text area')
      assert.ok(await a.page.locator('.remote-caret-label:text-is("Grace")').isVisible())

      await mkdir(ARTIFACTS, { recursive: true })
      const [pngA, pngB] = await Promise.all([a.page.screenshot(), b.page.screenshot()])
      assert.ok(pngA.length > 10_000 && pngB.length > 10_000, 'the screenshots have content')
      await writeFile(join(ARTIFACTS, 'editor-ada.png'), pngA)
      await writeFile(join(ARTIFACTS, 'editor-grace.png'), pngB)
      // Both windows side by side, as two people would see them.
      const png = await sideBySide(a.context, [[pngA, 'Ada\'s window'], [pngB, 'Grace\'s window']])
      // The README's image, with the history panel in it, is browser-history.test.ts's.
      await writeFile(join(ARTIFACTS, 'editor-two-users.png'), png)
    }, { viewport })
  })
})
