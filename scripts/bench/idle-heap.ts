/**
 * Live heap per idle connection (a measurement, not a test): starts a server on the memory
 * store in this process and opens raw `ws` clients from a child process, so that only the
 * server's heap is counted. Each client waits for its first message (it has joined its
 * room). Prints the heap after a full GC: the server alone, with one client per room (the
 * rooms' cost), and with every client. With `hocuspocus`, the clients are Hocuspocus sockets
 * with no document open yet (connected to the root path; the server sends them nothing, so
 * each waits for its socket to open) and the rooms play no part.
 *
 *   node --expose-gc --import tsx scripts/bench/idle-heap.ts [clients=2000] [rooms=200] [hocuspocus]
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { startServer } from '../../server/index.js'

const clients = Number(process.argv[2] ?? 2000)
const rooms = Number(process.argv[3] ?? 200)
const hocuspocus = process.argv[4] === 'hocuspocus'
const gc = (globalThis as { gc?: () => void }).gc
if (!gc) throw new Error('run with node --expose-gc')

// The clients, in plain JavaScript for `node -e`: each line "from to" opens clients
// from..to-1 (client i to room i % rooms) and answers "ok" once each has had a message.
const CLIENTS = `
const WebSocket = require('ws')
const [url, rooms, hocuspocus] = process.argv.slice(1)
const open = []
require('node:readline').createInterface({ input: process.stdin }).on('line', async (line) => {
  const [from, to] = line.split(' ').map(Number)
  const waits = []
  for (let i = from; i < to; i++) {
    const ws = new WebSocket(hocuspocus ? url : url + '/r' + (i % Number(rooms)))
    open.push(ws)
    waits.push(new Promise((resolve, reject) => { ws.once(hocuspocus ? 'open' : 'message', resolve); ws.once('error', reject) }))
  }
  await Promise.all(waits)
  process.stdout.write('ok\\n')
})
`

async function heap(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc!()
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return process.memoryUsage().heapUsed
}

const server = await startServer({ storage: 'memory' })
const child = spawn(process.execPath, ['-e', CLIENTS, server.url, String(rooms), hocuspocus ? '1' : ''], { stdio: ['pipe', 'pipe', 'inherit'] })
const answers = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
const open = async (from: number, to: number): Promise<void> => {
  child.stdin.write(`${from} ${to}\n`)
  const answer = await answers.next()
  if (answer.value !== 'ok') throw new Error(`clients: ${String(answer.value)}`)
}

const kb = (bytes: number): string => (bytes / 1024).toFixed(2)
const empty = await heap()
await open(0, rooms)
const withRooms = await heap()
await open(rooms, clients)
const full = await heap()
console.log(JSON.stringify({
  clients,
  rooms,
  hocuspocus,
  heapEmptyMB: +(empty / 2 ** 20).toFixed(1),
  kbPerClientAll: +kb((full - empty) / clients),
  kbPerRoomWithItsFirstClient: +kb((withRooms - empty) / rooms),
  kbPerFurtherClient: +kb((full - withRooms) / (clients - rooms)),
}))
child.kill()
await server.close()
