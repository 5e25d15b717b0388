/**
 * The /status page: aggregate figures for anyone, room names and people only to the admin
 * token (loopback is not trusted), capped lists, and the page itself in headless Chromium
 * showing live numbers (connections, rooms, people, the rate chart).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, type CoeditServer } from '../server/index.js'
import { SignJWT } from 'jose'
import * as Y from 'yjs'
import { Awareness, encodeAwarenessUpdate } from 'y-protocols/awareness'
import { encodeAwareness } from '../server/room/protocol.js'
import { connect, synced, tempDir, waitFor, type Client } from './helpers/index.js'
import { RawClient } from './helpers/raw-client.js'
import { SKIP_MESSAGE, browserAvailable, ensureWebBuild, launchBrowser } from './helpers/browser.js'

const ADMIN = 'status-admin-token'
/** The caps of server/observability/ops.ts, restated: the README documents them. */
const STATUS_ROOMS = 200
const STATUS_USERS = 50

async function statusJson(server: CoeditServer, token?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${server.httpUrl}/status.json`, { headers: token ? { Authorization: `Bearer ${token}` } : {} })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

test('/status.json lists rooms and people only to the admin token, and reports storage and rates', async (t) => {
  const dir = await tempDir()
  t.after(() => dir.remove())
  const server = await startServer({ dataDir: dir.path, adminToken: ADMIN })
  t.after(() => server.close())
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

  // Without the token (from loopback too): the figures, not the names.
  const anonymous = await statusJson(server)
  assert.equal(anonymous.status, 200)
  assert.equal(anonymous.body.connections, 3)
  assert.equal(anonymous.body.roomsLoaded, 2)
  assert.equal(anonymous.body.rooms, undefined)
  assert.ok((anonymous.body.memory as { rss: number }).rss > 0)
  assert.ok(!/busy|quiet|Ada/.test(JSON.stringify(anonymous.body)), 'no room or person named')
})

test('with --auth-secret and no --admin-token, nobody gets room names or people from /status.json', async (t) => {
  const secret = 'a-secret-that-is-long-enough-for-hs256!'
  const server = await startServer({ authSecret: secret })
  t.after(() => server.close())
  const token = await new SignJWT({ rooms: ['share-link-room'], access: 'write' }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret))
  const ada = connect(server.url, 'share-link-room', { params: { token } })
  t.after(() => ada.destroy())
  await synced(ada)
  ada.provider.awareness.setLocalStateField('user', { name: 'Ada' })
  await waitFor(() => server.registry.rooms[0]?.awareness.getStates().size === 1, { message: 'presence on the server' })
  for (const auth of [undefined, 'anything']) {
    const { status, body } = await statusJson(server, auth)
    assert.equal(status, 200)
    assert.equal(body.connections, 1)
    assert.equal(body.rooms, undefined)
    assert.ok(!/share-link-room|Ada/.test(JSON.stringify(body)))
  }
})

test('/status.json caps what it lists: the busiest rooms, some people per room, with the totals', async (t) => {
  const server = await startServer({ adminToken: ADMIN })
  t.after(() => server.close())
  const crowd: RawClient[] = []
  t.after(() => { for (const c of crowd) c.close() })
  for (let i = 0; i < STATUS_USERS + 5; i++) {
    const c = await RawClient.open(`${server.url}/crowded`)
    crowd.push(c)
    const awareness = new Awareness(new Y.Doc())
    awareness.setLocalState({ user: { name: `person ${i} ${'x'.repeat(200)}` } })
    c.send(encodeAwareness(encodeAwarenessUpdate(awareness, [awareness.clientID])))
    // An Awareness renews itself on an interval that would keep the test process alive.
    awareness.destroy()
  }
  for (let i = 0; i < STATUS_ROOMS; i++) await server.registry.get(`idle-${i}`)
  await waitFor(() => server.registry.rooms.find((r) => r.name === 'crowded')?.awareness.getStates().size === STATUS_USERS + 5, { message: 'everyone present' })
  const { body } = await statusJson(server, ADMIN)
  const rooms = body.rooms as Array<{ name: string; connections: number; users: string[]; userCount: number }>
  assert.equal(body.roomsLoaded, STATUS_ROOMS + 1)
  assert.equal(rooms.length, STATUS_ROOMS)
  assert.equal(rooms[0]!.name, 'crowded', 'busiest first')
  assert.equal(rooms[0]!.users.length, STATUS_USERS)
  assert.equal(rooms[0]!.userCount, STATUS_USERS + 5)
  assert.ok(rooms[0]!.users.every((n) => n.length <= 64))
})

if (!browserAvailable() && !process.env.CI) {
  test('status page in Chromium', { skip: SKIP_MESSAGE }, () => {})
} else {
  test('status page in Chromium: figures without the token, rooms and people after asking for it, live numbers and a chart', async (t) => {
    assert.ok(browserAvailable(), `CI requires the browser tests: ${SKIP_MESSAGE}`)
    ensureWebBuild()
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
      // The 401 of the wrong token tried below is expected.
      if (msg.type() === 'error' && !/401/.test(msg.text())) errors.push(msg.text())
    })
    const requested: string[] = []
    page.on('request', (req) => requested.push(req.url()))

    await page.goto(`${server.httpUrl}/status`)
    await page.waitForSelector('#content:not([hidden])', { timeout: 20_000 })
    const text = (id: string): Promise<string> => page.$eval(`#${id}`, (el) => el.textContent ?? '')
    await waitFor(async () => (await text('connections')) === '1', { timeout: 20_000, message: 'one connection shown without a token' })
    assert.equal(await page.isVisible('#rooms-panel'), false, 'no room names without the token')
    await page.waitForSelector('#login:not([hidden])', { timeout: 20_000 })
    await page.fill('#token', 'wrong-token')
    await page.click('#login button')
    await page.waitForSelector('#login-error:not([hidden])', { timeout: 20_000 })
    assert.equal(await text('connections'), '1', 'the figures stay after a wrong token')
    await page.fill('#token', ADMIN)
    await page.click('#login button')
    await page.waitForSelector('#rooms-panel:not([hidden])', { timeout: 20_000 })
    assert.equal(await page.isVisible('#login'), false, 'the token form is gone')
    assert.ok(requested.every((u) => !u.includes(ADMIN)), 'the token is in no URL sent to the server')
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
    // Every figure is filled in by the bundled script (web/src/status-page.ts).
    assert.match(await text('rate-in'), /^\d+(\.\d)?$/)
    assert.match(await text('uptime'), /^\d+m \d+s$/)
    assert.notEqual(await text('updated'), '–')

    // A link with the token in the fragment (never sent to the server) opens straight to the numbers.
    const linked = await browser.newPage()
    await linked.goto(`${server.httpUrl}/status#token=${ADMIN}`)
    await linked.waitForSelector('#rooms-panel:not([hidden])', { timeout: 20_000 })
    assert.equal(new URL(linked.url()).hash, '', 'the token is taken out of the address bar')
    assert.deepEqual(errors, [])
  })
}
