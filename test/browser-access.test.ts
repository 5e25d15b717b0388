/**
 * The web editor in headless Chromium against a real coedit (fixture: test/helpers/editor-suite.ts),
 * reaching a room: a bare % in the address, tokens from the page's fragment (write, read-only,
 * expiry), phone width and keyboard-only use.
 */
import assert from 'node:assert/strict'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { startServer } from '../server/index.js'
import { signToken } from '../server/transport/auth.js'
import { assertNoErrors, openEditor, setCaret, tabTo, waitForConnected, waitForSaved } from './helpers/browser.js'
import { ARTIFACTS, storedText, waitForValue, editorSuite, editorTest } from './helpers/editor-suite.js'
import { waitFor } from './helpers/index.js'

editorSuite('web editor in Chromium: access', (fx) => {
  editorTest('a bare % in the address: /r/100%25 and /r/100% are one room, and so are /r/Q3%2050%25%20plan and "/r/Q3 50% plan"', async (t) => {
    // [as a link would encode it, as a person would type it, the room]
    const cases = [['100%25', '100%', '100%'], ['Q3%2050%25%20plan', 'Q3 50% plan', 'Q3 50% plan']] as const
    for (const [encoded, typed, name] of cases) {
      const a = await fx.openAt(`${fx.server.httpUrl}/r/${encoded}`, { name: 'Linked' })
      const b = await fx.openAt(`${fx.server.httpUrl}/r/${typed}`, { name: 'Typed' })
      try {
        // The browser sends a typed % as it is (spaces encoded): the page decodes it by the server's rule.
        t.diagnostic(`"${typed}" was sent as ${new URL(b.page.url()).pathname}`)
        assert.equal(await a.page.textContent('#room-name'), name)
        assert.equal(await b.page.textContent('#room-name'), name)
        await setCaret(a.page, 0)
        await a.page.keyboard.type(`typed in ${name}`)
        await waitForValue(b.page, (v) => v === `typed in ${name}`, `the other address to show the text of ${name}`)
        await waitFor(() => fx.server.registry.rooms.find((r) => r.name === name)?.doc.getText('text').toString() === `typed in ${name}`, { message: `room ${name} on the server holds it` })
        assertNoErrors(a, b)
      } finally {
        await a.close()
        await b.close()
      }
    }
  })

  editorTest('tokens from the page\'s fragment: write, read-only, expired', async () => {
    const secret = 'a-test-secret-that-is-at-least-32-bytes-long'
    const secured = await startServer({ port: 0, storage: 'memory', authSecret: secret })
    const url = (r: string, token: string): string => `${secured.httpUrl}/r/${r}#token=${token}`
    const writer = await signToken({ rooms: ['team/*'], access: 'write', ttl: 3_600_000, secret })
    const reader = await signToken({ rooms: ['team/*'], access: 'read', ttl: 3_600_000, secret })
    const a = await fx.openAt(url('team%2Fplan', writer), { name: 'Writer' })
    const b = await fx.openAt(url('team%2Fplan', reader), { name: 'Reader' })
    try {
      await setCaret(a.page, 0)
      await a.page.keyboard.type('written with a token')
      await waitForSaved(a.page)
      await waitForValue(b.page, (v) => v === 'written with a token', 'the reader to see the text')
      assert.equal(await b.page.$eval('#editor', (el) => (el as unknown as { readOnly: boolean }).readOnly), true)
      assert.equal(await b.page.getAttribute('#save-status', 'data-state'), 'read-only')
      assertNoErrors(a, b)

      // A token that expires during the session: the server closes with 4401 and the page says why.
      // The page must connect before the token expires: 6 s was too short on a loaded machine
      // (connecting alone took over 5 s at load average 40), 30 s leaves room for that.
      const shortLived = await signToken({ rooms: ['team/*'], access: 'write', ttl: 30_000, secret })
      const c = await openEditor(fx.browser, url('team%2Fplan', shortLived), { name: 'Brief' })
      try {
        await waitForConnected(c.page, 25_000)
        await c.page.waitForSelector('#connection[data-state="closed"]', { timeout: 60_000 })
        assert.match(await c.page.textContent('#connection') ?? '', /token expired/)
      } finally {
        await c.close()
      }
    } finally {
      await a.close()
      await b.close()
      await secured.close()
    }
  })

  editorTest('phone width, keyboard only, labelled text area', async () => {
    const r = fx.room('phone')
    await fx.editors(r, ['Pat'], async ([a]) => {
      const overflow = await a.page.evaluate(() => {
        const g = globalThis as unknown as { document: { documentElement: { scrollWidth: number } }; innerWidth: number }
        return g.document.documentElement.scrollWidth - g.innerWidth
      })
      assert.ok(overflow <= 0, `no horizontal scrolling at phone width (overflow ${overflow}px)`)
      const area = a.page.getByLabel('Document text')
      assert.equal(await area.getAttribute('id'), 'editor', 'the text area is labelled')
      const box = await area.boundingBox()
      assert.ok(box && box.width >= 300 && box.height >= 200, `the text area fills the phone screen: ${JSON.stringify(box)}`)

      // Tab from the top of the page reaches the text area, then typing works.
      await tabTo(a.page, 'editor', 8)
      await a.page.keyboard.type('typed with the keyboard')
      await waitFor(() => storedText(fx.inner, r).then((v) => v === 'typed with the keyboard'), { timeout: 10_000, message: 'the text to be stored' })
      // Tab on to the name field; replace the name from the keyboard.
      await tabTo(a.page, 'name', 8)
      await a.page.keyboard.press('Control+a')
      await a.page.keyboard.type('Pat K.')
      await a.page.waitForSelector('#people .person-name:text-is("Pat K.")')
      await mkdir(ARTIFACTS, { recursive: true })
      await a.page.screenshot({ path: join(ARTIFACTS, 'editor-phone.png') })
    }, { viewport: { width: 360, height: 740 } })
  })
})
