/**
 * Cluster mode with a store or bus that is not there: `coedit serve` exits 1 promptly
 * with one line on stderr, and no password from the connection strings appears anywhere
 * (before, an unreachable Redis printed its URL, password and all, and the process hung
 * on ioredis' reconnect timer). Run through the real CLI in a child process.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Socket } from 'node:net'
import { redactUrl, Redactor } from '../server/base/redact.js'
import { runCli } from './helpers/child-server.js'
import { POSTGRES_URL, clusterServicesMissing, dropSchema, freePort, uniqueNames } from './helpers/services.js'

/** Longer than any startup timeout (5 s each) plus tsx's start on a loaded machine; a hang fails here. */
const HANG = 40_000

test('redactUrl and Redactor hide passwords, lone user names and secret query values', () => {
  assert.equal(redactUrl('redis://:hunter22@cache:6379/0'), 'redis://:***@cache:6379/0')
  assert.equal(redactUrl('postgres://coedit:s%40cret@db/coedit?sslmode=require&sslpassword=pw123'), 'postgres://coedit:***@db/coedit?sslmode=require&sslpassword=***')
  assert.equal(redactUrl('https://tok_abcdef@hooks.example.com/x?key=k123&room=1'), 'https://***@hooks.example.com/x?key=***&room=1')
  assert.equal(redactUrl('rediss://cache.example.com:6380'), 'rediss://cache.example.com:6380')
  assert.equal(redactUrl('host=db user=coedit password=hunter22 dbname=x'), 'host=db user=coedit password=*** dbname=x')
  const r = new Redactor(['redis://:hunter22@cache:6379', 'postgres://coedit:s%40cret@db/x'])
  assert.equal(
    r.text('connect to redis://:hunter22@cache:6379 failed: auth hunter22 / s@cret / s%40cret'),
    'connect to redis://:***@cache:6379 failed: auth *** / *** / ***',
  )
})

function checkOneLine(res: { code: number | null; stdout: string; stderr: string }, secrets: string[], what: RegExp): void {
  assert.equal(res.code, 1, res.stderr)
  const lines = res.stderr.trim().split('\n')
  assert.equal(lines.length, 1, `one line on stderr: ${res.stderr}`)
  assert.match(lines[0]!, what)
  assert.match(lines[0]!, /\*\*\*/, 'the password is shown masked')
  for (const secret of secrets) {
    assert.ok(!res.stderr.includes(secret) && !res.stdout.includes(secret), `${secret} printed: ${res.stderr}${res.stdout}`)
  }
}

/** A port that accepts TCP connections and never says a word (a firewall, a hung server). */
async function silentPort(t: { after: (fn: () => Promise<void>) => void }): Promise<number> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return (server.address() as { port: number }).port
}

for (const kind of ['refused', 'silent'] as const) {
  test(`a PostgreSQL that is ${kind === 'refused' ? 'not listening' : 'silent'} at startup: exit 1, one line, no password`, async (t) => {
    const pgPort = kind === 'refused' ? await freePort() : await silentPort(t)
    const redisPort = await freePort()
    const started = Date.now()
    const res = await runCli([
      'serve', '--port', '0', '--postgres', `postgres://coedit:PgSecret123@127.0.0.1:${pgPort}/coedit`, '--redis', `redis://:RedisSecret123@127.0.0.1:${redisPort}`,
    ], {}, HANG)
    t.diagnostic(`exited after ${Date.now() - started} ms (including node + tsx start-up)`)
    checkOneLine(res, ['PgSecret123', 'RedisSecret123'], kind === 'refused' ? /PostgreSQL .*ECONNREFUSED/ : /PostgreSQL .*timeout/i)
  })

  test(`a Redis that is ${kind === 'refused' ? 'not listening' : 'silent'} at startup: exit 1, one line, no password (it used to hang)`, async (t) => {
    const missing = await clusterServicesMissing()
    if (missing) return t.skip(missing)
    const { schema } = uniqueNames('unreachable_redis')
    t.after(() => dropSchema(schema))
    const redisPort = kind === 'refused' ? await freePort() : await silentPort(t)
    const started = Date.now()
    const res = await runCli([
      'serve', '--port', '0', '--postgres', POSTGRES_URL, '--postgres-schema', schema, '--redis', `redis://:RedisSecret123@127.0.0.1:${redisPort}`,
    ], {}, HANG)
    t.diagnostic(`exited after ${Date.now() - started} ms (including node + tsx start-up)`)
    checkOneLine(res, ['RedisSecret123'], kind === 'refused' ? /Redis .*ECONNREFUSED/ : /Redis .*(timeout|timed out|no answer)/i)
  })
}
