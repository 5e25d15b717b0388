/** Reads Prometheus text exposition, for tests that check metric values. */

/** `name{a="b",c="d"}` → value; label order as exposed. Comments and blank lines are skipped. */
export function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?)\s+(\S+)(?:\s+\d+)?$/.exec(line)
    if (!m) throw new Error(`not an exposition line: ${line}`)
    samples.set(m[1]!, Number(m[2]))
  }
  return samples
}

export async function scrape(httpUrl: string, headers: Record<string, string> = {}): Promise<Map<string, number>> {
  const res = await fetch(`${httpUrl}/metrics`, { headers })
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`)
  return parseExposition(await res.text())
}

/** A sample's value, 0 if absent (a labelled counter has no sample until first counted). */
export const value = (samples: Map<string, number>, key: string): number => samples.get(key) ?? 0

/** Scrapes until `ready` holds for the samples (counters are updated a moment after the event); returns them. */
export async function scrapeUntil(httpUrl: string, ready: (samples: Map<string, number>) => boolean, message: string, timeout = 20_000): Promise<Map<string, number>> {
  let last = new Map<string, number>()
  const { waitFor } = await import('./index.js')
  await waitFor(async () => {
    last = await scrape(httpUrl)
    return ready(last)
  }, { timeout, message })
  return last
}

/**
 * The sum of the samples of `name` whose labels include `labels` (every sample of it when
 * none are given): `total(s, 'coedit_connections')` counts both protocols.
 */
export function total(samples: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  let sum = 0
  for (const [key, v] of samples) {
    const brace = key.indexOf('{')
    if ((brace === -1 ? key : key.slice(0, brace)) !== name) continue
    const has = new Map([...key.slice(brace + 1).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]))
    if (Object.entries(labels).every(([k, want]) => has.get(k) === want)) sum += v
  }
  return sum
}
