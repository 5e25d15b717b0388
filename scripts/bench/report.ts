/** The human table: one row per metric, one column per server, ratios against the peers. */
import type { Metrics } from './scenarios.js'
import type { ServerKind } from './servers.js'
import { STAGES } from '../../server/base/path-trace.js'

export interface Aggregate {
  scenario: string
  id: string
  params: Record<string, number>
  server: ServerKind
  label: string
  reps: number
  failed: number
  median: Metrics
  min: Metrics
  max: Metrics
}

interface Row {
  id: string
  key: string
  label: string
  better: 'lower' | 'higher'
  digits: number
  /** Compared with the raw ws ceiling too. */
  ceiling?: boolean
  /** Show the worst repetition, not the median: one failure in three must not hide. */
  worst?: boolean
}

function rowsFor(ids: string[]): Row[] {
  const rows: Row[] = []
  for (const id of ids) {
    if (id.startsWith('S1/')) {
      const r = id.slice(3)
      rows.push(
        { id, key: 'delivered', label: `S1 ${r} readers: delivered ratio`, better: 'higher', digits: 3 },
        { id, key: 'p50', label: `S1 ${r} readers: p50 latency ms`, better: 'lower', digits: 1 },
        { id, key: 'p99', label: `S1 ${r} readers: p99 latency ms`, better: 'lower', digits: 1, ceiling: true },
        { id, key: 'cpu', label: `S1 ${r} readers: server CPU s`, better: 'lower', digits: 2 },
        { id, key: 'peakRssMB', label: `S1 ${r} readers: peak RSS MB`, better: 'lower', digits: 0 },
      )
    } else if (id === 'S2') {
      rows.push(
        { id, key: 'delivered', label: 'S2: delivered ratio', better: 'higher', digits: 3 },
        { id, key: 'p50', label: 'S2: p50 latency ms', better: 'lower', digits: 1 },
        { id, key: 'p99', label: 'S2: p99 latency ms', better: 'lower', digits: 1 },
        { id, key: 'cpu', label: 'S2: server CPU s', better: 'lower', digits: 2 },
        { id, key: 'peakRssMB', label: 'S2: peak RSS MB', better: 'lower', digits: 0 },
      )
    } else if (id === 'S3') {
      rows.push(
        { id, key: 'rssPerConnKB', label: 'S3: RSS per idle connection KB', better: 'lower', digits: 1 },
        { id, key: 'connectSeconds', label: 'S3: time to connect all s', better: 'lower', digits: 2 },
      )
    } else if (id === 'S4') {
      rows.push(
        { id, key: 'coldLoadMs', label: 'S4: cold load after restart ms', better: 'lower', digits: 0 },
        { id, key: 'storedMB', label: 'S4: stored on disk MB', better: 'lower', digits: 2 },
        { id, key: 'historyMB', label: 'S4: of which the history log MB (uncompressed)', better: 'lower', digits: 2 },
        { id, key: 'documentMB', label: 'S4: the document itself MB (its state as one update)', better: 'lower', digits: 2 },
      )
    } else if (id === 'S5') {
      rows.push(
        { id, key: 'throughput', label: 'S5: updates/s delivered to all readers', better: 'higher', digits: 0, ceiling: true },
        { id, key: 'delivered', label: 'S5: delivered ratio (after drain)', better: 'higher', digits: 3 },
        { id, key: 'cpu', label: 'S5: server CPU s', better: 'lower', digits: 2 },
        { id, key: 'cpuMsPerKUpdates', label: 'S5: server CPU ms per 1000 updates delivered to all', better: 'lower', digits: 0 },
        { id, key: 'peakRssMB', label: 'S5: peak RSS MB', better: 'lower', digits: 0 },
        { id, key: 'lost', label: 'S6: kill -9 mid-S5: updates seen then lost (worst repetition)', better: 'lower', digits: 0, worst: true },
      )
    }
  }
  return rows
}

function valueOf(a: Aggregate, row: Row): number | null | undefined {
  if (!row.worst) return a.median[row.key]
  return (row.better === 'lower' ? a.max : a.min)[row.key]
}

function fmt(v: number | null | undefined, digits: number): string {
  if (v === null || v === undefined) return '–'
  return v.toFixed(digits)
}

/** How many times better coedit is than `other` (>1 better, <1 worse). */
function advantage(coedit: number, other: number, better: 'lower' | 'higher'): number | null {
  if (better === 'lower') {
    if (coedit === 0) return other === 0 ? 1 : Infinity
    return other / coedit
  }
  if (other === 0) return coedit === 0 ? 1 : Infinity
  return coedit / other
}

