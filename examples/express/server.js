/**
 * coedit inside an Express app, on the app's own HTTP server and port:
 *
 *   - the app's routes answer as usual (`GET /`, `GET /api/hello`);
 *   - y-websocket providers connect to `ws://HOST:3000/collab` (room `notes` is
 *     `/collab/notes`), Hocuspocus providers to `ws://HOST:3000/collab` itself;
 *   - coedit's probes, metrics, status page (and, with ADMIN_TOKEN, its admin API) are
 *     mounted with `coedit.handleRequest`; everything else falls through to the app;
 *   - the app deletes a room through `coedit.rooms`.
 *
 * Run it: `npm install && npm start` (DATA_DIR, PORT, ADMIN_TOKEN from the environment).
 * test/attach.test.ts runs `start()` from this file.
 */
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import express from 'express'
import { startServer } from 'coedit'

export async function start({ port = 3000, host = '127.0.0.1', dataDir, adminToken } = {}) {
  const app = express()
  const http = createServer(app)
  // Attach before or after listen: coedit only adds an 'upgrade' listener for /collab.
  const coedit = await startServer({ server: http, path: '/collab', dataDir, adminToken })

  app.get('/', (_req, res) => res.type('text').send('my app\n'))
  app.get('/api/hello', (_req, res) => res.json({ hello: 'world' }))
  // A room is the app's to delete: its clients are closed with 4410, its data goes.
  app.delete('/api/rooms/:room', async (req, res) => {
    const deleted = await coedit.rooms.delete(req.params.room)
    res.status(deleted.existed ? 204 : 404).end()
  })
  // /healthz, /readyz, /metrics, /status, /status.json, /admin/...; anything else: next().
  app.use(coedit.handleRequest)

  await new Promise((resolve) => http.listen(port, host, resolve))
  return { app, http, coedit }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { http, coedit } = await start({
    port: Number(process.env.PORT ?? 3000),
    dataDir: process.env.DATA_DIR ?? './data',
    adminToken: process.env.ADMIN_TOKEN,
  })
  console.log(`app on http://localhost:${http.address().port}, collaboration on ${coedit.url}`)
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.once(signal, async () => {
      await coedit.close() // closes coedit's connections and storage; the app's server is ours to close
      http.close()
    })
  }
}
