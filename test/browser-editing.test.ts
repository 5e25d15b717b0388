/**
 * The web editor in headless Chromium against a real coedit (fixture: test/helpers/editor-suite.ts),
 * typing: two users at random positions converge with each other and the server (seeded), carets
 * and selections keep their logical place while the other user edits, remote edits above keep the
 * scroll position, an IME composition syncs once composed, undo takes back only one's own edits,
 * cut and paste sync; and the page and its assets as served.
 */
import assert from 'node:assert/strict'
import { editorValue, selection, setCaret, waitForSaved, type EditorPage, type TextArea } from './helpers/browser.js'
import { storedText, until, waitForValue, editorSuite, editorTest } from './helpers/editor-suite.js'
import { prng, testSeed, waitFor } from './helpers/index.js'

editorSuite('web editor in Chromium: editing', (fx) => {
  editorTest('serves the page, its assets and a 404 page, nothing from elsewhere', async () => {
    const root = await fetch(`${fx.server.httpUrl}/`, { redirect: 'manual' })
    assert.equal(root.status, 302)
    assert.match(root.headers.get('location') ?? '', /^\/r\/[A-Za-z0-9_-]+$/)
    const html = await (await fetch(`${fx.server.httpUrl}/r/some-room`)).text()
    assert.match(html, /<label for="editor"/)
    assert.doesNotMatch(html, /https?:\/\//, 'the page loads nothing from another origin')
    const js = await fetch(`${fx.server.httpUrl}/assets/app.js`)
    assert.equal(js.status, 200)
    assert.match(js.headers.get('content-type') ?? '', /javascript/)
    const missing = await fetch(`${fx.server.httpUrl}/assets/nope.js`)
    assert.equal(missing.status, 404)
    assert.match(await missing.text(), /Not found/)
  })

  editorTest('two users typing at random positions converge, with each other and with the server', async (t) => {
    const seed = testSeed()
    t.diagnostic(`seed ${seed} (replay with SEED=${seed})`)
    const random = prng(seed)
    const r = fx.room('converge')
    // Each user's script is drawn up front so the interleaving is the only thing left to chance.
    // Each op: put the caret (or select a few characters, to type over them), press Backspace, type.
    const script = (): Array<{ at: number; select: number; text: string; backspaces: number }> =>
      Array.from({ length: 20 }, () => ({
        at: random(),
        select: random() < 0.2 ? 1 + Math.floor(random() * 3) : 0,
        text: random() < 0.7 ? 'abcdefghij'.slice(0, 1 + Math.floor(random() * 4)) : '',
        backspaces: random() < 0.4 ? 1 + Math.floor(random() * 3) : 0,
      }))
    const run = async (p: EditorPage, ops: ReturnType<typeof script>): Promise<void> => {
      for (const op of ops) {
        const len = (await editorValue(p.page)).length
        const at = Math.floor(op.at * (len + 1))
        await setCaret(p.page, at, Math.min(len, at + op.select))
        for (let i = 0; i < op.backspaces; i++) await p.page.keyboard.press('Backspace')
        if (op.text) await p.page.keyboard.type(op.text)
      }
    }
    const scriptA = script()
    const scriptB = script()
    try {
      await fx.editors(r, ['Alice', 'Bob'], async ([a, b]) => {
        await Promise.all([run(a, scriptA), run(b, scriptB)])
        const final = await until(async () => {
          const [va, vb, vs] = await Promise.all([editorValue(a.page), editorValue(b.page), storedText(fx.inner, r)])
          return va === vb && vb === vs ? va : undefined
        }, 'both text areas and the server to agree')
        const typed = [...scriptA, ...scriptB].reduce((n, op) => n + op.text.length, 0)
        assert.ok(final.length <= typed && /^[a-j]*$/.test(final), `the text is made of what was typed: ${JSON.stringify(final)}`)
        await Promise.all([waitForSaved(a.page), waitForSaved(b.page)])
      })
    } catch (err) {
      throw new Error(`seed ${seed}: ${(err as Error).message}`, { cause: err })
    }
  })

  editorTest('a caret and a selection stay at their logical place while the other user edits before them', async () => {
    const r = fx.room('caret')
    await fx.editors(r, ['Alice', 'Bob'], async ([a, b]) => {
      await setCaret(a.page, 0)
      await a.page.keyboard.type('The quick brown fox jumps')
      await waitForValue(b.page, (v) => v === 'The quick brown fox jumps', 'B to see A\'s text')
      // A's caret before "brown".
      await setCaret(a.page, 10)
      await setCaret(b.page, 0)
      await b.page.keyboard.type('Hey! ')
      await waitForValue(a.page, (v) => v.startsWith('Hey! The'), 'A to see B\'s insert')
      assert.deepEqual(await selection(a.page), [15, 15])
      // B deletes "Hey! The " (9 characters, all before A's caret).
      await setCaret(b.page, 0, 9)
      await b.page.keyboard.press('Backspace')
      const v = await waitForValue(a.page, (x) => x.startsWith('quick'), 'A to see B\'s delete')
      const [s] = await selection(a.page)
      assert.equal(v.slice(s), 'brown fox jumps', 'A\'s caret is still before "brown"')
      // B types after A's caret: A's caret does not move.
      await setCaret(b.page, v.length)
      await b.page.keyboard.type('!')
      await waitForValue(a.page, (x) => x.endsWith('jumps!'), 'A to see B\'s append')
      assert.deepEqual(await selection(a.page), [s, s])
      // A selects "fox"; B inserts before it: still "fox" selected.
      const fox = (await editorValue(a.page)).indexOf('fox')
      await setCaret(a.page, fox, fox + 3)
      await setCaret(b.page, 0)
      await b.page.keyboard.type('So ')
      await waitForValue(a.page, (x) => x.startsWith('So quick'), 'A to see B\'s second insert')
      const [s2, e2] = await selection(a.page)
      assert.equal((await editorValue(a.page)).slice(s2, e2), 'fox')
    })
  })

  editorTest('remote edits above keep the scroll position; IME composition syncs once composed', async () => {
    const r = fx.room('scroll-ime')
    await fx.editors(r, ['Alice', 'Bob'], async ([a, b]) => {
      const lines = Array.from({ length: 200 }, (_, i) => `line ${i}`).join('\n')
      await a.page.$eval('#editor', (el, text) => {
        const ta = el as unknown as TextArea & { dispatchEvent(e: unknown): void }
        ta.value = text
        ta.dispatchEvent(new (globalThis as unknown as { Event: new (t: string) => unknown }).Event('input'))
      }, lines)
      await waitForValue(b.page, (v) => v === lines, 'B to see the long text')
      await a.page.$eval('#editor', (el) => { (el as unknown as TextArea).scrollTop = 1200 })
      const at = lines.indexOf('line 150')
      await setCaret(a.page, at)
      await a.page.$eval('#editor', (el) => { (el as unknown as TextArea).scrollTop = 1200 })
      await setCaret(b.page, 0)
      await b.page.keyboard.type('top\n')
      await waitForValue(a.page, (v) => v.startsWith('top\n'), 'A to see the insert at the top')
      assert.equal(await a.page.$eval('#editor', (el) => (el as unknown as TextArea).scrollTop), 1200, 'scroll position kept')
      assert.deepEqual(await selection(a.page), [at + 4, at + 4])
      // B's caret (line 2) follows A's scrolling: above the visible area now, inside it at the top.
      const caret = a.page.locator('.remote-caret[data-name="Bob"]')
      await caret.waitFor({ state: 'attached', timeout: 10_000 })
      const area = await a.page.locator('#editor').boundingBox()
      assert.ok(area)
      await waitFor(async () => ((await caret.boundingBox())?.y ?? Infinity) < area.y, { timeout: 10_000, message: 'the remote caret scrolled out of view' })
      await a.page.$eval('#editor', (el) => { (el as unknown as TextArea).scrollTop = 0 })
      await waitFor(async () => {
        const box = await caret.boundingBox()
        return box !== null && box.y > area.y && box.y < area.y + 80
      }, { timeout: 10_000, message: 'the remote caret back in view on the second line' })

      // A composes Japanese text; B types at the top meanwhile; nothing half-composed is synced.
      const cdp = await a.context.newCDPSession(a.page)
      await setCaret(a.page, 4)
      await cdp.send('Input.imeSetComposition', { text: 'にほん', selectionStart: 3, selectionEnd: 3 })
      await setCaret(b.page, 0)
      await b.page.keyboard.type('>> ')
      await waitFor(() => a.page.evaluate(() => (globalThis as unknown as { coedit: { ytext: { toString(): string } } }).coedit.ytext.toString().startsWith('>> top')),
        { timeout: 10_000, message: 'B\'s edit to reach A\'s document during the composition' })
      assert.ok(!(await storedText(fx.inner, r)).includes('にほん'), 'no mid-composition text is synced')
      assert.ok((await editorValue(a.page)).startsWith('top\nにほん'), 'the text area is left to the IME until the composition ends')
      await cdp.send('Input.insertText', { text: '日本' })
      const expected = `>> top\n日本${lines}`
      await waitForValue(a.page, (v) => v === expected, 'A to show the composed text after B\'s edit')
      await waitForValue(b.page, (v) => v === expected, 'B to get the composed text')
    })
  })

  editorTest('undo takes back only this user\'s own edits; cut and paste sync', async () => {
    const r = fx.room('undo')
    await fx.editors(r, ['Alice', 'Bob'], async ([a, b]) => {
      await setCaret(a.page, 0)
      await a.page.keyboard.type('alpha ')
      await waitForValue(b.page, (v) => v === 'alpha ', 'B to see A\'s text')
      await setCaret(b.page, 6)
      await b.page.keyboard.type('beta')
      await waitForValue(a.page, (v) => v === 'alpha beta', 'A to see B\'s text')
      await a.page.focus('#editor')
      await a.page.keyboard.press('Control+z')
      await waitForValue(b.page, (v) => v === 'beta', 'A\'s undo to reach B')
      assert.equal(await editorValue(a.page), 'beta')
      await a.page.keyboard.press('Control+Shift+z')
      await waitForValue(b.page, (v) => v === 'alpha beta', 'A\'s redo to reach B')
      // Cut and paste go through the same path as typing.
      await setCaret(a.page, 0, 6)
      await a.page.keyboard.press('Control+x')
      await setCaret(a.page, 4)
      await a.page.keyboard.type(' ')
      await a.page.keyboard.press('Control+v')
      await waitForValue(b.page, (v) => v === 'beta alpha ', 'A\'s cut and paste to reach B')
      await waitFor(async () => (await storedText(fx.inner, r)) === 'beta alpha ', { timeout: 10_000, message: 'the cut and paste to be stored' })
    })
  })
})
