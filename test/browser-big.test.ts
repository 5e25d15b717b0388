/**
 * The web editor in headless Chromium against a real coedit (fixture: test/helpers/editor-suite.ts):
 * a 1 MB document opens, takes typing and is stored; its keystroke latency, and a bare text area's
 * beside it, are printed, not asserted.
 */
import assert from 'node:assert/strict'
import { setCaret, waitForSaved, type TextArea } from './helpers/browser.js'
import { storedText, summary, timeTyping, waitForValue, editorSuite, editorTest } from './helpers/editor-suite.js'
import { connect, synced, waitFor } from './helpers/index.js'

editorSuite('web editor in Chromium: a 1 MB document', (fx) => {
  editorTest('a 1 MB document opens and takes typing, which is stored (its keystroke latency is printed)', async (t) => {
    const r = fx.room('big')
    const line = 'The quick brown fox jumps over the lazy dog, again and again and again. 0123456789\n'
    const text = line.repeat(Math.ceil(1024 * 1024 / line.length)).slice(0, 1024 * 1024)
    const seeder = connect(fx.server.url, r)
    await synced(seeder, 10_000)
    seeder.text.insert(0, text)
    await waitFor(async () => (await storedText(fx.inner, r)).length === text.length, { timeout: 20_000, message: 'the 1 MB document to be stored' })
    seeder.destroy()

    const started = Date.now()
    await fx.editors(r, ['Big'], async ([a]) => {
      await waitForValue(a.page, (v) => v.length === text.length, 'the 1 MB document in the text area', 30_000)
      const openMs = Date.now() - started
      const typed = 'typing into a big one'
      await setCaret(a.page, 512 * 1024)
      const ours = summary(await timeTyping(a.page, typed))
      // The same typing into a bare text area holding the same text, on this machine, now: the
      // browser's own cost of a 1 MB text area, against which the binding's overhead is judged.
      const bare = await a.context.newPage()
      let baseline
      try {
        await bare.setContent('<textarea id="editor" style="width: 700px; height: 480px; font: 15px/1.5 monospace"></textarea>')
        await bare.$eval('#editor', (el, value) => { (el as unknown as TextArea).value = value }, text)
        await setCaret(bare, 512 * 1024)
        baseline = summary(await timeTyping(bare, typed))
      } finally {
        await bare.close()
      }
      const report = `1 MB document: opened in ${openMs} ms; keystroke to next frame median ${ours.median} ms, p95 ${ours.p95} ms, max ${ours.max} ms` +
        ` (a bare 1 MB text area here and now: median ${baseline.median} ms, p95 ${baseline.p95} ms; n=${typed.length})`
      console.log(report)
      t.diagnostic(report)
      await waitFor(async () => (await storedText(fx.inner, r)).includes(typed), { timeout: 20_000, message: 'the typing to be stored' })
      await waitForSaved(a.page)
    })
  })
})
