/**
 * The servers under test, each started as its own process pinned to the server core,
 * and what the bench reads about them from /proc (CPU seconds, RSS).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import type { Dialect } from './client.js'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
/**
 * The peers are a package of their own (npm run bench:install), apart from coedit's so that
 * installing coedit compiles nothing. Only the peers resolve packages from it: coedit, raw ws
 * and this load generator keep the root's ws and yjs (the peers' folder has ws 6, an optional
 * dependency of @y/websocket-server).
 */
export const PEERS_DIR = join(ROOT, 'scripts', 'bench', 'peers')
// Per run, so two benches at once (a CI smoke test and a manual run) do not clobber each other.
const BUILD_DIR = join(ROOT, 'scripts', 'bench', '.build', `run-${process.pid}`)
const PEER_BUILD_DIR = join(PEERS_DIR, '.build', `run-${process.pid}`)
const YWSS = join(PEERS_DIR, 'node_modules', '@y', 'websocket-server', 'src', 'server.js')

export type ServerKind = 'coedit' | 'coedit-nofsync' | 'coedit-nowindow' | 'coedit-base' | 'ywss' | 'ywss-mem' | 'hocuspocus' | 'hocuspocus-mem' | 'raw'

export interface ServerSpec {
  kind: ServerKind
  label: string
  dialect: Dialect
  /** Stores documents at all. */
  persistent: boolean
  /** Every update is durable before anyone receives it. */
  durableBeforeRelay: boolean
  /** Runs from the peers' own install. */
  peer: boolean
  /** Takes `--trace-path FILE` (the bench's --trace). */
  traces?: boolean
  command(port: number, dataDir: string): { args: string[]; env: Record<string, string> }
}

export const SPECS: Record<ServerKind, ServerSpec> = {
  coedit: {
    kind: 'coedit', label: 'coedit', dialect: 'y', persistent: true, durableBeforeRelay: true, peer: false, traces: true,
    command: (port, dataDir) => ({
      // Defaults, except the per-client abuse limits: all the load comes from one address
      // and one writer, and the peers have no such limits.
      args: [
        join(BUILD_DIR, 'coedit.mjs'), 'serve', '--host', '127.0.0.1', '--port', String(port), '--data', dataDir, '--log-level', 'warn',
        '--max-messages-per-second', '0', '--max-bytes-per-second', '0', '--max-connections-per-ip', '0',
      ],
      env: {},
    }),
  },
  'coedit-nofsync': {
    kind: 'coedit-nofsync', label: 'coedit --no-fsync', dialect: 'y', persistent: true, durableBeforeRelay: true, peer: false, traces: true,
    command: (port, dataDir) => {
      const { args, env } = SPECS.coedit.command(port, dataDir)
      return { args: [...args, '--no-fsync'], env }
    },
  },
  // Issue 18's cost check: the same server with the exact history window off, beside the
  // default in one run (`--servers coedit,coedit-nowindow`), so the window's price is a ratio.
  'coedit-nowindow': {
    kind: 'coedit-nowindow', label: 'coedit (no history window)', dialect: 'y', persistent: true, durableBeforeRelay: true, peer: false,
    command: (port, dataDir) => {
      const { args, env } = SPECS.coedit.command(port, dataDir)
      return { args: [...args, '--history-exact', '0'], env }
    },
  },
  // BENCH_BASE=/path/to/another/checkout: that checkout's coedit, same flags, for before/after
  // figures from one run (same machine, same minute, same load).
  'coedit-base': {
    kind: 'coedit-base', label: 'coedit (BENCH_BASE)', dialect: 'y', persistent: true, durableBeforeRelay: true, peer: false,
    command: (port, dataDir) => {
      const { args, env } = SPECS.coedit.command(port, dataDir)
      return { args: [join(BUILD_DIR, 'coedit-base.mjs'), ...args.slice(1)], env }
    },
  },
  ywss: {
    kind: 'ywss', label: 'y-websocket-server+leveldb', dialect: 'y', persistent: true, durableBeforeRelay: false, peer: true,
    command: (port, dataDir) => ({
      args: [YWSS],
      env: { HOST: '127.0.0.1', PORT: String(port), YPERSISTENCE: dataDir },
    }),
  },
  'ywss-mem': {
    kind: 'ywss-mem', label: 'y-websocket-server', dialect: 'y', persistent: false, durableBeforeRelay: false, peer: true,
    command: (port) => ({
      args: [YWSS],
      env: { HOST: '127.0.0.1', PORT: String(port) },
    }),
  },
  hocuspocus: {
    kind: 'hocuspocus', label: 'hocuspocus+sqlite', dialect: 'hocus', persistent: true, durableBeforeRelay: false, peer: true,
    command: (port, dataDir) => ({ args: [join(PEER_BUILD_DIR, 'hocuspocus.mjs'), String(port), join(dataDir, 'db.sqlite')], env: {} }),
  },
  'hocuspocus-mem': {
    kind: 'hocuspocus-mem', label: 'hocuspocus', dialect: 'hocus', persistent: false, durableBeforeRelay: false, peer: true,
    command: (port) => ({ args: [join(PEER_BUILD_DIR, 'hocuspocus.mjs'), String(port), ''], env: {} }),
  },
  raw: {
    kind: 'raw', label: 'raw ws', dialect: 'raw', persistent: false, durableBeforeRelay: false, peer: false,
    command: (port) => ({ args: [join(BUILD_DIR, 'raw-ws.mjs'), String(port)], env: {} }),
  },
}

