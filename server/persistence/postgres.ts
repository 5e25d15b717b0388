/**
 * PostgreSQL store: the shared store of cluster mode (LevelDB is single-process).
 *
 * Sequence numbers are per room and contiguous: an append bumps `rooms.last_seq`
 * under that row's lock and inserts its updates in the same statement, so appends
 * to one room commit in sequence order, from any process. A reader that has seen
 * seq s of a room can therefore ask for "everything after s" and never skip an
 * update that commits later (what `readSince` relies on to heal missed messages).
 *
 * Appends arriving in one event-loop turn, from every room, go in one statement
 * (group commit). Compaction runs under a per-room advisory lock, so one process
 * at a time folds a room, and it only deletes what its state already holds.
 */
import pg from 'pg'
import { GroupCommit, type Append } from './group-commit.js'
import { CoeditError } from '../errors.js'
import type { EventSink } from '../base/events.js'
import type { StoreEvents } from './store.js'
import { Redactor, redactUrl } from '../base/redact.js'
import { StoreClock } from './clock.js'
import { EMPTY_STATE, assertOpen, byName, roomDeletedError } from './store.js'
import type {
  AppendMeta, DeleteOptions, DeleteResult, HistoryLog, HistoryLogStore, LogBase, LogEntry, LogRange, PingableStore, ReplicaStore, RoomInfo, RoomRecord, StoreSnapshot, StoredRoom,
  StoredSince, StoredVersion, VersionInfo, VersionedStore, WriteFence,
} from './store.js'
import { decodeTombstone, isEmptyTombstone, tombstoneOf } from './tombstone.js'

export interface PostgresStoreOptions {
  /** Connection string, e.g. postgres://user@host:5432/db */
  connectionString: string
  /** Schema holding coedit's tables (created if missing). Default 'coedit'. */
  schema?: string
  /** Pool size. Default 10. */
  poolSize?: number
  /** Where `store.batch` goes: the size and duration of every group commit (metrics). */
  events?: EventSink<StoreEvents>
  /** The clock stamped on stored updates (tests inject one). Default Date.now. */
  now?: () => number
}



const MIGRATIONS: ReadonlyArray<(s: string) => string> = [
  (s) => `
    CREATE TABLE IF NOT EXISTS ${s}.rooms (
      name text PRIMARY KEY,
      last_seq bigint NOT NULL DEFAULT 0,
      updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE IF NOT EXISTS ${s}.updates (
      room text NOT NULL,
      seq bigint NOT NULL,
      data bytea NOT NULL,
      PRIMARY KEY (room, seq)
    );
    CREATE TABLE IF NOT EXISTS ${s}.states (
      room text PRIMARY KEY,
      up_to bigint NOT NULL,
      data bytea NOT NULL
    );`,
  (s) => `
    CREATE TABLE IF NOT EXISTS ${s}.versions (
      room text NOT NULL,
      id bigint NOT NULL,
      at bigint NOT NULL,
      seq bigint NOT NULL,
      data bytea NOT NULL,
      PRIMARY KEY (room, id)
    );
    CREATE TABLE IF NOT EXISTS ${s}.health (id int PRIMARY KEY, at bigint NOT NULL);`,
  // Issue 18: the history log. Existing rooms' logs start at the migration (their updates
  // carry no times): base = the compacted state, entries = the updates after it.
  (s) => `
    ALTER TABLE ${s}.rooms ADD COLUMN IF NOT EXISTS last_at bigint NOT NULL DEFAULT 0;
    ALTER TABLE ${s}.versions ADD COLUMN IF NOT EXISTS pinned boolean NOT NULL DEFAULT false;
    CREATE TABLE IF NOT EXISTS ${s}.log (
      room text NOT NULL,
      seq bigint NOT NULL,
      at bigint NOT NULL,
      user_id text,
      data bytea NOT NULL,
      PRIMARY KEY (room, seq)
    );
    CREATE TABLE IF NOT EXISTS ${s}.log_bases (
      room text PRIMARY KEY,
      up_to bigint NOT NULL,
      at bigint NOT NULL,
      data bytea NOT NULL
    );
    INSERT INTO ${s}.log_bases (room, up_to, at, data)
      SELECT r.name, COALESCE(st.up_to, 0), (extract(epoch FROM now()) * 1000)::bigint, COALESCE(st.data, '\\x0000'::bytea)
      FROM ${s}.rooms r LEFT JOIN ${s}.states st ON st.room = r.name
      ON CONFLICT DO NOTHING;
    INSERT INTO ${s}.log (room, seq, at, user_id, data)
      SELECT u.room, u.seq, (extract(epoch FROM now()) * 1000)::bigint, NULL, u.data FROM ${s}.updates u
      WHERE u.seq > COALESCE((SELECT up_to FROM ${s}.states st WHERE st.room = u.room), 0)
      ON CONFLICT DO NOTHING;`,
  // Deleting rooms: the row stays (its generation fences writers that loaded the room before
  // the delete), its content goes; a tombstone may stay with it.
  (s) => `
    ALTER TABLE ${s}.rooms ADD COLUMN IF NOT EXISTS generation bigint NOT NULL DEFAULT 0;
    ALTER TABLE ${s}.rooms ADD COLUMN IF NOT EXISTS tombstone bytea;`,
]

