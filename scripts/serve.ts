/**
 * `coedit serve`: runs the server until SIGTERM/SIGINT, then stores everything and exits 0.
 * Bad options are UsageErrors (exit 2) from parseServeArgs, before anything starts.
 */
import { parseServeArgs, serveHelp } from '../server/config.js'
import { startServer } from '../server/server.js'
import { createLogger } from '../server/log.js'
import { packageVersion } from '../server/http/paths.js'

export async function serve(argv: string[]): Promise<number> {
  const { help, version, ...config } = parseServeArgs(argv, process.env)
  if (help) {
    console.log(serveHelp())
    return 0
  }
  if (version) {
    console.log(packageVersion())
    return 0
  }
  const log = createLogger(config.logLevel)
  const server = await startServer({ ...config, storage: 'leveldb', logger: log })
  await new Promise<void>((resolve) => {
    let stopping = false
    const stop = (signal: string): void => {
      if (stopping) {
        log.warn({ event: 'forced_exit', signal }, 'second signal, exiting without waiting')
        process.exit(1)
      }
      stopping = true
      log.info({ event: 'shutdown', signal }, 'shutting down')
      server.close().then(resolve, (err: unknown) => {
        log.error({ event: 'shutdown_failed', err: String(err) }, 'shutdown failed')
        process.exitCode = 1
        resolve()
      })
    }
    process.on('SIGTERM', () => stop('SIGTERM'))
    process.on('SIGINT', () => stop('SIGINT'))
  })
  return process.exitCode === 1 ? 1 : 0
}
