/**
 * Runs the user's `--exec` command once per applied batch: never two at once; batches that
 * arrive while it runs are merged into the next run; a failing or hanging hook (killed after
 * the timeout) is reported and never stops the mirror.
 *
 * Starting the process is most of the time between "batch applied" and "hook started"
 * (docs/benchmarks.md, "Hot reload"); see hook-spawn.ts for how it is kept short: plain-word
 * commands run without a shell, and the next hook process is started ahead of time.
 */
import type { ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { constants } from 'node:os'
import { HOOK_STDERR_GRACE_MS, HOOK_TIMEOUT_MS, REPORT_MAX_ERROR_BYTES } from '../../limits.js'
import type { Clock } from '../../protocol/clock.js'
import { foregroundClock } from './foreground-clock.js'
import { HookSpawner } from './hook-spawn.js'

export { directArgv } from './hook-spawn.js'

export interface Change { path: string; action: 'change' | 'delete' }

export interface HookResult {
  exitCode: number | null
  signal: string | null
  timedOut: boolean
  ms: number
  changes: Change[]
  /** The command could not be started at all (exitCode is then 127 or 126, as from a shell). */
  error?: string
  /** True if the command ran without a shell (see `directArgv`). */
  direct?: boolean
  /** True if it started from a launcher parked ahead of time. */
  warm?: boolean
  /**
   * The end of what it wrote to stderr (at most REPORT_MAX_ERROR_BYTES; all of it also went to
   * our stderr): its own account of a failure, e.g. "luac: main.lua:3: syntax error". Empty if none.
   */
  stderr?: string
}

/** How a HookRunner runs the `--exec` command. */
export interface HookOptions {
  command: string
  /** ASSETSYNC_ROOT: the mirror folder. */
  root: string
  timeoutMs?: number
  /** Where the hook's stdout goes ('inherit' or our stderr, to keep --json output clean). */
  stdout?: 'inherit' | 'stderr'
  /**
   * Start the next hook process ahead of time, parked until a batch arrives (default true). Call
   * `close()` when done (Node exiting also ends it).
   */
  warm?: boolean
  /** Times the hook timeout; default real time. Tests inject a ManualClock. */
  clock?: Clock
  /** Where the hook's stderr is passed on to (default process.stderr). */
  stderr?: NodeJS.WritableStream
}

/** The last `max` bytes of a stream, as text. */
class Tail {
  readonly #max: number
  #parts: Buffer[] = []
  #bytes = 0
  constructor(max: number) { this.#max = max }
  add(b: Buffer): void {
    this.#parts.push(b)
    this.#bytes += b.length
    while (this.#bytes - (this.#parts[0]?.length ?? 0) >= this.#max) this.#bytes -= (this.#parts.shift() as Buffer).length
  }
  text(): string {
    const all = Buffer.concat(this.#parts)
    // Cut at the front, the first character may be a partial one: drop it.
    return all.subarray(Math.max(0, all.length - this.#max)).toString('utf8').replace(/^\uFFFD/, '')
  }
}

/**
 * One line on how a hook run failed, then the end of its stderr: the `error` of the reload report
 * `watch` sends. Null for a run that succeeded (exit code 0).
 */
export function hookFailure(r: HookResult, timeoutMs: number): string | null {
  let why: string
  if (r.error) why = `hook could not start: ${r.error}`
  else if (r.timedOut) why = `hook killed after ${timeoutMs / 1000} s`
  else if (r.exitCode !== 0) why = `hook exited ${r.exitCode ?? r.signal}`
  else return null
  const tail = r.stderr?.trim()
  return tail ? `${why}\n${tail}` : why
}

/** The events of a HookRunner, by name: the listener's arguments. */
export type HookRunnerEvents = {
  /** A run starts with this (merged) batch. */
  start: [changes: Change[]]
  /** A run ended (exited, killed after the timeout, or could not start). */
  done: [result: HookResult]
}

/** The exit status a shell gives a command it cannot start: 127 not found, 126 not runnable. */
function cannotStartStatus(err: NodeJS.ErrnoException): number {
  return err.code === 'ENOENT' || err.code === 'ENOTDIR' ? 127 : 126
}

/** Merges `next` into `pending`, last action per path winning, order of first appearance kept. */
export function mergeChanges(pending: Change[], next: readonly Change[]): Change[] {
  const byPath = new Map(pending.map((c) => [c.path, c]))
  for (const c of next) byPath.set(c.path, c)
  return [...byPath.values()]
}

/** Runs the hook per batch. Events: HookRunnerEvents. */
export class HookRunner extends EventEmitter<HookRunnerEvents> {
  readonly #opts: HookOptions
  readonly #clock: Clock
  readonly #spawner: HookSpawner
  #pending: Change[] = []
  #running: Promise<void> | null = null

  constructor(opts: HookOptions) {
    super()
    this.#opts = opts
    this.#clock = opts.clock ?? foregroundClock
    this.#spawner = new HookSpawner(opts)
    this.#spawner.prepare()
  }

  /** True if the command runs without a shell (plain words only; see `directArgv`). */
  get direct(): boolean { return this.#spawner.argv !== null }

  /** Ends the process parked for the next run; later runs start cold. Runs in progress go on. */
  close(): void { this.#spawner.close() }

  /** Queues a batch; starts a run now if none is running. */
  enqueue(changes: readonly Change[]): void {
    if (changes.length === 0) return
    this.#pending = mergeChanges(this.#pending, changes)
    if (!this.#running) {
      this.#running = this.#drain().finally(() => { this.#running = null })
    }
  }

  /** Resolves when no hook runs and none is queued. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      const batch = this.#pending
      this.#pending = []
      this.emit('start', batch)
      const result = await this.#run(batch)
      // The next process starts now, between batches, not when the next batch is waiting.
      if (this.#pending.length === 0) this.#spawner.prepare()
      this.emit('done', result)
    }
  }

  #run(changes: Change[]): Promise<HookResult> {
    const t0 = performance.now()
    const direct = this.#spawner.argv !== null
    return new Promise((resolve) => {
      let started: { child: ChildProcess; warm: boolean }
      try {
        started = this.#spawner.start(changes.map((c) => c.path), `${JSON.stringify({ event: 'applied', root: this.#opts.root, changes })}\n`)
      } catch (err) {
        // Invalid arguments (spawn throws instead of emitting 'error'): reported like any failed start.
        resolve({ exitCode: 126, signal: null, timedOut: false, error: (err as Error).message, ms: 0, changes, direct, warm: false })
        return
      }
      const { child, warm } = started
      const stderr = new Tail(REPORT_MAX_ERROR_BYTES)
      const passOn = this.#opts.stderr ?? process.stderr
      child.stderr?.on('data', (b: Buffer) => { passOn.write(b); stderr.add(b) })
      const stderrEnded = new Promise<void>((resolve) => {
        if (!child.stderr) resolve()
        else child.stderr.once('close', () => resolve())
      })
      let timedOut = false
      let finished = false
      const cancelTimer = this.#clock.after(this.#opts.timeoutMs ?? HOOK_TIMEOUT_MS, () => {
        timedOut = true
        try {
          if (child.pid && process.platform !== 'win32') process.kill(-child.pid, 'SIGKILL')
          else child.kill('SIGKILL')
        } catch { /* already gone */ }
      })
      const finish = (r: Omit<HookResult, 'ms' | 'changes' | 'direct' | 'warm' | 'stderr'>, ms = performance.now() - t0): void => {
        if (finished) return
        finished = true
        cancelTimer()
        resolve({ ...r, ms: Math.round(ms), changes, direct, warm, stderr: stderr.text() })
      }
      child.once('error', (err: NodeJS.ErrnoException) => {
        // Only a failed start ends the run here ('close' follows, but need not); other errors
        // (a failed kill) leave it to 'close'. A shell would have said 127 / 126: so do we.
        if (child.pid === undefined) finish({ exitCode: cannotStartStatus(err), signal: null, timedOut, error: err.message })
      })
      child.once('exit', (code, signal) => {
        const ms = performance.now() - t0
        // Killed by a signal of its own (not our timeout): report 128 + n as a shell would, so
        // a direct and a shell-started hook give the same exit code for the same fate.
        const signo = signal && direct && !timedOut ? constants.signals[signal] : undefined
        const r = { exitCode: signo ? 128 + signo : code, signal, timedOut }
        // The last of its stderr may still be in the pipe; a background process it started may
        // hold the pipe open for good ('close' would never come), so wait a little at most.
        const cancelGrace = this.#clock.after(HOOK_STDERR_GRACE_MS, () => finish(r, ms))
        void stderrEnded.then(() => { cancelGrace(); finish(r, ms) })
      })
    })
  }
}