/** ms to reach the server at startup before failing. */
const CONNECT_TIMEOUT = 5000
const RETRYABLE = new Set(['40P01', '40001']) // deadlock, serialization failure

export class PostgresStore implements VersionedStore, PingableStore, HistoryLogStore, ReplicaStore {
  private readonly pool: pg.Pool
  private readonly s: string
  private readonly events: PostgresStoreOptions['events']
  private readonly commits = new GroupCommit((batch) => this.writeBatch(batch))
  private closed = false
  private readonly clock: StoreClock

  private constructor(pool: pg.Pool, schema: string, events: PostgresStoreOptions['events'], now?: () => number) {
    this.pool = pool
    this.clock = new StoreClock(now)
    this.s = schema
    this.events = events
  }

  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const schema = options.schema ?? 'coedit'
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
      throw new CoeditError('BAD_SCHEMA', `schema name "${schema}" must be lower-case letters, digits and _`)
    }
    const pool = new pg.Pool({ connectionString: options.connectionString, max: options.poolSize ?? 10 })
    // An idle client losing its connection must not crash the process.
    pool.on('error', () => {})
    const store = new PostgresStore(pool, schema, options.events, options.now)
    try {
      // One connection with a timeout first: an unreachable host would otherwise hold startup
      // for the OS's TCP timeout. The pool has none, so that a busy pool queues instead of failing.
      const probe = new pg.Client({ connectionString: options.connectionString, connectionTimeoutMillis: CONNECT_TIMEOUT })
      probe.on('error', () => {})
      await probe.connect()
      await probe.end()
      await store.migrate()
    } catch (err) {
      await pool.end().catch(() => {})
      // No `cause`: pg's errors can quote the connection string, password and all.
      const message = new Redactor([options.connectionString]).text((err as Error).message)
      throw new CoeditError('STORE_OPEN_FAILED', `cannot open PostgreSQL store at ${redactUrl(options.connectionString)}: ${message}`)
    }
    return store
  }

  /** Creates the schema and applies missing migrations, one process at a time. */
  private async migrate(): Promise<void> {
    await this.transaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`coedit-migrate:${this.s}`])
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${this.s}`)
      await client.query(`CREATE TABLE IF NOT EXISTS ${this.s}.migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`)
      const { rows } = await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${this.s}.migrations`)
      for (let v = (rows[0]?.v ?? 0) + 1; v <= MIGRATIONS.length; v++) {
        await client.query(MIGRATIONS[v - 1]!(this.s))
        await client.query(`INSERT INTO ${this.s}.migrations (version) VALUES ($1)`, [v])
      }
    })
  }

  /** Runs `fn` in a transaction on one pooled connection: committed if it resolves, rolled back if it throws. */
  private async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect()
    try {
      await client.query('BEGIN')
      const out = await fn(client)
      await client.query('COMMIT')
      return out
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      throw err
    } finally {
      client.release()
    }
  }

  async load(room: string): Promise<StoredRoom> {
    assertOpen(this.closed)
    // One statement, one snapshot: a concurrent compaction cannot make us miss updates.
    const { rows } = await this.pool.query<{ kind: number; seq: string; data: Buffer | null; generation: string }>(
      `SELECT 0 AS kind, up_to AS seq, data, 0::bigint AS generation FROM ${this.s}.states WHERE room = $1
       UNION ALL
       SELECT 1, seq, data, 0 FROM ${this.s}.updates
         WHERE room = $1 AND seq > COALESCE((SELECT up_to FROM ${this.s}.states WHERE room = $1), 0)
       UNION ALL
       SELECT 2, last_seq, tombstone, generation FROM ${this.s}.rooms WHERE name = $1
       ORDER BY kind, seq`,
      [room],
    )
    const updates: Uint8Array[] = []
    let lastSeq = 0
    let pendingUpdates = 0
    let generation = 0
    let tombstone: Uint8Array | undefined
    for (const row of rows) {
      if (row.kind === 2) {
        lastSeq = Number(row.seq)
        generation = Number(row.generation)
        tombstone = row.data ?? undefined
      } else {
        updates.push(row.data!)
        if (row.kind === 1) pendingUpdates++
      }
    }
    return { updates, lastSeq, pendingUpdates, ...(generation > 0 ? { generation } : {}), ...(tombstone ? { tombstone } : {}) }
  }

  /** Everything after `afterSeq`, for a process catching up on updates it did not receive. */
  async readSince(room: string, afterSeq: number): Promise<StoredSince> {
    assertOpen(this.closed)
    const { rows } = await this.pool.query<{ kind: number; seq: string; data: Buffer | null }>(
      `SELECT 0 AS kind, up_to AS seq, data FROM ${this.s}.states WHERE room = $1 AND up_to > $2
       UNION ALL
       SELECT 1, seq, data FROM ${this.s}.updates WHERE room = $1 AND seq > $2
       UNION ALL
       SELECT 2, last_seq, NULL FROM ${this.s}.rooms WHERE name = $1
       UNION ALL
       SELECT 3, generation, NULL FROM ${this.s}.rooms WHERE name = $1
       ORDER BY kind, seq`,
      [room, afterSeq],
    )
    const out: StoredSince = { updates: [], state: undefined, lastSeq: afterSeq, generation: 0 }
    for (const row of rows) {
      const seq = Number(row.seq)
      if (row.kind === 0) out.state = { upTo: seq, data: row.data! }
      else if (row.kind === 1) out.updates.push({ seq, data: row.data! })
      else if (row.kind === 2) out.lastSeq = Math.max(afterSeq, seq)
      else out.generation = seq
    }
    if (out.state) out.updates = out.updates.filter((u) => u.seq > out.state!.upTo)
    return out
  }

  /** Last sequence number and generation of each of `rooms` (rooms never written are absent). */
  async lastSeqs(rooms: readonly string[]): Promise<Map<string, { lastSeq: number; generation: number }>> {
    assertOpen(this.closed)
    const { rows } = await this.pool.query<{ name: string; last_seq: string; generation: string }>(
      `SELECT name, last_seq, generation FROM ${this.s}.rooms WHERE name = ANY($1::text[])`, [rooms],
    )
    return new Map(rows.map((r) => [r.name, { lastSeq: Number(r.last_seq), generation: Number(r.generation) }]))
  }

  async append(room: string, updates: readonly Uint8Array[], meta?: AppendMeta): Promise<number> {
    assertOpen(this.closed)
    return this.commits.add(room, updates, meta)
  }

  /**
   * Appends of one room made for two generations (an old copy's, queued before a delete, and
   * the new copy's) cannot share a statement, which checks one generation per room: they are
   * written one part after the other, in call order.
   */
  private async writeBatch(batch: readonly Append[]): Promise<Array<number | Error>> {
    const parts: Append[][] = [[]]
    const fenced = new Map<string, number>()
    for (const append of batch) {
      const generation = append.meta?.generation
      const seen = fenced.get(append.room)
      if (generation !== undefined && seen !== undefined && seen !== generation) {
        parts.push([])
        fenced.clear()
      }
      if (generation !== undefined) fenced.set(append.room, generation)
      parts[parts.length - 1]!.push(append)
    }
    const results: Array<number | Error> = []
    for (const part of parts) results.push(...await this.writePart(part))
    return results
  }

  private async writePart(batch: readonly Append[]): Promise<Array<number | Error>> {
    // Per room: how many updates, in call order; rows locked in name order to avoid deadlocks.
    const counts = new Map<string, number>()
    /** The generation each room's appends were made for (null: not checked). */
    const fences = new Map<string, number | null>()
    const uRoom: string[] = []
    const uIdx: number[] = []
    const uData: Uint8Array[] = []
    const uUser: Array<string | null> = []
    const ends: number[] = []
    for (const p of batch) {
      const generation = p.meta?.generation
      if (generation !== undefined) fences.set(p.room, generation)
      else if (!fences.has(p.room)) fences.set(p.room, null)
      let n = counts.get(p.room) ?? 0
      for (const update of p.updates) {
        uRoom.push(p.room)
        uIdx.push(++n)
        uData.push(update)
        uUser.push(p.meta?.user ?? null)
      }
      counts.set(p.room, n)
      ends.push(n)
    }
    const rooms = [...counts.keys()].sort(byName)
    const ns = rooms.map((r) => counts.get(r)!)
    const generations = rooms.map((r) => fences.get(r) ?? null)
    const started = performance.now()
    const lastSeqs = await this.withRetry(async () => {
      // The room rows are locked first and their generation read under the lock (a delete
      // holds it while it runs): an append made for a deleted generation is not written.
      const { rows } = await this.pool.query<{ name: string; last_seq: string }>(
        `WITH input AS (
           SELECT * FROM unnest($1::text[], $2::bigint[], $8::bigint[]) WITH ORDINALITY AS t(name, n, gen, ord)
         ), locked AS (
           SELECT r.name, r.generation FROM ${this.s}.rooms r WHERE r.name IN (SELECT name FROM input)
           ORDER BY r.name FOR UPDATE
         ), admitted AS (
           SELECT i.name, i.n, i.ord, COALESCE(l.generation, 0) AS generation
           FROM input i LEFT JOIN locked l ON l.name = i.name
           WHERE i.gen IS NULL OR i.gen = COALESCE(l.generation, 0)
         ), bumped AS (
           INSERT INTO ${this.s}.rooms AS r (name, last_seq, updated_at, last_at, generation)
           SELECT name, n, now(), $6, generation FROM admitted ORDER BY ord
           ON CONFLICT (name) DO UPDATE SET last_seq = r.last_seq + excluded.last_seq, updated_at = now(),
             last_at = GREATEST(r.last_at, excluded.last_at)  -- stamps never decrease along a room's log
           WHERE r.generation = excluded.generation
           RETURNING r.name, r.last_seq, r.last_at
         ), inserted AS (  -- runs to completion though nothing reads it
           INSERT INTO ${this.s}.updates (room, seq, data)
           SELECT u.room, b.last_seq - i.n + u.idx, u.data
           FROM unnest($3::text[], $4::bigint[], $5::bytea[]) AS u(room, idx, data)
           JOIN bumped b ON b.name = u.room
           JOIN input i ON i.name = u.room
           RETURNING 1
         ), logged AS (
           INSERT INTO ${this.s}.log (room, seq, at, user_id, data)
           SELECT u.room, b.last_seq - i.n + u.idx, b.last_at, u.usr, u.data
           FROM unnest($3::text[], $4::bigint[], $5::bytea[], $7::text[]) AS u(room, idx, data, usr)
           JOIN bumped b ON b.name = u.room
           JOIN input i ON i.name = u.room
           RETURNING 1
         )
         SELECT name, last_seq FROM bumped`,
        [rooms, ns, uRoom, uIdx, uData.map(toBuffer), this.clock.stamp(), uUser, generations],
      )
      return new Map(rows.map((r) => [r.name, Number(r.last_seq)]))
    })
    this.events?.emit('store.batch', { updates: uData.length, ms: performance.now() - started })
    // Each append's last update is `ends[i]` of its room's n in this batch; a room missing
    // from the answer was refused (deleted since its appends' copy was loaded).
    return batch.map((p, i) => {
      const last = lastSeqs.get(p.room)
      return last === undefined ? roomDeletedError(p.room) : last - counts.get(p.room)! + ends[i]!
    })
  }

  private async withRetry<T>(run: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await run()
      } catch (err) {
        if (attempt >= 5 || !RETRYABLE.has((err as { code?: string }).code ?? '')) throw err
        await new Promise((r) => setTimeout(r, 5 * 2 ** attempt))
      }
    }
  }

  async compact(room: string, state: Uint8Array, upTo: number, fence?: WriteFence): Promise<void> {
    assertOpen(this.closed)
    await this.transaction(async (client) => {
      const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock(hashtext($1)) AS ok', [`coedit-compact:${this.s}:${room}`])
      // Another process is folding this room right now; its state will do.
      if (!rows[0]?.ok) return
      // Shared with other compactions, exclusive with a delete (see roomLock).
      await client.query('SELECT pg_advisory_xact_lock_shared(hashtext($1))', [this.roomLock(room)])
      await this.checkFence(client, room, fence)
      const { rowCount } = await client.query(
        `INSERT INTO ${this.s}.states AS st (room, up_to, data) VALUES ($1, $2, $3)
         ON CONFLICT (room) DO UPDATE SET up_to = excluded.up_to, data = excluded.data
         WHERE st.up_to < excluded.up_to`,
        [room, upTo, toBuffer(state)],
      )
      if (rowCount) await client.query(`DELETE FROM ${this.s}.updates WHERE room = $1 AND seq <= $2`, [room, upTo])
    })
  }

  /** Under the room lock: a fenced write of a deleted generation is refused. */
  private async checkFence(client: pg.PoolClient, room: string, fence: WriteFence | undefined): Promise<void> {
    if (fence?.generation === undefined) return
    const { rows } = await client.query<{ generation: string }>(`SELECT generation FROM ${this.s}.rooms WHERE name = $1`, [room])
    if (Number(rows[0]?.generation ?? 0) !== fence.generation) throw roomDeletedError(room)
  }

  /**
   * Removes the room's content, versions and history log in one transaction holding the room
   * lock (no compaction, version or fold of it in progress) and its row (appends wait, and
   * see the new generation once it commits). The row stays, with its generation grown, its
   * sequence back at 0 and the tombstone if one was asked for.
   */
  async delete(room: string, options: DeleteOptions = {}): Promise<DeleteResult> {
    assertOpen(this.closed)
    // This process's appends called before it are written first (and deleted with the rest);
    // the transaction itself does not hold up the group commit: appends of the room made
    // after it wait for its row lock, and see the generation it leaves.
    await this.commits.exclusive(async () => {})
    return this.withRetry(() => this.inRoomTransaction(room, async (client) => {
      const { rows } = await client.query<{ generation: string; last_seq: string; tombstone: Buffer | null }>(
        `SELECT generation, last_seq, tombstone FROM ${this.s}.rooms WHERE name = $1 FOR UPDATE`, [room],
      )
      const row = rows[0]
      const deleted = Number(row?.generation ?? 0)
      let tombstone: Uint8Array | null = null
      if (options.tombstone && row) {
        // The log's entries are in `updates` or, compacted, in `states`: not read twice.
        const content = await client.query<{ data: Buffer }>(
          `SELECT data FROM ${this.s}.states WHERE room = $1 UNION ALL SELECT data FROM ${this.s}.updates WHERE room = $1
           UNION ALL SELECT data FROM ${this.s}.log_bases WHERE room = $1`,
          [room],
        )
        tombstone = tombstoneOf(content.rows.map((r) => r.data), row.tombstone ?? undefined)
        if (isEmptyTombstone(tombstone)) tombstone = null
      }
      let removed = 0
      for (const table of ['updates', 'states', 'versions', 'log', 'log_bases']) {
        removed += (await client.query(`DELETE FROM ${this.s}.${table} WHERE room = $1`, [room])).rowCount ?? 0
      }
      if (row) {
        await client.query(
          `UPDATE ${this.s}.rooms SET generation = generation + 1, last_seq = 0, tombstone = $2, updated_at = now() WHERE name = $1`,
          [room, tombstone && toBuffer(tombstone)],
        )
      }
      return { existed: removed > 0 || Number(row?.last_seq ?? 0) > 0 || row?.tombstone != null, deleted }
    }))
  }

  private roomLock(room: string): string {
    return `coedit-room:${this.s}:${room}`
  }

  async listRooms(): Promise<RoomInfo[]> {
    assertOpen(this.closed)
    const { rows } = await this.pool.query<{ name: string; last_seq: string; updated_at: Date; updates: string; bytes: string }>(
      `SELECT r.name, r.last_seq, r.updated_at,
              (SELECT count(*) FROM ${this.s}.updates u WHERE u.room = r.name
                 AND u.seq > COALESCE((SELECT up_to FROM ${this.s}.states s WHERE s.room = r.name), 0)) AS updates,
              COALESCE((SELECT sum(length(data)) FROM ${this.s}.updates u WHERE u.room = r.name), 0)
                + COALESCE((SELECT length(data) FROM ${this.s}.states s WHERE s.room = r.name), 0) AS bytes
       FROM ${this.s}.rooms r
       WHERE r.last_seq > 0 OR EXISTS (SELECT 1 FROM ${this.s}.states s WHERE s.room = r.name)
       ORDER BY r.name COLLATE "C"`,
    )
    return rows.map((r) => ({
      name: r.name,
      updates: Number(r.updates),
      bytes: Number(r.bytes),
      updatedAt: r.updated_at.getTime(),
      lastSeq: Number(r.last_seq),
    }))
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.commits.drained()
    await this.pool.end()
  }

  // ---- history, backup and health: what the operator CLI and /readyz use ---------------

  /** Runs `fn` in a transaction holding the per-room lock of version writes. */
  private inRoomTransaction<T>(room: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.transaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [this.roomLock(room)])
      return fn(client)
    })
  }

  async putVersion(room: string, version: { at: number; seq: number; state: Uint8Array; pinned?: boolean }, fence?: WriteFence): Promise<VersionInfo> {
    assertOpen(this.closed)
    return this.inRoomTransaction(room, async (client) => {
      await this.checkFence(client, room, fence)
      const { rows } = await client.query<{ id: string }>(
        `INSERT INTO ${this.s}.versions (room, id, at, seq, data, pinned)
         SELECT $1, COALESCE(max(id), 0) + 1, $2, $3, $4, $5 FROM ${this.s}.versions WHERE room = $1
         RETURNING id`,
        [room, version.at, version.seq, toBuffer(version.state), version.pinned === true],
      )
      return { id: Number(rows[0]!.id), at: version.at, seq: version.seq, bytes: version.state.length, ...(version.pinned ? { pinned: true } : {}) }
    })
  }

  async listVersions(room: string): Promise<VersionInfo[]> {
    assertOpen(this.closed)
    const { rows } = await this.pool.query<{ id: string; at: string; seq: string; bytes: number; pinned: boolean }>(
      `SELECT id, at, seq, length(data) AS bytes, pinned FROM ${this.s}.versions WHERE room = $1 ORDER BY id`, [room],
    )
    return rows.map((r) => ({ id: Number(r.id), at: Number(r.at), seq: Number(r.seq), bytes: r.bytes, ...(r.pinned ? { pinned: true } : {}) }))
  }

  async getVersion(room: string, id: number): Promise<StoredVersion | undefined> {
    assertOpen(this.closed)
    const { rows } = await this.pool.query<{ at: string; seq: string; data: Buffer; pinned: boolean }>(
      `SELECT at, seq, data, pinned FROM ${this.s}.versions WHERE room = $1 AND id = $2`, [room, id],
    )
    const r = rows[0]
    return r && { id, at: Number(r.at), seq: Number(r.seq), bytes: r.data.length, state: r.data, ...(r.pinned ? { pinned: true } : {}) }
  }

  // ---- history log -----------------------------------------------------------------------

  async readLog(room: string, range: LogRange = {}): Promise<HistoryLog> {
    assertOpen(this.closed)
    return this.readLogWith(this.pool, room, range)
  }

  private async readLogWith(client: pg.Pool | pg.PoolClient, room: string, range: LogRange): Promise<HistoryLog> {
    // One statement, one snapshot: a concurrent fold cannot leave a gap between base and entries.
    const { rows } = await client.query<{ kind: number; seq: string; at: string; user_id: string | null; data: Buffer }>(
      `SELECT -2 AS kind, min(seq) AS seq, 0::bigint AS at, NULL::text AS user_id, NULL::bytea AS data FROM ${this.s}.log
         WHERE $3::bigint IS NOT NULL AND room = $1 AND at > $3::bigint
           AND seq > GREATEST($2::bigint, COALESCE((SELECT up_to FROM ${this.s}.log_bases WHERE room = $1), 0))
       UNION ALL
       SELECT -1, generation, last_seq, NULL, NULL FROM ${this.s}.rooms WHERE name = $1
       UNION ALL
       SELECT 0, up_to, at, NULL, data FROM ${this.s}.log_bases WHERE room = $1
       UNION ALL
       SELECT 1, seq, at, user_id, data FROM ${this.s}.log
         WHERE room = $1 AND seq > GREATEST($2::bigint, COALESCE((SELECT up_to FROM ${this.s}.log_bases WHERE room = $1), 0))
           AND ($3::bigint IS NULL OR at <= $3::bigint)
       ORDER BY kind, seq
       LIMIT $4`,
      // The rows before the entries: the first past untilAt, the generation's, the base's.
      [room, range.afterSeq ?? 0, range.untilAt ?? null, range.limit === undefined ? null : range.limit + 3],
    )
    const log: HistoryLog = { base: undefined, entries: [] }
    /** Where the entries asked for end: the first logged past `untilAt`, else past the room's last seq. */
    let end: number | undefined
    let lastSeq = 0
    for (const r of rows) {
      if (r.kind === -2) {
        if (r.seq !== null) end = Number(r.seq)
        continue
      }
      if (r.kind === -1) {
        if (Number(r.seq) > 0 && client === this.pool) log.generation = Number(r.seq)
        lastSeq = Number(r.at)
        continue
      }
      if (r.kind === 0) {
        log.base = { upTo: Number(r.seq), at: Number(r.at), state: r.data }
        continue
      }
      const entry: LogEntry = { seq: Number(r.seq), at: Number(r.at), user: r.user_id ?? undefined, update: r.data }
      if (range.untilAt !== undefined && entry.at > range.untilAt) break
      if (range.limit !== undefined && log.entries.length >= range.limit) break
      log.entries.push(entry)
    }
    // Updates an older coedit stored are counted in rooms.last_seq but not logged: a gap
    // before `end` is one (see HistoryLog.unmarked). A page cut by `limit` ends where it ends.
    let expected = Math.max(range.afterSeq ?? 0, log.base?.upTo ?? 0) + 1
    for (const [i, e] of log.entries.entries()) {
      if (e.seq !== expected) {
        log.entries.length = i
        log.unmarked = expected
        return log
      }
      expected++
    }
    const limited = range.limit !== undefined && log.entries.length >= range.limit
    if (!limited && expected < (end ?? lastSeq + 1)) log.unmarked = expected
    return log
  }

  async foldLog(room: string, base: LogBase, fence?: WriteFence): Promise<void> {
    assertOpen(this.closed)
    await this.inRoomTransaction(room, async (client) => {
      await this.checkFence(client, room, fence)
      const { rowCount } = await client.query(
        `INSERT INTO ${this.s}.log_bases AS b (room, up_to, at, data) VALUES ($1, $2, $3, $4)
         ON CONFLICT (room) DO UPDATE SET up_to = excluded.up_to, at = excluded.at, data = excluded.data
         WHERE b.up_to < excluded.up_to`,
        [room, base.upTo, base.at, toBuffer(base.state)],
      )
      if (rowCount) await client.query(`DELETE FROM ${this.s}.log WHERE room = $1 AND seq <= $2`, [room, base.upTo])
    })
  }

  // ---- end of history log ---------------------------------------------------------------

  async deleteVersions(room: string, ids: readonly number[]): Promise<void> {
    assertOpen(this.closed)
    if (ids.length === 0) return
    await this.pool.query(`DELETE FROM ${this.s}.versions WHERE room = $1 AND id = ANY($2::bigint[])`, [room, ids])
  }

  /** A REPEATABLE READ transaction: every read sees the database as of its first query. */
  async snapshot(): Promise<StoreSnapshot> {
    assertOpen(this.closed)
    const client = await this.pool.connect()
    const end = async (): Promise<void> => {
      await client.query('COMMIT').catch(() => {})
      client.release()
    }
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
      const { rows } = await client.query<{ name: string }>(
        `SELECT name FROM ${this.s}.rooms WHERE last_seq > 0 UNION SELECT room FROM ${this.s}.states ORDER BY 1`,
      )
      const rooms = rows.map((r) => r.name).sort(byName)
      const marked = await client.query<{ name: string; tombstone: Buffer }>(`SELECT name, tombstone FROM ${this.s}.rooms WHERE tombstone IS NOT NULL`)
      const tombstones = new Map(marked.rows.map((r) => [r.name, new Uint8Array(r.tombstone)]))
      return { rooms, tombstones, read: (room) => this.readRoom(client, room), close: end }
    } catch (err) {
      await end()
      throw err
    }
  }

  private async readRoom(client: pg.PoolClient, room: string): Promise<RoomRecord> {
    const { rows } = await client.query<{ kind: number; seq: string; data: Buffer | null; at: string | null }>(
      `SELECT 0 AS kind, up_to AS seq, data, NULL::bigint AS at FROM ${this.s}.states WHERE room = $1
       UNION ALL
       SELECT 1, seq, data, NULL FROM ${this.s}.updates
         WHERE room = $1 AND seq > COALESCE((SELECT up_to FROM ${this.s}.states WHERE room = $1), 0)
       UNION ALL
       SELECT 2, last_seq, NULL, (extract(epoch FROM updated_at) * 1000)::bigint FROM ${this.s}.rooms WHERE name = $1
       ORDER BY kind, seq`,
      [room],
    )
    const record: RoomRecord = { name: room, updatedAt: undefined, lastSeq: 0, updates: [], versions: [] }
    for (const row of rows) {
      if (row.kind === 2) {
        record.lastSeq = Number(row.seq)
        record.updatedAt = Number(row.at)
      } else {
        record.updates.push(row.data!)
        record.lastSeq = Math.max(record.lastSeq, Number(row.seq))
      }
    }
    const versions = await client.query<{ id: string; at: string; seq: string; data: Buffer; pinned: boolean }>(
      `SELECT id, at, seq, data, pinned FROM ${this.s}.versions WHERE room = $1 ORDER BY id`, [room],
    )
    record.versions = versions.rows.map((v) => ({ id: Number(v.id), at: Number(v.at), seq: Number(v.seq), bytes: v.data.length, state: v.data, ...(v.pinned ? { pinned: true } : {}) }))
    const log = await this.readLogWith(client, room, {})
    // A log cut short by an older coedit's writes is left out: the restore starts a new one.
    if (log.unmarked === undefined) record.log = log
    return record
  }

  async putTombstone(room: string, tombstone: Uint8Array): Promise<void> {
    if (this.closed) throw new CoeditError('STORE_CLOSED', 'store is closed')
    decodeTombstone(tombstone)
    // A name with nothing stored gets a row with last_seq 0: no room, as a delete leaves it.
    await this.pool.query(
      `INSERT INTO ${this.s}.rooms (name, tombstone) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET tombstone = excluded.tombstone`,
      [room, toBuffer(tombstone)],
    )
  }

  async putRoom(record: RoomRecord): Promise<void> {
    assertOpen(this.closed)
    const room = record.name
    const [first, ...rest] = record.updates
    const upTo = record.lastSeq - rest.length
    await this.inRoomTransaction(room, async (client) => {
      // Hold the room row so no append interleaves with the replacement.
      await client.query(
        `INSERT INTO ${this.s}.rooms (name, last_seq, updated_at) VALUES ($1, $2, to_timestamp($3 / 1000.0))
         ON CONFLICT (name) DO UPDATE SET last_seq = excluded.last_seq, updated_at = excluded.updated_at, tombstone = NULL`,
        [room, record.lastSeq, record.updatedAt ?? Date.now()],
      )
      await client.query(`DELETE FROM ${this.s}.updates WHERE room = $1`, [room])
      await client.query(`DELETE FROM ${this.s}.states WHERE room = $1`, [room])
      await client.query(`DELETE FROM ${this.s}.versions WHERE room = $1`, [room])
      await client.query(`DELETE FROM ${this.s}.log WHERE room = $1`, [room])
      await client.query(`DELETE FROM ${this.s}.log_bases WHERE room = $1`, [room])
      if (first !== undefined) {
        await client.query(`INSERT INTO ${this.s}.states (room, up_to, data) VALUES ($1, $2, $3)`, [room, upTo, toBuffer(first)])
      }
      if (rest.length > 0) {
        await client.query(
          `INSERT INTO ${this.s}.updates (room, seq, data) SELECT $1, s, d FROM unnest($2::bigint[], $3::bytea[]) AS t(s, d)`,
          [room, rest.map((_, i) => upTo + 1 + i), rest.map(toBuffer)],
        )
      }
      for (const v of record.versions) {
        await client.query(
          `INSERT INTO ${this.s}.versions (room, id, at, seq, data, pinned) VALUES ($1, $2, $3, $4, $5, $6)`,
          [room, v.id, v.at, v.seq, toBuffer(v.state), v.pinned === true],
        )
      }
      const at = this.clock.stamp()
      const log = record.log ?? {
        base: { upTo, at, state: first ?? EMPTY_STATE },
        entries: rest.map((update, i) => ({ seq: upTo + 1 + i, at, user: undefined, update })),
      }
      if (log.base) {
        await client.query(`INSERT INTO ${this.s}.log_bases (room, up_to, at, data) VALUES ($1, $2, $3, $4)`, [room, log.base.upTo, log.base.at, toBuffer(log.base.state)])
      }
      if (log.entries.length > 0) {
        await client.query(
          `INSERT INTO ${this.s}.log (room, seq, at, user_id, data) SELECT $1, s, a, u, d FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::bytea[]) AS t(s, a, u, d)`,
          [room, log.entries.map((e) => e.seq), log.entries.map((e) => e.at), log.entries.map((e) => e.user ?? null), log.entries.map((e) => toBuffer(e.update))],
        )
      }
      const lastAt = log.entries.reduce((m, e) => Math.max(m, e.at), log.base?.at ?? 0)
      await client.query(`UPDATE ${this.s}.rooms SET last_at = $2 WHERE name = $1`, [room, lastAt])
    })
  }

  async ping(): Promise<void> {
    assertOpen(this.closed)
    const now = Date.now()
    const { rows } = await this.pool.query<{ at: string }>(
      `INSERT INTO ${this.s}.health (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = excluded.at RETURNING at`, [now],
    )
    if (Number(rows[0]?.at) !== now) throw new CoeditError('STORE_PING_FAILED', 'health probe read back something else')
  }

  // ---- end of history, backup and health ----------------------------------------------
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength)
}
