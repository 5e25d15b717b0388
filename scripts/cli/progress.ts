/** A progress bar on stderr for operations over many rooms; silent when stderr is not a terminal. */
import cliProgress from 'cli-progress'
import type { CliIO } from './io.js'
import { printable } from './printable.js'

export interface Progress {
  start(total: number): void
  tick(label?: string): void
  stop(): void
}

const SILENT: Progress = { start() {}, tick() {}, stop() {} }

export function progress(io: CliIO, title: string): Progress {
  if (!io.stderr.isTTY) return SILENT
  let bar: cliProgress.SingleBar | undefined
  return {
    start(total) {
      bar = new cliProgress.SingleBar({
        stream: io.stderr as NodeJS.WritableStream,
        format: `${title} [{bar}] {value}/{total} rooms {room}`,
        hideCursor: true,
        clearOnComplete: true,
      }, cliProgress.Presets.shades_classic)
      bar.start(total, 0, { room: '' })
    },
    tick(label = '') {
      const shown = printable(label)
      bar?.increment(1, { room: shown.length > 30 ? `${shown.slice(0, 29)}…` : shown })
    },
    stop() {
      bar?.stop()
      bar = undefined
    },
  }
}
