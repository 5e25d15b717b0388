/**
 * The machine's PostgreSQL and Redis for cluster tests, each test run in its own
 * schema and key prefix. In CI these tests are mandatory: a missing service fails
 * them; elsewhere they skip with one line saying what enables them.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer, createConnection, type Server, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { Redis } from 'ioredis'

export const POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

/** Resolves to undefined when both services answer, else to the skip message (throws in CI). */
export async function clusterServicesMissing(): Promise<string | undefined> {
  const problems: string[] = []
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2000 })
  try {
    await client.connect()
    await client.query('SELECT 1')
  } catch (err) {
    problems.push(`PostgreSQL at ${POSTGRES_URL} (${(err as Error).message})`)
  } finally {
    await client.end().catch(() => {})
  }
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  redis.on('error', () => {})
  try {
    await redis.connect()
    await redis.ping()
  } catch (err) {
    problems.push(`Redis at ${REDIS_URL} (${(err as Error).message})`)
  } finally {
    redis.disconnect()
  }
  if (problems.length === 0) return undefined
  const message = `cluster tests need ${problems.join(' and ')}; start them or set TEST_POSTGRES_URL / TEST_REDIS_URL`
  if (process.env.CI) throw new Error(message)
  return message
}

/** A fresh schema name and Redis prefix for one test. */
export function uniqueNames(tag: string): { schema: string; prefix: string } {
  const id = `${tag}_${process.pid}_${randomBytes(3).toString('hex')}`.toLowerCase()
  return { schema: `t_${id}`, prefix: `t:${id}:` }
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL })
  await client.connect()
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  } finally {
    await client.end()
  }
}

export async function deleteKeys(prefix: string, url = REDIS_URL): Promise<void> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  try {
    const keys = await redis.keys(`${prefix}*`)
    if (keys.length > 0) await redis.del(...keys)
  } finally {
    redis.disconnect()
  }
}

export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** A private `redis-server` on `port`, for tests that stop Redis. */
export async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  const deadline = Date.now() + 10_000
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const s = createConnection(port, '127.0.0.1')
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (up) return child
    if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/**
 * A round-robin TCP load balancer without sticky sessions: each new connection goes
 * to the next backend that accepts it, skipping dead ones.
 */
export class Balancer {
  private readonly server: Server
  private next = 0
  readonly sockets = new Set<Socket>()
  backends: number[]
  port = 0

  constructor(backends: number[]) {
    this.backends = backends
    this.server = createServer((client) => this.route(client, 0))
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    this.port = (this.server.address() as { port: number }).port
    return this.port
  }

  private route(client: Socket, tries: number): void {
    if (tries >= this.backends.length) {
      client.destroy()
      return
    }
    const port = this.backends[this.next++ % this.backends.length]!
    const upstream = createConnection(port, '127.0.0.1')
    client.pause()
    let connected = false
    upstream.once('error', () => {
      if (!connected) this.route(client, tries + 1)
    })
    upstream.once('connect', () => {
      connected = true
      this.sockets.add(client)
      this.sockets.add(upstream)
      client.pipe(upstream).pipe(client)
      client.resume()
      const done = (): void => {
        client.destroy()
        upstream.destroy()
        this.sockets.delete(client)
        this.sockets.delete(upstream)
      }
      client.on('error', done)
      client.on('close', done)
      upstream.on('error', done)
      upstream.on('close', done)
    })
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise((resolve) => this.server.close(resolve))
  }
}
