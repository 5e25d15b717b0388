/**
 * A tiny SVG line chart for the bench's sweeps: one panel per metric, a log x axis, one
 * polyline per server in every panel (empty when the metric does not apply to it), so the
 * servers are compared on the same axes. Written by hand: a chart library would be the
 * bench's largest dependency for a few dozen lines of output.
 */

export interface Series {
  name: string
  /** [x, y] pairs; y null: no value at that x (the line skips it); `open`: drawn hollow (a point to read with care). */
  points: Array<[number, number | null] | [number, number | null, boolean]>
}

export interface Panel {
  key: string
  label: string
  /** Latency and sizes span decades across a sweep: a log y axis keeps the small end readable. */
  logY: boolean
  series: Series[]
}

export interface Chart {
  title: string
  subtitle: string
  xLabel: string
  panels: Panel[]
}

const W = 420
const H = 260
const M = { left: 56, right: 12, top: 28, bottom: 40 }
const COLUMNS = 2
const HEADER = 64
const PALETTE = ['#d62728', '#1f77b4', '#2ca02c', '#7f7f7f', '#9467bd', '#ff7f0e', '#8c564b']

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

function fmt(v: number): string {
  if (v === 0) return '0'
  const a = Math.abs(v)
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`
  return String(+v.toPrecision(a < 1 ? 2 : 3))
}

/** Maps [lo, hi] (log10 if `log`) onto [a, b]. */
function scale(lo: number, hi: number, a: number, b: number, log: boolean): (v: number) => number {
  const f = log ? Math.log10 : (v: number): number => v
  const l = f(lo)
  const span = f(hi) - l || 1
  return (v) => a + ((f(v) - l) / span) * (b - a)
}

/** 1-2-5 ticks of a log axis inside [lo, hi]; at least the two ends. */
function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = []
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const t = m * 10 ** e
      if (t >= lo && t <= hi) ticks.push(t)
    }
  }
  return ticks.length >= 2 ? ticks : [lo, hi]
}

/** 0 and 1-2-5 steps up to `hi`, about four of them. */
function linearTicks(hi: number): number[] {
  const raw = hi / 4
  const e = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * e).find((s) => s >= raw) ?? raw
  const ticks: number[] = []
  for (let t = 0; t <= hi + 1e-9; t += step) ticks.push(t)
  return ticks
}

function panelSvg(panel: Panel, xs: number[], ox: number, oy: number, xLabel: string): string {
  const ys = panel.series.flatMap((s) => s.points.map((p) => p[1])).filter((y): y is number => y !== null && Number.isFinite(y) && (!panel.logY || y > 0))
  const out = [`<g transform="translate(${ox},${oy})" data-metric="${esc(panel.key)}">`,
    `<text x="${W / 2}" y="16" text-anchor="middle" font-weight="bold">${esc(panel.label)}</text>`]
  const [x0, x1] = [Math.min(...xs) / 1.3, Math.max(...xs) * 1.3]
  const sx = scale(x0, x1, M.left, W - M.right, true)
  let yLo = 0
  let yHi = 1
  if (ys.length > 0) {
    yLo = panel.logY ? Math.min(...ys) / 1.5 : 0
    yHi = panel.logY ? Math.max(...ys) * 1.5 : Math.max(...ys) * 1.15 || 1
  }
  const sy = scale(yLo, yHi, H - M.bottom, M.top, panel.logY)
  out.push(`<rect x="${M.left}" y="${M.top}" width="${W - M.left - M.right}" height="${H - M.top - M.bottom}" fill="none" stroke="#999"/>`)
  for (const x of xs) {
    out.push(`<line x1="${sx(x).toFixed(1)}" x2="${sx(x).toFixed(1)}" y1="${M.top}" y2="${H - M.bottom}" stroke="#eee"/>`,
      `<text x="${sx(x).toFixed(1)}" y="${H - M.bottom + 14}" text-anchor="middle">${fmt(x)}</text>`)
  }
  const yTicks = panel.logY ? logTicks(yLo, yHi) : linearTicks(yHi)
  for (const y of yTicks) {
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${sy(y).toFixed(1)}" y2="${sy(y).toFixed(1)}" stroke="#eee"/>`,
      `<text x="${M.left - 4}" y="${(sy(y) + 4).toFixed(1)}" text-anchor="end">${fmt(y)}</text>`)
  }
  out.push(`<text x="${W / 2}" y="${H - 8}" text-anchor="middle">${esc(xLabel)}${panel.logY ? ' (log y)' : ''}</text>`)
  panel.series.forEach((s, i) => {
    const pts = s.points.filter((p): p is [number, number] | [number, number, boolean] => p[1] !== null && Number.isFinite(p[1]) && (!panel.logY || p[1] > 0))
    const color = PALETTE[i % PALETTE.length]!
    out.push(`<polyline data-server="${esc(s.name)}" fill="none" stroke="${color}" stroke-width="${i === 0 ? 2.5 : 1.5}" points="${pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`)
    for (const [x, y, open] of pts) {
      out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="${open ? 4 : 2.5}" fill="${open ? 'white' : color}" stroke="${color}"/>`)
    }
  })
  out.push('</g>')
  return out.join('\n')
}

/** The whole chart as an SVG document. The first series is drawn thicker (coedit). */
export function renderChart(chart: Chart): string {
  const xs = [...new Set(chart.panels.flatMap((p) => p.series.flatMap((s) => s.points.map((pt) => pt[0]))))].filter((x) => x > 0)
  if (xs.length === 0) xs.push(1)
  const rows = Math.ceil(chart.panels.length / COLUMNS)
  const width = W * COLUMNS
  const height = HEADER + rows * H
  const names = chart.panels[0]?.series.map((s) => s.name) ?? []
  const legend = names.map((n, i) => `<g transform="translate(${12 + i * 200},52)"><rect width="14" height="4" y="-4" fill="${PALETTE[i % PALETTE.length]}"/><text x="18">${esc(n)}</text></g>`)
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="12" y="18" font-size="14" font-weight="bold">${esc(chart.title)}</text>`,
    `<text x="12" y="34">${esc(chart.subtitle)}</text>`,
    ...legend,
    ...chart.panels.map((p, i) => panelSvg(p, xs, (i % COLUMNS) * W, HEADER + Math.floor(i / COLUMNS) * H, chart.xLabel)),
    '</svg>',
    '',
  ].join('\n')
}
