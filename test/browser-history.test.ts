/**
 * The editor's history panel in a real headless Chromium against a real coedit on port 0
 * (issue 18): three writes 2 s apart (the server's clock is injected and moved by the
 * test, so no test waits on time), one page selects the moment between the first two,
 * sees the text as it was with the change marked, and restores it; the other page sees
 * the restored text. A reader's panel has no restore button and the server refuses its
 * restore. Keyboard only, and at 375 px.
 *
 * Needs Debian's `chromium` (/usr/bin/chromium); skips elsewhere, fails in CI without it.
 * `UPDATE_SCREENSHOT=1` refreshes the README's web/screenshot.png from the first test.
 */
import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as Y from 'yjs'
import type { Page } from 'playwright-core'
import { startServer } from '../server/index.js'
import { signToken } from '../server/transport/auth.js'
import { PACKAGE_ROOT } from '../server/http/paths.js'
import { activeId, assertNoErrors, setCaret, tabTo, type EditorPage } from './helpers/browser.js'
import { ARTIFACTS, browserSuite, editorTest as test, sideBySide, storedText, waitForValue } from './helpers/editor-suite.js'
import { connect, synced, waitFor } from './helpers/index.js'

const SECRET = 'a-test-secret-that-is-at-least-32-bytes-long'
/** No versions on a timer during a test: the moments listed are the writes and the restore's. */
const NO_TICK = 3_600_000

/** A clock the test moves by hand, starting a minute in the past. */
function manualClock(): { now: () => number; advance: (ms: number) => number } {
  let t = Math.floor(Date.now() / 1000) * 1000 - 60_000
  return { now: () => t, advance: (ms) => (t += ms) }
}

/** The page's DOM, typed loosely (the Node tsconfig has no DOM lib). */
interface Node {
  nodeType: number
  textContent: string | null
  classList?: { contains(c: string): boolean }
}

/** The preview's text without what was added since: the text as it was. */
const previewThen = (page: Page): Promise<string> => page.$eval('#history-preview', (el) =>
  [...(el as unknown as { childNodes: Node[] }).childNodes].filter((n) => !n.classList?.contains('since-added')).map((n) => n.textContent ?? '').join(''))

/** Opens the panel by its button and waits for `count` moments. */
async function openHistory(page: Page, count: number): Promise<void> {
  await page.click('#history-open')
  await page.waitForSelector('#history:not([hidden])')
  await waitFor(async () => (await page.locator('#history-list [role="option"]').count()) >= count, { timeout: 20_000, message: `${count} moments listed` })
}

/** Selects the oldest editing moment (the first write's) and waits until its text is shown. */
async function selectFirstWrite(page: Page): Promise<void> {
  await page.locator('#history-list [role="option"][data-kind="edits"]').last().click()
  await waitFor(async () => (await page.textContent('#history-preview')) !== 'Loading…' && await page.isVisible('#history-view'), { timeout: 20_000, message: 'the moment\'s text' })
}

