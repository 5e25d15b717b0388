/**
 * The /status page (web/status.html): polls /status.json and shows what it says. The page
 * holds no data of its own. Anyone sees the aggregate figures; room names and people need
 * the admin token, asked for on the page (or taken from a `#token=` link), kept in
 * sessionStorage and sent only as a bearer header, never in a URL.
 */
import { byId } from './dom.js'

const POLL_MS = 2000
/** The chart's widest span: what the server keeps (SAMPLE_MS × points in server/observability/ops.ts). */
const WINDOW_MS = 10 * 60 * 1000
/** Its narrowest: a young server's line would otherwise hug the right edge. */
const MIN_SPAN_MS = 60 * 1000
const TOKEN_KEY = 'coedit-admin-token'
/** The chart's viewBox (web/status.html): 600 × 160, with the axis on the bottom line. */
const CHART_WIDTH = 600
const CHART_BASE = 158
const CHART_HEIGHT = 150

/** What this page reads of /status.json (the server sends more). */
interface RatePoint {
  t: number
  messagesIn: number
  messagesOut: number
}

interface RoomRow {
  name: string
  connections: number
  users: string[]
  userCount: number
}

interface StatusReport {
  time: number
  uptime: number
  ready: boolean
  /** The server has an admin token: asking for it can show more. */
  adminToken: boolean
  connections: number
  roomsLoaded: number
  /** Only to the admin token. */
  rooms?: RoomRow[]
  storage: { bytes: number | null }
  memory: { rss: number }
  rates: { points: RatePoint[] }
}

type State = 'live' | 'connecting' | 'offline'

function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`
}

function formatRate(n: number): string {
  return n >= 100 ? Math.round(n).toString() : (Math.round(n * 10) / 10).toString()
}

function formatUptime(s: number): string {
  const d = Math.floor(s / 86400)
  const h = Math.floor((s % 86400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m ${s % 60}s`
}

function setState(state: State, text: string): void {
  const el = byId('state')
  el.dataset['state'] = state
  el.textContent = text
}

function setText(id: string, text: string): void {
  byId(id).textContent = text
}

function drawChart(points: RatePoint[], now: number): void {
  const max = Math.max(1, ...points.map((p) => Math.max(p.messagesIn, p.messagesOut)))
  const span = Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, points.length > 0 ? now - points[0]!.t : 0))
  const line = (key: 'messagesIn' | 'messagesOut'): string => points.map((p) => {
    const x = Math.max(0, ((p.t - (now - span)) / span) * CHART_WIDTH)
    const y = CHART_BASE - (p[key] / max) * CHART_HEIGHT
    return `${x.toFixed(1)},${y.toFixed(1)}`
  }).join(' ')
  byId('line-in').setAttribute('points', line('messagesIn'))
  byId('line-out').setAttribute('points', line('messagesOut'))
  setText('chart-max', formatRate(max))
}

function roomRow(room: RoomRow): HTMLTableRowElement {
  const tr = document.createElement('tr')
  const more = room.userCount > room.users.length ? ` and ${room.userCount - room.users.length} more` : ''
  const cells = [room.name, String(room.connections), room.users.join(', ') + more]
  cells.forEach((text, i) => {
    const td = document.createElement('td')
    // textContent, never markup: room and people's names are whatever clients sent.
    td.textContent = text
    if (i === 1) td.className = 'num'
    tr.append(td)
  })
  tr.dataset['room'] = room.name
  return tr
}

function render(s: StatusReport): void {
  setText('connections', String(s.connections))
  setText('rooms-loaded', String(s.roomsLoaded))
  const last = s.rates.points[s.rates.points.length - 1]
  setText('rate-in', last ? formatRate(last.messagesIn) : '0')
  setText('rate-out', last ? formatRate(last.messagesOut) : '0')
  setText('storage', formatBytes(s.storage.bytes))
  setText('rss', formatBytes(s.memory.rss))
  setText('uptime', formatUptime(s.uptime))
  setText('updated', new Date(s.time).toLocaleTimeString())
  drawChart(s.rates.points, s.time)
  const rooms = s.rooms
  byId('rooms-panel').hidden = rooms === undefined
  byId('rooms-locked').hidden = rooms !== undefined
  byId('login').hidden = rooms !== undefined || !s.adminToken
  byId('locked-no-token').hidden = rooms !== undefined || s.adminToken
  if (rooms !== undefined) {
    byId('login-error').hidden = true
    setText('rooms-shown', rooms.length < s.roomsLoaded ? `(busiest ${rooms.length} of ${s.roomsLoaded})` : '')
    byId('rooms').replaceChildren(...rooms.map(roomRow))
    byId('no-rooms').hidden = rooms.length > 0
  }
  setState(s.ready ? 'live' : 'offline', s.ready ? 'Live' : 'Shutting down')
}

let timer: ReturnType<typeof setTimeout> | undefined

async function poll(): Promise<void> {
  clearTimeout(timer)
  const token = sessionStorage.getItem(TOKEN_KEY)
  try {
    const res = await fetch('/status.json', { headers: token ? { Authorization: `Bearer ${token}` } : {}, cache: 'no-store' })
    if ((res.status === 401 || res.status === 429) && token) {
      // A wrong token: forget it, say so, and show the figures anyone may see.
      sessionStorage.removeItem(TOKEN_KEY)
      const error = byId('login-error')
      error.textContent = res.status === 429 ? 'Too many wrong tokens: try again in a minute.' : 'That token was not accepted.'
      error.hidden = false
      timer = setTimeout(poll, 0)
      return
    }
    if (!res.ok) throw new Error(`HTTP ${res.status}`)
    render((await res.json()) as StatusReport)
    byId('content').hidden = false
  } catch {
    setState('offline', 'Server unreachable, retrying')
  }
  timer = setTimeout(poll, POLL_MS)
}

function start(): void {
  // A token in the fragment (#token=...) is never sent to the server or logged; take it, then hide it.
  const fragment = new URLSearchParams(location.hash.slice(1)).get('token')
  if (fragment) {
    sessionStorage.setItem(TOKEN_KEY, fragment)
    history.replaceState(null, '', location.pathname)
  }
  const input = byId<HTMLInputElement>('token')
  byId('login').addEventListener('submit', (e) => {
    e.preventDefault()
    sessionStorage.setItem(TOKEN_KEY, input.value)
    input.value = ''
    void poll()
  })
  void poll()
}

start()
