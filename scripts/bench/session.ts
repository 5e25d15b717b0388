/**
 * The "session" sweep: an hour of typing in one room, compressed into a replay, with
 * checkpoints along the way, so the curve shows what a long session costs as the document
 * and its history grow (not a bigger load: the rate stays the same throughout).
 *
 * Authors are full Yjs clients (they integrate each other's keystrokes, so positions are
 * real positions in the shared text): each keystroke is one update, mostly a character at
 * the author's cursor, sometimes a backspace or a jump of the cursor. Every `markEvery`-th
 * keystroke types a timestamp marker instead (`TS:…;`, see client.ts), which the readers
 * time; so latency is sampled on a tenth of the updates, and the markers make the text
 * grow faster than plain typing would.
 */
import * as Y from 'yjs'
import { marker, scanMarks } from './client.js'
import { closeAll, connectAll, withServer, type Metrics, type RunContext } from './scenarios.js'
import { diskBytes } from './servers.js'
import { Samples, prng, settle, sleep } from './stats.js'

export interface SessionSizes {
  /** Checkpoints, in simulated minutes since the start; the last one is the session's length. */
  minutes: number[]
  authors: number
  readers: number
  /** Keystrokes per second per author, in simulated time. */
  keysPerSecond: number
  /** Simulated seconds per real second. */
  speedup: number
  markEvery: number
  seed: number
}

/** One Metrics per checkpoint: latency and CPU over the window before it, memory and disk at it. */
export async function session(ctx: RunContext, sizes: SessionSizes): Promise<Metrics[]> {
  const { minutes, authors, readers, keysPerSecond, speedup, markEvery, seed } = sizes
  ctx.log(`  session: seed ${seed}`)
  return withServer(ctx, async (server, dataDir) => {
    const windows = minutes.map(() => new Samples())
    // Real times of the checkpoints so far. A checkpoint is taken when the authors have typed
    // its share of keystrokes, not at a wall-clock time: a load generator that falls behind
    // the replay's pace still puts the same typing in every window.
    const boundaries: number[] = []
    const windowOf = (sentAt: number): number => {
      const i = boundaries.findIndex((b) => sentAt <= b)
      return Math.min(i === -1 ? boundaries.length : i, minutes.length - 1)
    }
    let received = 0
    const readerClients = await connectAll(server.url, Array.from({ length: readers }, () => 'session'), ctx, () => ({
      onUpdate: (update) => {
        const now = performance.now()
        scanMarks(update, (_writer, _seq, sentAt) => {
          received++
          windows[windowOf(sentAt)]!.push(now - sentAt)
        })
      },
    }))
    const docs = Array.from({ length: authors }, () => new Y.Doc())
    const authorClients = await connectAll(server.url, docs.map(() => 'session'), ctx, (_room, i) => ({
      onUpdate: (update) => Y.applyUpdate(docs[i]!, update, 'remote'),
    }))
    docs.forEach((doc, i) => doc.on('update', (u: Uint8Array, origin: unknown) => {
      if (origin !== 'remote') authorClients[i]!.sendUpdate(u)
    }))
    const random = prng(seed)
    const total = Math.round(minutes[minutes.length - 1]! * 60 * keysPerSecond)
    const interval = 1000 / (keysPerSecond * speedup)
    let marks = 0
    let sent = 0
    let typed = 0
    const due = minutes.slice(0, -1).map((m) => Math.round(m * 60 * keysPerSecond) * authors)
    const type = async (i: number): Promise<void> => {
      const text = docs[i]!.getText('t')
      let cursor = 0
      await sleep(random() * interval)
      const t0 = performance.now()
      for (let k = 1; k <= total; k++) {
        cursor = Math.min(cursor, text.length)
        const r = random()
        if (k % markEvery === 0) {
          const m = marker(i, k)
          text.insert(cursor, m)
          cursor += m.length
          marks++
        } else if (r < 0.1 && cursor > 0) {
          text.delete(--cursor, 1)
        } else if (r < 0.13) {
          cursor = Math.floor(random() * (text.length + 1))
          typed++
          if (typed === due[boundaries.length]) snapshot()
          continue
        } else {
          text.insert(cursor++, r < 0.3 ? ' ' : String.fromCharCode(97 + Math.floor(r * 26)))
        }
        sent++
        typed++
        if (typed === due[boundaries.length]) snapshot()
        await sleep(Math.max(0, t0 + k * interval - performance.now()))
      }
    }
    const checkpoints: Array<{ cpu: number; rssMB: number; peakRssMB: number; storedMB: number | null; sent: number }> = []
    function snapshot(): void {
      boundaries.push(performance.now())
      checkpoints.push({
        cpu: server.cpuSeconds(), rssMB: server.rssKB() / 1024, peakRssMB: server.peakRssKB() / 1024,
        storedMB: ctx.spec.persistent ? diskBytes(dataDir) / (1 << 20) : null, sent,
      })
    }
    server.resetCpu()
    await Promise.all(docs.map((_, i) => type(i)))
    await settle(() => received, () => received >= marks * readers, ctx.sizes.idleMs, ctx.sizes.drainMs)
    snapshot()
    closeAll([...readerClients, ...authorClients])
    return checkpoints.map((c, i) => {
      const prev = i > 0 ? checkpoints[i - 1]! : { cpu: 0, sent: 0 }
      const [p50, p99] = windows[i]!.quantiles([0.5, 0.99])
      const updates = c.sent - prev.sent
      return {
        p50, p99, cpu: c.cpu - prev.cpu, updates, rssMB: c.rssMB, peakRssMB: c.peakRssMB, storedMB: c.storedMB,
        delivered: marks * readers > 0 ? received / (marks * readers) : null,
        docChars: i === checkpoints.length - 1 ? docs[0]!.getText('t').length : null,
      }
    })
  })
}
