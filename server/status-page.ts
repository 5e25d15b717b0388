/**
 * The /status page: a self-contained HTML shell, stylesheet and script served by the
 * server itself (no build step, nothing from a CDN), in the editor's look. The shell
 * holds no data: the script polls /status.json. Anyone sees the aggregate figures; room
 * names and people need the admin token (asked for on the page, kept in sessionStorage,
 * sent as a bearer header, never in a URL).
 */

export const STATUS_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Status · coedit</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/status/status.css">
<script type="module" src="/status/status.js"></script>
</head>
<body>
<header class="bar">
  <div class="brand"><a href="/" title="Open a new document">coedit</a> <span class="sep" aria-hidden="true">/</span> <span class="room">status</span></div>
  <div class="status" role="status" aria-live="polite"><span id="state" data-state="connecting">Loading…</span></div>
</header>
<main class="page">
  <div id="content" hidden>
    <section class="cards" aria-label="Summary">
      <div class="card"><div class="label">Connections</div><div class="value" id="connections">–</div></div>
      <div class="card"><div class="label">Rooms loaded</div><div class="value" id="rooms-loaded">–</div></div>
      <div class="card"><div class="label">Messages/s in</div><div class="value" id="rate-in">–</div></div>
      <div class="card"><div class="label">Messages/s out</div><div class="value" id="rate-out">–</div></div>
      <div class="card"><div class="label">Storage</div><div class="value" id="storage">–</div></div>
      <div class="card"><div class="label">Memory (RSS)</div><div class="value" id="rss">–</div></div>
    </section>
    <section class="panel">
      <h2>Messages per second, up to the last 10 minutes</h2>
      <svg id="chart" viewBox="0 0 600 160" preserveAspectRatio="none" role="img" aria-label="Messages per second received and sent">
        <line x1="0" y1="159.5" x2="600" y2="159.5" class="axis"></line>
        <polyline id="line-in" class="line-in" points=""></polyline>
        <polyline id="line-out" class="line-out" points=""></polyline>
      </svg>
      <div class="legend"><span class="key key-in"></span>received <span class="key key-out"></span>sent <span class="muted">· peak <span id="chart-max">0</span>/s</span></div>
    </section>
    <section class="panel" id="rooms-locked" hidden>
      <h2>Rooms</h2>
      <p id="locked-no-token" class="muted" hidden>Room names and people are listed only to the admin token; this server has none (--admin-token).</p>
      <form id="login" hidden>
        <label for="token">Admin token to list rooms and people</label>
        <input id="token" type="password" autocomplete="off" required>
        <button type="submit">Show rooms</button>
        <p id="login-error" class="error" hidden>That token was not accepted.</p>
      </form>
    </section>
    <section class="panel" id="rooms-panel" hidden>
      <h2>Rooms <span id="rooms-shown" class="muted"></span></h2>
      <table>
        <thead><tr><th scope="col">Room</th><th scope="col" class="num">Connections</th><th scope="col">People</th></tr></thead>
        <tbody id="rooms"></tbody>
      </table>
      <p id="no-rooms" class="muted" hidden>No room is loaded.</p>
    </section>
    <p class="muted">Uptime <span id="uptime">–</span> · updated <span id="updated">–</span></p>
  </div>
</main>
<noscript><p class="noscript">The status page needs JavaScript.</p></noscript>
</body>
</html>
`

export const STATUS_CSS = `:root {
  --fg: #1f2937; --muted: #6b7280; --line: #d1d5db; --bg: #f9fafb; --paper: #ffffff;
  --accent: #2563eb; --ok: #15803d; --warn: #b45309; --bad: #b91c1c; --out: #9333ea;
  color-scheme: light;
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
html, body { margin: 0; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif; color: var(--fg); background: var(--bg); }
.bar { display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between; gap: 0.25rem 1rem; padding: 0.5rem 1rem; background: var(--paper); border-bottom: 1px solid var(--line); }
.brand { font-weight: 600; }
.brand a { color: var(--accent); text-decoration: none; }
.brand a:hover, .brand a:focus-visible { text-decoration: underline; }
.room { font-weight: 500; }
.sep, .muted { color: var(--muted); }
.sep { margin: 0 0.25rem; }
.status { font-size: 0.9rem; white-space: nowrap; }
#state[data-state="live"] { color: var(--ok); }
#state[data-state="connecting"] { color: var(--warn); }
#state[data-state="offline"] { color: var(--bad); }
.page { max-width: 64rem; margin: 0 auto; padding: 1rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(9.5rem, 1fr)); gap: 0.75rem; }
.card, .panel, form { background: var(--paper); border: 1px solid var(--line); border-radius: 6px; padding: 0.75rem 1rem; }
.label { color: var(--muted); font-size: 0.85rem; }
.value { font-size: 1.5rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.panel { margin-top: 1rem; }
h2 { font-size: 1rem; margin: 0 0 0.5rem; }
svg { width: 100%; height: 160px; display: block; }
.axis { stroke: var(--line); stroke-width: 1; }
polyline { fill: none; stroke-width: 2; vector-effect: non-scaling-stroke; }
.line-in { stroke: var(--accent); }
.line-out { stroke: var(--out); }
.legend { font-size: 0.85rem; margin-top: 0.25rem; }
.key { display: inline-block; width: 0.8rem; height: 0.2rem; vertical-align: middle; margin: 0 0.25rem 0 0.5rem; }
.key-in { background: var(--accent); }
.key-out { background: var(--out); }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 0.3rem 0.5rem; border-bottom: 1px solid var(--line); overflow-wrap: anywhere; }
th { font-weight: 500; color: var(--muted); font-size: 0.85rem; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
form { display: flex; flex-wrap: wrap; gap: 0.5rem; align-items: center; max-width: 32rem; }
input { font: inherit; padding: 0.3rem 0.5rem; border: 1px solid var(--line); border-radius: 4px; flex: 1; min-width: 12rem; }
button { font: inherit; padding: 0.3rem 0.8rem; border: 1px solid var(--accent); background: var(--accent); color: #fff; border-radius: 4px; cursor: pointer; }
.error { color: var(--bad); width: 100%; margin: 0; }
`

export const STATUS_JS = `const POLL_MS = 2000
const WINDOW_MS = 10 * 60 * 1000
const TOKEN_KEY = 'coedit-admin-token'
const $ = (id) => document.getElementById(id)

// A token in the fragment (#token=...) is never sent to the server or logged; take it, then hide it.
const fragment = new URLSearchParams(location.hash.slice(1))
if (fragment.get('token')) {
  sessionStorage.setItem(TOKEN_KEY, fragment.get('token'))
  history.replaceState(null, '', location.pathname)
}

function formatBytes(n) {
  if (n === null || n === undefined) return '–'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++ }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i]
}
function formatRate(n) { return n >= 100 ? Math.round(n).toString() : (Math.round(n * 10) / 10).toString() }
function formatUptime(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60)
  return d > 0 ? d + 'd ' + h + 'h' : h > 0 ? h + 'h ' + m + 'm' : m + 'm ' + (s % 60) + 's'
}
function setState(state, text) { $('state').dataset.state = state; $('state').textContent = text }