interface Lockfile { packages?: Record<string, { version?: string; optional?: boolean }> }

/**
 * The peers' install is there and holds every package of their lockfile at its locked
 * version. Compared by content, not by mtime: a fresh checkout (a git worktree) makes the
 * lockfile newer than an install that matches it.
 */
export function peersInstalled(): boolean {
  const installed = join(PEERS_DIR, 'node_modules', '.package-lock.json')
  if (!existsSync(installed)) return false
  try {
    const read = (file: string): Lockfile => JSON.parse(readFileSync(file, 'utf8')) as Lockfile
    const want = read(join(PEERS_DIR, 'package-lock.json')).packages ?? {}
    const have = read(installed).packages ?? {}
    // Optional packages may be absent (another platform's binaries).
    return Object.entries(want).every(([path, p]) => path === '' || p.optional === true || have[path]?.version === p.version)
  } catch {
    return false
  }
}

/**
 * Installs the peers on first use (what `npm run bench:install` does). Throws if npm fails,
 * and refuses when node_modules is a symlink (a worktree sharing another checkout's
 * install): `npm ci` empties the folder it points to, which would break every checkout
 * sharing it while it reinstalls.
 */
export function ensurePeers(log: (line: string) => void): void {
  if (peersInstalled()) return
  const modules = join(PEERS_DIR, 'node_modules')
  let link: string | undefined
  try {
    if (lstatSync(modules).isSymbolicLink()) link = readlinkSync(modules)
  } catch {
    // Absent: install below.
  }
  if (link !== undefined) {
    throw new Error(`${modules} is a symlink to ${link}, whose install is missing or does not match ${join(PEERS_DIR, 'package-lock.json')}; not installing through the link (npm ci would empty ${link} for every checkout sharing it): install there, or pass --servers coedit,raw`)
  }
  log('bench: installing the peer servers into scripts/bench/peers (first use; better-sqlite3 may compile for minutes)')
  // npm's output to stderr: stdout carries the bench's JSON lines.
  const result = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: PEERS_DIR, stdio: ['ignore', 2, 2] })
  if (result.status !== 0) throw new Error(`npm ci in ${PEERS_DIR} failed (exit ${result.status ?? result.signal})`)
}

/**
 * Bundles coedit and the peer wrappers once, so every server starts from plain JS:
 * no TypeScript loader in the measured process (same runtime code, less memory). Each
 * bundle sits where its packages resolve: coedit and raw ws under the root's node_modules,
 * Hocuspocus under the peers'.
 */
