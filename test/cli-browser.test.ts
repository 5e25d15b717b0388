/**
 * coedit revert while the web editor is open in a real Chromium: the page shows the old
 * content at once and keeps editing on top of it. Needs /usr/bin/chromium (skips elsewhere
 * outside CI, like the other browser tests).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { startServer } from '../server/index.js'
import { docFromUpdates } from '../server/room/yjs-log.js'
import {
  SKIP_MESSAGE, browserAvailable, editorValue, ensureWebBuild, launchBrowser, openEditor, setCaret, waitForConnected,
} from './helpers/browser.js'
import { connect, synced, tempDir, waitFor } from './helpers/index.js'
import { cli } from './helpers/cli.js'

const wait = <T>(check: () => T | Promise<T>, message: string): Promise<T> => waitFor(check, { timeout: 20_000, interval: 25, message })

if (!browserAvailable() && !process.env.CI) {
  test('coedit revert with the web editor open', { skip: SKIP_MESSAGE }, () => {})
} else {
  test('coedit revert with the web editor open: the page shows the old content and edits on', { timeout: 120_000 }, async (t) => {
    ensureWebBuild()
    const dir = await tempDir()
    t.after(() => dir.remove())
    const server = await startServer({ dataDir: dir.path, adminToken: 'browser-tok', historyInterval: 50 })
    t.after(() => server.close())
    const browser = await launchBrowser()
    t.after(() => browser.close())
    const auth = ['--server', server.httpUrl, '--token', 'browser-tok']
    const editor = await openEditor(browser, `${server.httpUrl}/r/revert-me`)
    t.after(() => editor.close())
    await waitForConnected(editor.page)

    await setCaret(editor.page, 0)
    await editor.page.keyboard.type('Typed in the browser.')
    const stored = await wait(async () => {
      const s = await server.store.load('revert-me')
      return docFromUpdates(s.updates).getText('text').toString() === 'Typed in the browser.' ? s.lastSeq : 0
    }, 'typing stored')
    const good = await wait(async () => {
      const versions = JSON.parse((await cli(['history', 'revert-me', '--json', ...auth])).out) as Array<{ id: number; seq: number }>
      return versions.find((v) => v.seq >= stored)
    }, 'a version of the typed text') as { id: number; seq: number }

    const vandal = connect(server.url, 'revert-me')
    t.after(() => vandal.destroy())
    await synced(vandal)
    vandal.text.delete(0, vandal.text.length)
    vandal.text.insert(0, 'VANDALISED')
    await wait(async () => (await editorValue(editor.page)) === 'VANDALISED', 'the page shows the damage')

    const res = await cli(['revert', 'revert-me', '--to', String(good.id), ...auth])
    assert.equal(res.code, 0, res.stderr)
    await wait(async () => (await editorValue(editor.page)) === 'Typed in the browser.', 'the page shows the reverted content')
    await wait(() => vandal.text.toString() === 'Typed in the browser.', 'the other client too')

    await setCaret(editor.page, 'Typed in the browser.'.length)
    await editor.page.keyboard.type(' And on.')
    await wait(() => vandal.text.toString() === 'Typed in the browser. And on.', 'editing goes on after the revert')
    assert.deepEqual(editor.errors, [])
    const d = new Y.Doc()
    Y.applyUpdate(d, Y.encodeStateAsUpdate(vandal.doc))
    assert.doesNotMatch(d.getText('text').toString(), /VANDAL/)
  })
}