function drawChart(points, now) {
  const max = Math.max(1, ...points.map((p) => Math.max(p.messagesIn, p.messagesOut)))
  // A young server's line would hug the right edge of 10 minutes: show at least one minute, at most ten.
  const span = Math.min(WINDOW_MS, Math.max(60 * 1000, points.length > 0 ? now - points[0].t : 0))
  const line = (key) => points.map((p) => {
    const x = Math.max(0, (p.t - (now - span)) / span * 600)
    const y = 158 - p[key] / max * 150
    return x.toFixed(1) + ',' + y.toFixed(1)
  }).join(' ')
  $('line-in').setAttribute('points', line('messagesIn'))
  $('line-out').setAttribute('points', line('messagesOut'))
  $('chart-max').textContent = formatRate(max)
}

function render(s) {
  $('connections').textContent = s.connections
  $('rooms-loaded').textContent = s.roomsLoaded
  const last = s.rates.points[s.rates.points.length - 1]
  $('rate-in').textContent = last ? formatRate(last.messagesIn) : '0'
  $('rate-out').textContent = last ? formatRate(last.messagesOut) : '0'
  $('storage').textContent = formatBytes(s.storage.bytes)
  $('rss').textContent = formatBytes(s.memory.rss)
  $('uptime').textContent = formatUptime(s.uptime)
  $('updated').textContent = new Date(s.time).toLocaleTimeString()
  drawChart(s.rates.points, s.time)
  const listed = Array.isArray(s.rooms)
  $('rooms-panel').hidden = !listed
  $('rooms-locked').hidden = listed
  $('login').hidden = listed || !s.adminToken
  $('locked-no-token').hidden = listed || s.adminToken
  if (!listed) {
    setState(s.ready ? 'live' : 'offline', s.ready ? 'Live' : 'Shutting down')
    return
  }
  $('login-error').hidden = true
  $('rooms-shown').textContent = s.rooms.length < s.roomsLoaded ? '(busiest ' + s.rooms.length + ' of ' + s.roomsLoaded + ')' : ''
  const body = $('rooms')
  body.replaceChildren(...s.rooms.map((r) => {
    const tr = document.createElement('tr')
    const more = r.userCount > r.users.length ? ' and ' + (r.userCount - r.users.length) + ' more' : ''
    const cells = [r.name, String(r.connections), r.users.join(', ') + more]
    cells.forEach((text, i) => {
      const td = document.createElement('td')
      td.textContent = text
      if (i === 1) td.className = 'num'
      tr.append(td)
    })
    tr.dataset.room = r.name
    return tr
  }))
  $('no-rooms').hidden = s.rooms.length > 0
  setState(s.ready ? 'live' : 'offline', s.ready ? 'Live' : 'Shutting down')
}

let timer
async function poll() {
  clearTimeout(timer)
  const token = sessionStorage.getItem(TOKEN_KEY)
  try {
    const res = await fetch('/status.json', { headers: token ? { Authorization: 'Bearer ' + token } : {}, cache: 'no-store' })
    if ((res.status === 401 || res.status === 429) && token) {
      // A wrong token: forget it, say so, and show the figures anyone may see.
      sessionStorage.removeItem(TOKEN_KEY)
      $('login-error').textContent = res.status === 429 ? 'Too many wrong tokens: try again in a minute.' : 'That token was not accepted.'
      $('login-error').hidden = false
      timer = setTimeout(poll, 0)
      return
    }
    if (!res.ok) throw new Error('HTTP ' + res.status)
    render(await res.json())
    $('content').hidden = false
  } catch {
    setState('offline', 'Server unreachable, retrying')
  }
  timer = setTimeout(poll, POLL_MS)
}

$('login').addEventListener('submit', (e) => {
  e.preventDefault()
  sessionStorage.setItem(TOKEN_KEY, $('token').value)
  $('token').value = ''
  void poll()
})
void poll()
`