function fmtRatio(r: number | null): string {
  if (r === null) return '–'
  if (!Number.isFinite(r)) return '∞'
  return `${r.toFixed(2)}x`
}

export function renderTable(aggregates: Aggregate[], servers: ServerKind[], info: Record<string, unknown>): string {
  const ids = [...new Set(aggregates.map((a) => a.id))]
  const byKey = new Map(aggregates.map((a) => [`${a.id}|${a.server}`, a]))
  const labels = servers.map((s) => aggregates.find((a) => a.server === s)?.label ?? s)
  const showSpread = aggregates.some((a) => a.reps > 1)
  // With the history window's off switch in the run (issue 18), one more column: its price.
  const window = servers.includes('coedit-nowindow')
  const header = ['metric', ...labels, 'coedit vs best peer', 'coedit vs raw ws', ...(window ? ['window on / off'] : [])]
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`]
  for (const row of rowsFor(ids)) {
    const cells: string[] = []
    let best: { value: number; server: ServerKind } | undefined
    const valueAt = (s: ServerKind): number | null | undefined => {
      const a = byKey.get(`${row.id}|${s}`)
      return a ? valueOf(a, row) : undefined
    }
    for (const s of servers) {
      const a = byKey.get(`${row.id}|${s}`)
      const v = valueAt(s)
      if (a && a.failed > 0 && a.failed === a.reps) { cells.push('failed'); continue }
      let cell = fmt(v, row.digits)
      if (showSpread && typeof v === 'number') {
        const lo = a!.min[row.key]
        const hi = a!.max[row.key]
        if (typeof lo === 'number' && typeof hi === 'number' && lo !== hi) cell += ` (${fmt(lo, row.digits)}–${fmt(hi, row.digits)})`
      }
      cells.push(cell)
      if (!s.startsWith('coedit') && s !== 'raw' && typeof v === 'number') {
        if (!best || (row.better === 'lower' ? v < best.value : v > best.value)) best = { value: v, server: s }
      }
    }
    const coedit = valueAt('coedit')
    const raw = valueAt('raw')
    const vsBest = typeof coedit === 'number' && best ? advantage(coedit, best.value, row.better) : null
    const vsRaw = row.ceiling && typeof coedit === 'number' && typeof raw === 'number' ? advantage(coedit, raw, row.better) : null
    const off = valueAt('coedit-nowindow')
    // A plain ratio of the values (not "times better"): 1.00 = the window costs nothing here.
    const onOff = window ? [typeof coedit === 'number' && typeof off === 'number' && off !== 0 ? (coedit / off).toFixed(2) : '–'] : []
    lines.push(`| ${[row.label, ...cells, fmtRatio(vsBest), fmtRatio(vsRaw), ...onOff].join(' | ')} |`)
  }
  const machine = `machine: ${String(info.cores)} cores, ${String(info.cpu)}, Node ${String(info.node)}, load average at start ${String(info.loadavg)}`
  return [
    ...lines,
    '',
    `Medians${showSpread ? ' (min–max over repetitions)' : ''}. "vs" columns: how many times better coedit is (>1 better, <1 worse); the best peer is the best of the other CRDT servers (not raw ws, not a coedit variant).`,
    machine,
  ].join('\n')
}

/**
 * --trace: where an update's time goes inside coedit (server/base/path-trace.ts), one column pair
 * per scenario and traced server; "client end-to-end" is what the bench's readers measured.
 */
export function renderPathTable(aggregates: Aggregate[]): string {
  const traced = aggregates.filter((a) => typeof a.median['path.total.p50'] === 'number')
  if (traced.length === 0) return 'path breakdown: no traced run (--trace applies to coedit in S1 and S2)'
  const header = ['stage', ...traced.flatMap((a) => [`${a.id} ${a.label} p50`, 'p99'])]
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`]
  const row = (label: string, key: (q: 'p50' | 'p99') => string): void => {
    lines.push(`| ${[label, ...traced.flatMap((a) => [fmt(a.median[key('p50')], 3), fmt(a.median[key('p99')], 3)])].join(' | ')} |`)
  }
  for (const stage of [...STAGES, 'total']) row(stage === 'total' ? 'server total (receive → write)' : stage, (q) => `path.${stage}.${q}`)
  row('client end-to-end', (q) => q)
  return [
    ...lines,
    '',
    'ms, medians over repetitions of each stage\'s p50 and p99 (a stage: from the mark before it; p99s do not add up). Stages: see server/base/path-trace.ts.',
  ].join('\n')
}