browserSuite('history panel in Chromium', (fx) => {
  const viewport = { width: 960, height: 540 }
  const open = (url: string, name: string, size = viewport): Promise<EditorPage> => fx.openAt(url, { name, viewport: size })

  test('three writes 2 s apart; one page restores the moment between the first two, the other sees it; a reader cannot restore', async (t) => {
    const clock = manualClock()
    const server = await startServer({ storage: 'memory', clock: clock.now, authSecret: SECRET, historyInterval: NO_TICK })
    t.after(() => server.close())
    const room = 'team/notes'
    const token = (sub: string, access: 'read' | 'write'): Promise<string> => signToken({ rooms: ['team/*'], access, ttl: 3_600_000, secret: SECRET, sub })
    const url = (tok: string): string => `${server.httpUrl}/r/${encodeURIComponent(room)}#token=${tok}`
    const ada = await open(url(await token('Ada', 'write')), 'Ada')
    const grace = await open(url(await token('Grace', 'write')), 'Grace')

    // Write 1 (Ada), write 2 (Grace), write 3 (Ada), each stored before the clock moves on 2 s.
    const writes: Array<[EditorPage, () => Promise<void>, string]> = [
      [ada, async () => { await setCaret(ada.page, 0); await ada.page.keyboard.type('version one.') }, 'version one.'],
      [grace, async () => { await setCaret(grace.page, 12); await grace.page.keyboard.type(' then damage') }, 'version one. then damage'],
      [ada, async () => { await setCaret(ada.page, 0, 8); await ada.page.keyboard.press('Backspace') }, 'one. then damage'],
    ]
    let previous = ''
    for (const [writer, write, expected] of writes) {
      // The writer must have the text so far, or its caret lands elsewhere.
      await waitForValue(writer.page, previous, 'the writer to see the writes before')
      await write()
      previous = expected
      await waitFor(async () => (await storedText(server.store, room)) === expected, { timeout: 20_000, message: `"${expected}" stored` })
      clock.advance(2000)
    }
    await waitForValue(grace.page, 'one. then damage', 'Grace to see every write')

    await openHistory(grace.page, 3)
    const titles = await grace.page.locator('#history-list .moment-title').allTextContents()
    assert.deepEqual(titles, ['Edits by Ada', 'Edits by Grace', 'Edits by Ada'], 'one moment per write, newest first, with who')
    assert.match(await grace.page.locator('#history-list time').first().textContent() ?? '', /seconds? ago/, 'relative times')
    await selectFirstWrite(grace.page)
    assert.equal(await previewThen(grace.page), 'version one.', 'the text as it was after write 1')
    assert.deepEqual(await grace.page.locator('#history-preview .since-added').allTextContents(), [' then damage'], 'what was added since is marked')
    assert.deepEqual(await grace.page.locator('#history-preview .since-gone').allTextContents(), ['version '], 'what is gone since is marked')
    assert.equal(await grace.page.getAttribute('#history-preview', 'aria-readonly'), 'true')
    assert.equal(await grace.page.$eval('#history-preview', (el) => (el as unknown as { isContentEditable: boolean }).isContentEditable), false, 'read-only')
    await grace.page.focus('#history-preview')
    await grace.page.keyboard.type('typed into the preview')
    assert.equal(await previewThen(grace.page), 'version one.', 'typing does not change the preview')
    assert.equal(await storedText(server.store, room), 'one. then damage', 'nor the document')

    await mkdir(ARTIFACTS, { recursive: true })
    await setCaret(ada.page, 4)
    await grace.page.waitForSelector('.remote-caret[data-name="Ada"]', { state: 'attached', timeout: 10_000 })
    await ada.page.waitForSelector('.remote-caret[data-name="Grace"]', { timeout: 10_000 })
    const [pngA, pngG] = await Promise.all([ada.page.screenshot(), grace.page.screenshot()])
    await writeFile(join(ARTIFACTS, 'history-grace.png'), pngG)
    const png = await sideBySide(ada.context, [[pngA, 'Ada\'s window'], [pngG, 'Grace\'s window, her history panel open']])
    await writeFile(join(ARTIFACTS, 'editor-history.png'), png)
    // The README's image is refreshed on request only, so ordinary runs leave the tree clean.
    if (process.env.UPDATE_SCREENSHOT) await writeFile(join(PACKAGE_ROOT, 'web', 'screenshot.png'), png)

    await grace.page.click('#history-restore')
    await waitForValue(ada.page, 'version one.', 'Ada to see the restored text')
    await waitForValue(grace.page, 'version one.', 'Grace to see the restored text')
    assert.equal(await storedText(server.store, room), 'version one.')
    await waitFor(async () => /Restored/.test(await grace.page.textContent('#history-note') ?? ''), { timeout: 20_000, message: 'the panel says it restored' })
    await waitFor(async () => (await grace.page.locator('#history-list .moment-title').first().textContent()) === 'Edits by Grace', { timeout: 20_000, message: 'the restore listed as Grace\'s edit' })
    assert.ok((await grace.page.locator('#history-list .moment-title').allTextContents()).some((s) => s.startsWith('Before a restore')), 'the text before the restore is kept as a version')

    // A reader lists and reads, but has no restore button; the server refuses its restore anyway.
    const readerToken = await token('Rui', 'read')
    const reader = await open(url(readerToken), 'Rui')
    await openHistory(reader.page, 4)
    await selectFirstWrite(reader.page)
    assert.equal(await previewThen(reader.page), 'version one.')
    assert.equal(await reader.page.isHidden('#history-restore'), true, 'a reader\'s panel has no restore button')
    assert.equal(await reader.page.locator('button:text-is("Restore this version"):visible').count(), 0)
    const moments = await (await fetch(`${server.httpUrl}/api/rooms/${encodeURIComponent(room)}/history`, { headers: { Authorization: `Bearer ${readerToken}` } })).json() as { moments: Array<{ t: string }> }
    const refused = await fetch(`${server.httpUrl}/api/rooms/${encodeURIComponent(room)}/revert?to=${encodeURIComponent(moments.moments.at(-1)!.t)}`, { method: 'POST', headers: { Authorization: `Bearer ${readerToken}` } })
    assert.equal(refused.status, 403)
    assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'READ_ONLY')
    assert.equal(await storedText(server.store, room), 'version one.', 'the reader changed nothing')
    assertNoErrors(ada, grace, reader)
  })

  test('keyboard only at 375 px on an open server: open, pick, restore, Escape; nothing overflows sideways', async (t) => {
    const clock = manualClock()
    const server = await startServer({ storage: 'memory', clock: clock.now, historyInterval: NO_TICK })
    t.after(() => server.close())
    const room = 'phone-notes'
    const writer = connect(server.url, room)
    t.after(() => writer.destroy())
    await synced(writer)
    const writes: Array<(text: Y.Text) => void> = [(x) => x.insert(0, 'version one.'), (x) => x.insert(12, ' then damage'), (x) => x.delete(0, 8)]
    for (const [i, write] of writes.entries()) {
      write(writer.text)
      await waitFor(async () => (await server.store.load(room)).lastSeq >= i + 1, { timeout: 20_000, message: `write ${i + 1} stored` })
      clock.advance(2000)
    }
    const pat = await open(`${server.httpUrl}/r/${room}`, 'Pat', { width: 375, height: 740 })
    const page = pat.page
    await waitForValue(page, 'one. then damage', 'the page to show the writes')

    await tabTo(page, 'history-open')
    await page.keyboard.press('Enter')
    await page.waitForSelector('#history:not([hidden])')
    assert.equal(await activeId(page), 'history-close', 'focus moves into the panel')
    await waitFor(async () => (await page.locator('#history-list [role="option"]').count()) === 3, { timeout: 20_000, message: 'three moments listed' })
    assert.equal(await page.locator('#history-list .moment-title').first().textContent(), 'Edits', 'an open server knows no names')
    await page.keyboard.press('Tab')
    assert.equal(await activeId(page), 'history-moment-0', 'the list is the next Tab stop')
    await page.keyboard.press('End')
    assert.equal(await activeId(page), 'history-moment-2')
    await page.keyboard.press('Enter')
    await waitFor(async () => (await previewThen(page)) === 'version one.', { timeout: 20_000, message: 'the oldest moment shown' })
    await tabTo(page, 'history-restore')

    const overflow = await page.evaluate(() => {
      const d = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number }; querySelectorAll(s: string): Iterable<{ id: string; className: string; scrollWidth: number; clientWidth: number }> } }).document
      const wide = [...d.querySelectorAll('#history, #history *')].filter((e) => e.scrollWidth > e.clientWidth && e.clientWidth > 0).map((e) => e.id || e.className)
      return { page: d.documentElement.scrollWidth - d.documentElement.clientWidth, wide }
    })
    assert.ok(overflow.page <= 0, `the page does not scroll sideways at 375 px (overflow ${overflow.page}px)`)
    assert.deepEqual(overflow.wide, [], 'nothing in the panel scrolls sideways')
    const box = await page.locator('#history').boundingBox()
    assert.ok(box && box.x >= 0 && box.x + box.width <= 375, `the panel fits the screen: ${JSON.stringify(box)}`)
    await mkdir(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: join(ARTIFACTS, 'history-phone.png') })

    await page.keyboard.press('Enter')
    await waitForValue(page, 'version one.', 'the restored text in the editor')
    await waitFor(() => writer.text.toString() === 'version one.', { timeout: 20_000, message: 'the other client sees the restore' })
    await page.keyboard.press('Escape')
    await page.waitForSelector('#history', { state: 'hidden' })
    assert.equal(await activeId(page), 'history-open', 'Escape gives focus back to the History button')
    assertNoErrors(pat)
  })
})
