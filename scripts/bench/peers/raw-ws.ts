/**
 * The transport ceiling: a WebSocket server that relays every binary message to the
 * other connections of its room (the URL path) and does no CRDT work at all.
 */
import { createServer } from 'node:http'
import { WebSocketServer, type WebSocket } from 'ws'

const port = Number(process.argv[2] ?? 0)
const rooms = new Map<string, Set<WebSocket>>()
const http = createServer((_req, res) => res.end('raw ws'))
const wss = new WebSocketServer({ server: http, perMessageDeflate: false })

wss.on('connection', (ws, req) => {
  const name = (req.url ?? '/').split('?')[0]!
  let room = rooms.get(name)
  if (!room) rooms.set(name, room = new Set())
  room.add(ws)
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    for (const peer of room!) if (peer !== ws) peer.send(data, { binary: isBinary })
  })
  ws.on('close', () => {
    room!.delete(ws)
    if (room!.size === 0) rooms.delete(name)
  })
})

http.listen(port, '127.0.0.1')
process.on('SIGTERM', () => process.exit(0))
