/**
 * Hocuspocus 4 as the bench runs it: `hocuspocus.mjs <port> <sqlite file>` (an empty
 * file name: no persistence). Default configuration otherwise (2 s store debounce).
 */
import { Server } from '@hocuspocus/server'
import { SQLite } from '@hocuspocus/extension-sqlite'

const port = Number(process.argv[2] ?? 0)
const database = process.argv[3] ?? ''
const server = new Server({
  port,
  address: '127.0.0.1',
  quiet: true,
  extensions: database ? [new SQLite({ database })] : [],
})
await server.listen()
