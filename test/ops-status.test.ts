/**
 * The /status page: its JSON behind the admin token, and the page itself in headless
 * Chromium showing live numbers (connections, rooms, people, the rate chart).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, type CoeditServer } from '../server/index.js'
import { connect, synced, tempDir, waitFor, type Client } from './helpers/index.js'
import { SKIP_MESSAGE, browserAvailable, launchBrowser } from './helpers/browser.js'

const ADMIN = 'status-admin-token'

async function statusJson(server: CoeditServer, token?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${server.httpUrl}/status.json`, { headers: token ? { Authorization: `Bearer ${token}` } : {} })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

test('/status.json needs the admin token when one is set and reports rooms, people, storage and rates', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const server = await startServer({ dataDir: dir.path, adminToken: ADMIN })
  t.after(() => server.close())
  assert.equal((await statusJson(server)).status, 401)
  assert.equal((await statusJson(server, 'wrong')).status, 401)

  const ada = connect(server.url, 'busy')
  const bob = connect(server.url, 'busy')
  const cy = connect(server.url, 'quiet')
  t.after(() => { ada.destroy(); bob.destroy(); cy.destroy() })
  await Promise.all([synced(ada), synced(bob), synced(cy)])
  ada.provider.awareness.setLocalStateField('user', { name: 'Ada', color: '#3b82f6' })
  ada.text.insert(0, 'private words')
  await waitFor(async () => {
    const { body } = await statusJson(server, ADMIN)
    const busy = (body.rooms as Array<{ name: string; users: string[] }>).find((r) => r.name === 'busy')
    return busy?.users.includes('Ada')
  }, { message: 'Ada to show in room busy' })

  const { status, body } = await statusJson(server, ADMIN)
  assert.equal(status, 200)
  assert.equal(body.connections, 3)
  assert.equal(body.roomsLoaded, 2)
  assert.deepEqual((body.rooms as Array<{ name: string; connections: number }>).map((r) => [r.name, r.connections]), [['busy', 2], ['quiet', 1]])
  assert.ok(((body.storage as { bytes: number }).bytes) > 0)
  const points = (body.rates as { points: Array<{ messagesIn: number }> }).points
  assert.ok(points.length >= 1 && points.some((p) => p.messagesIn > 0))
  assert.ok(!JSON.stringify(body).includes('private words'), 'no document content')
})

if (!browserAvailable() && !process.env.CI) {
  test('status page in Chromium', { skip: SKIP_MESSAGE }, () => {})
} else {
  test('status page in Chromium: asks for the token, then shows live numbers and a chart', async (t) => {
    assert.ok(browserAvailable(), `CI requires the browser tests: ${SKIP_MESSAGE}`)
    const server = await startServer({ adminToken: ADMIN })
    t.after(() => server.close())
    const clients: Client[] = []
    t.after(() => { for (const c of clients) c.destroy() })
    const join = async (room: string): Promise<void> => {
      const c = connect(server.url, room)
      clients.push(c)
      await synced(c)
    }
    await join('alpha')

    const browser = await launchBrowser()
    t.after(() => browser.close())
    const page = await browser.newPage()
    const errors: string[] = []
    page.on('pageerror', (err) => errors.push(err.message))
    page.on('console', (msg) => {
      // The first poll's 401 is expected: it is what shows the token form.
      if (msg.type() === 'error' && !/401/.test(msg.text())) errors.push(msg.text())
    })

    await page.goto(`${server.httpUrl}/status`)
    await page.waitForSelector('#login:not([hidden])', { timeout: 20_000 })
    await page.fill('#token', ADMIN)
    await page.click('#login button')
    await page.waitForSelector('#content:not([hidden])', { timeout: 20_000 })
    assert.equal(await page.isVisible('#login'), false, 'the token form is gone')
    const text = (id: string): Promise<string> => page.$eval(`#${id}`, (el) => el.textContent ?? '')
    await waitFor(async () => (await text('connections')) === '1', { timeout: 20_000, message: 'one connection shown' })
    assert.equal(await text('rooms-loaded'), '1')
    assert.equal(await page.$eval('#state', (el) => el.getAttribute('data-state')), 'live')

    // Live: more people arrive, and the page catches up without a reload.
    await join('alpha')
    await join('beta')
    await waitFor(async () => (await text('connections')) === '3', { timeout: 20_000, message: 'three connections shown' })
    await waitFor(async () => (await text('rooms-loaded')) === '2', { timeout: 20_000, message: 'two rooms shown' })
    const rows = await page.$$eval('#rooms tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)))
    assert.deepEqual(rows.map((r) => r.slice(0, 2)), [['alpha', '2'], ['beta', '1']])

    // Traffic shows in the chart (two samples or more make a line) and in the rate.
    for (const c of clients) c.text.insert(0, 'typing')
    await waitFor(async () => {
      const points = await page.$eval('#line-in', (el) => (el.getAttribute('points') ?? '').trim().split(/\s+/).filter(Boolean).length)
      return points >= 2
    }, { timeout: 30_000, message: 'the chart to have a line' })
    assert.notEqual(await text('storage'), '–')
    assert.match(await text('rss'), /MiB|GiB/)

    // A link with the token in the fragment (never sent to the server) opens straight to the numbers.
    const linked = await browser.newPage()
    await linked.goto(`${server.httpUrl}/status#token=${ADMIN}`)
    await linked.waitForSelector('#content:not([hidden])', { timeout: 20_000 })
    assert.equal(new URL(linked.url()).hash, '', 'the token is taken out of the address bar')
    assert.deepEqual(errors, [])
  })
}
