/**
 * The `authenticate` hook in a real browser: coedit's editor in Chromium, let in or refused
 * by the session cookie its browser context holds (as an application's login would set
 * it), with the HTTP status of the refused upgrade, read access enforced, and `changed`
 * naming the user the hook named.
 *
 * Needs Debian's `chromium` (/usr/bin/chromium); skipped without it outside CI.
 */
import assert from 'node:assert/strict'
import { after, before } from 'node:test'
import type { BrowserContext } from 'playwright-core'
import { startServer, MemoryStore, type ChangeOrigin, type CoeditServer } from '../server/index.js'
import { createLogger } from '../server/log.js'
import { openEditor, setCaret, waitForSaved, type EditorPage } from './helpers/browser.js'
import { browserSuite, editorTest as test, storedText, waitForValue } from './helpers/editor-suite.js'
import { waitFor } from './helpers/index.js'
import { captureLog } from './helpers/log-capture.js'

const SESSIONS: Record<string, { id: string; name: string; access: 'read' | 'write'; rooms: string[] }> = {
  's-alice': { id: 'alice', name: 'Alice', access: 'write', rooms: ['plan'] },
  's-bob': { id: 'bob', name: 'Bob', access: 'read', rooms: ['plan'] },
  's-mallory': { id: 'mallory', name: 'Mallory', access: 'write', rooms: ['elsewhere'] },
}

browserSuite('authenticate hook in Chromium', (fx) => {
  let server: CoeditServer
  const store = new MemoryStore()
  const changes: Array<{ room: string; origin: ChangeOrigin }> = []
  const log = captureLog()
  const refusals = (): Array<Record<string, unknown>> => log.events('upgrade_refused')

  before(async () => {
    server = await startServer({
      storage: store,
      logger: createLogger('info', log.stream),
      hooks: {
        authenticate: ({ room, request }) => {
          const session = SESSIONS[request.cookies.session ?? '']
          if (!session) throw Object.assign(new Error('please log in'), { status: 401 })
          if (!session.rooms.includes(room)) return false
          return { access: session.access, user: { id: session.id, name: session.name } }
        },
        changed: ({ room, origin }) => { changes.push({ room, origin }) },
      },
    })
  })

  after(async () => {
    await server?.close()
  })

  /** A browser context holding `session` as a cookie of the server's origin, as a login page would leave it. */
  async function contextWith(session: string | undefined): Promise<BrowserContext> {
    const context = await fx.browser.newContext({ viewport: { width: 1000, height: 640 } })
    if (session) await context.addCookies([{ name: 'session', value: session, url: server.httpUrl }])
    return context
  }

  test('a session cookie lets the editor in; changed names the user; a reader\'s edits are refused', async () => {
    const pages: EditorPage[] = []
    try {
      const alice = await fx.openAt(`${server.httpUrl}/r/plan`, { name: 'Alice', context: await contextWith('s-alice') })
      pages.push(alice)
      await setCaret(alice.page, 0)
      await alice.page.keyboard.type('hello from alice')
      await waitForSaved(alice.page)
      assert.equal(await storedText(store, 'plan'), 'hello from alice')
      await waitFor(() => changes.length > 0, { message: 'changed' })
      assert.ok(changes.every((c) => c.room === 'plan' && c.origin.kind === 'connection' && c.origin.user?.id === 'alice' && c.origin.user.name === 'Alice'),
        JSON.stringify(changes))

      const bob = await fx.openAt(`${server.httpUrl}/r/plan`, { name: 'Bob', context: await contextWith('s-bob') })
      pages.push(bob)
      await waitForValue(bob.page, 'hello from alice', 'bob reads alice\'s text')
      const before = changes.length
      await setCaret(bob.page, 0)
      await bob.page.keyboard.type('bob! ')
      // The server's "permission denied": the page turns read-only and says so.
      await bob.page.waitForSelector('#save-status[data-state="read-only"]', { timeout: 20_000 })
      // Alice's next edit is stored after bob's refused one was handled.
      await alice.page.keyboard.type('.')
      await waitForSaved(alice.page)
      assert.equal(await storedText(store, 'plan'), 'hello from alice.')
      assert.ok(changes.slice(before).every((c) => c.origin.user?.id === 'alice'), 'nothing told for bob')
      for (const p of pages) assert.deepEqual(p.errors.filter((e) => !/permission denied/i.test(e)), [])
    } finally {
      for (const p of pages) await p.close()
    }
  })

  test('without a session the editor cannot connect (HTTP 401 at the upgrade); a session for another room gets 403', async () => {
    for (const [session, status] of [[undefined, 401], ['s-mallory', 403]] as const) {
      const before = refusals().length
      const page = await openEditor(fx.browser, `${server.httpUrl}/r/plan`, { name: 'Nobody', context: await contextWith(session) })
      try {
        await waitFor(() => refusals().length > before, { message: `the ${status} refusal` })
        const refusal = refusals()[before]!
        assert.equal(refusal.status, status)
        assert.equal(refusal.room, 'plan')
        // The stock provider retries an HTTP refusal; the page says it is offline, never connected.
        await page.page.waitForSelector('#connection[data-state="offline"]', { timeout: 20_000 })
        assert.match(await page.page.textContent('#connection') ?? '', /Offline/)
        assert.equal(await page.page.getAttribute('#connection', 'data-state'), 'offline')
      } finally {
        await page.close()
      }
    }
    assert.equal(await storedText(store, 'plan'), 'hello from alice.')
  })
})