export async function buildServers(kinds: readonly ServerKind[]): Promise<void> {
  const withPeers = kinds.some((k) => SPECS[k].peer)
  const dirs = withPeers ? [BUILD_DIR, PEER_BUILD_DIR] : [BUILD_DIR]
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  process.once('exit', () => { for (const dir of dirs) rmSync(dir, { recursive: true, force: true }) })
  const bundle = (entryPoints: Record<string, string>, outdir: string) => build({
    entryPoints,
    outdir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    // Dynamic imports stay lazy (coedit loads its cluster-mode dependencies on demand).
    splitting: true,
    logLevel: 'error',
  })
  const base = process.env.BENCH_BASE
  if (kinds.includes('coedit-base') && !base) throw new Error('coedit-base needs BENCH_BASE=/path/to/another/coedit/checkout')
  await bundle({
    coedit: join(ROOT, 'scripts', 'coedit.ts'), 'raw-ws': join(PEERS_DIR, 'raw-ws.ts'),
    // Its packages resolve from here (this checkout's node_modules): the code under test is its own.
    ...(base && kinds.includes('coedit-base') ? { 'coedit-base': join(base, 'scripts', 'coedit.ts') } : {}),
  }, BUILD_DIR)
  if (withPeers) await bundle({ hocuspocus: join(PEERS_DIR, 'hocuspocus.ts') }, PEER_BUILD_DIR)
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => resolve(port))
    })
  })
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

const CLOCK_TICKS = 100

export class ServerProcess {
  readonly spec: ServerSpec
  readonly child: ChildProcess
  readonly port: number
  readonly dataDir: string
  readonly exited: Promise<void>
  private output = ''
  private cpuBase = 0

  private constructor(spec: ServerSpec, child: ChildProcess, port: number, dataDir: string) {
    this.spec = spec
    this.child = child
    this.port = port
    this.dataDir = dataDir
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()))
    const keep = (d: Buffer): void => { this.output = (this.output + d.toString()).slice(-4000) }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`
  }

  get pid(): number {
    return this.child.pid!
  }

  get recentOutput(): string {
    return this.output
  }

  /** Starts `spec` on the server core and resolves once it accepts TCP connections. */
  static async start(spec: ServerSpec, dataDir: string, cpu: string | undefined, extraArgs: readonly string[] = []): Promise<ServerProcess> {
    const port = await freePort()
    const { args: specArgs, env } = spec.command(port, dataDir)
    const args = [...specArgs, ...extraArgs]
    // e.g. BENCH_NODE_ARGS_COEDIT="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile one server.
    const extra = (process.env[`BENCH_NODE_ARGS_${spec.kind.toUpperCase().replace(/-/g, '_')}`] ?? '').split(' ').filter(Boolean)
    const node = [process.execPath, ...extra, ...args]
    const argv = cpu !== undefined ? ['taskset', '-c', cpu, ...node] : node
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: ROOT, env: { ...process.env, ...env, NODE_ENV: 'production' }, stdio: ['ignore', 'pipe', 'pipe'],
    })
    const server = new ServerProcess(spec, child, port, dataDir)
    const deadline = Date.now() + 30_000
    let exited = false
    void server.exited.then(() => { exited = true })
    while (!(await canConnect(port))) {
      if (exited) throw new Error(`${spec.label} exited during startup: ${server.output}`)
      if (Date.now() > deadline) {
        child.kill('SIGKILL')
        throw new Error(`${spec.label} did not listen within 30 s: ${server.output}`)
      }
      await new Promise((r) => setTimeout(r, 50))
    }
    server.cpuBase = server.cpuTotal()
    return server
  }

  private cpuTotal(): number {
    try {
      const stat = readFileSync(`/proc/${this.pid}/stat`, 'utf8')
      // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
    } catch {
      return 0
    }
  }

  /** CPU seconds (user + system) since the server was ready or `resetCpu()`. */
  cpuSeconds(): number {
    return this.cpuTotal() - this.cpuBase
  }

  resetCpu(): void {
    this.cpuBase = this.cpuTotal()
  }

  private status(field: string): number {
    try {
      const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'))
      return m ? Number(m[1]) : 0
    } catch {
      return 0
    }
  }

  rssKB(): number {
    return this.status('VmRSS')
  }

  peakRssKB(): number {
    return this.status('VmHWM')
  }

  /** SIGTERM, then SIGKILL after `timeout` ms. */
  async stop(timeout = 20_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeout)
    await this.exited
    clearTimeout(timer)
  }

  async kill9(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.child.kill('SIGKILL')
    await this.exited
  }
}

/** Bytes of all files under `dir`. */
export function diskBytes(dir: string): number {
  let total = 0
  let entries
  try {
    entries = readdirSync(dir, { withFileTypes: true })
  } catch {
    return 0
  }
  for (const e of entries) {
    const p = join(dir, e.name)
    if (e.isDirectory()) total += diskBytes(p)
    else if (e.isFile()) total += statSync(p).size
  }
  return total
}
