/**
 * `coedit serve` as a child process, for tests that kill it (SIGKILL, SIGTERM) or
 * check its exit code. The port comes from the JSON `listening` log line.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export interface ChildServer {
  child: ChildProcess
  port: number
  url: string
  /** Every stdout line parsed as JSON (non-JSON lines are kept as `{ text }`). */
  logs: Array<Record<string, unknown>>
  stderr: () => string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/**
 * How long a child process may take to start or finish before the test fails: a hang guard,
 * not a deadline. A tsx start-up takes a second or two on an idle machine and over 30 s on
 * one running three test files beside other load (seen at load average 40).
 */
export const PROCESS_GUARD_MS = 120_000

/** Runs `node --import tsx <script> <args>` from the repository root to completion. */
export function runScript(script: string, args: string[], env: Record<string, string> = {}, timeout = PROCESS_GUARD_MS): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
      cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${script} ${args.join(' ')} did not exit within ${timeout} ms; stderr: ${stderr}`))
    }, timeout)
    child.on('exit', (code) => {
      clearTimeout(timer)
      // 'exit' can come before the pipes are drained.
      setImmediate(() => resolve({ code, stdout, stderr }))
    })
  })
}

/** Runs `coedit <args>` to completion. */
export function runCli(args: string[], env: Record<string, string> = {}, timeout = PROCESS_GUARD_MS): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runScript('scripts/coedit.ts', args, env, timeout)
}

/** Starts `coedit serve --port 0 <args>` and resolves once it listens. */
export function startChildServer(args: string[], { timeout = PROCESS_GUARD_MS, env = {} as Record<string, string> } = {}): Promise<ChildServer> {
  return spawnServer(process.execPath, ['--import', 'tsx', 'scripts/coedit.ts', 'serve', '--port', '0', ...args], { cwd: ROOT, timeout, env })
}

/**
 * Runs `command args` (a coedit server however it is launched: tsx, `npm start`, an
 * installed package) and resolves once it logs that it listens. `group`: the command runs
 * in a process group of its own, and SIGKILL goes to the whole group, so a server that its
 * launcher left behind (the bug `npm start` had) is not left running after the test.
 */
export function spawnServer(command: string, args: string[], { cwd = ROOT, timeout = PROCESS_GUARD_MS, env = {} as Record<string, string>, group = false } = {}): Promise<ChildServer> {
  const child = spawn(command, args, {
    cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: group,
  })
  const sigkill = (): void => {
    if (!group) child.kill('SIGKILL')
    else try { process.kill(-child.pid!, 'SIGKILL') } catch { /* the group is gone already */ }
  }
  const logs: Array<Record<string, unknown>> = []
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }))
  })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sigkill()
      reject(new Error(`server did not start within ${timeout} ms; stderr: ${stderr}`))
    }, timeout)
    void exited.then(({ code, signal }) => {
      clearTimeout(timer)
      reject(new Error(`server exited before listening (code ${code}, signal ${signal}); stderr: ${stderr}`))
    })
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let entry: Record<string, unknown>
      try {
        entry = JSON.parse(line) as Record<string, unknown>
      } catch {
        entry = { text: line }
      }
      logs.push(entry)
      if (entry.event === 'listening' && typeof entry.port === 'number') {
        clearTimeout(timer)
        const port = entry.port
        resolve({
          child, port, url: `ws://127.0.0.1:${port}`, logs, stderr: () => stderr, exited,
          kill: (signal = 'SIGKILL') => {
            if (group && signal === 'SIGKILL') sigkill()
            else if (child.exitCode === null && child.signalCode === null) child.kill(signal)
            return exited
          },
        })
      }
    })
  })
}
