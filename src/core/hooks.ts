/**
 * Runs the user's `--exec` command once per applied batch: never two at once; batches that
 * arrive while it runs are merged into the next run; a failing or hanging hook (killed after
 * the timeout) is reported and never stops the mirror.
 */
import { spawn } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { HOOK_TIMEOUT_MS } from '../limits.js'

export interface Change { path: string; action: 'change' | 'delete' }

export interface HookResult {
  exitCode: number | null
  signal: string | null
  timedOut: boolean
  ms: number
  changes: Change[]
  /** The command could not be started at all. */
  error?: string
}

export interface HookOptions {
  command: string
  /** ASSETSYNC_ROOT: the mirror folder. */
  root: string
  timeoutMs?: number
  /** Where the hook's stdout goes ('inherit' or our stderr, to keep --json output clean). */
  stdout?: 'inherit' | 'stderr'
}

/** Merges `next` into `pending`, last action per path winning, order of first appearance kept. */
export function mergeChanges(pending: Change[], next: readonly Change[]): Change[] {
  const byPath = new Map(pending.map((c) => [c.path, c]))
  for (const c of next) byPath.set(c.path, c)
  return [...byPath.values()]
}

/** Events: 'start' (changes), 'done' (HookResult). */
export class HookRunner extends EventEmitter {
  readonly #opts: HookOptions
  #pending: Change[] = []
  #running: Promise<void> | null = null

  constructor(opts: HookOptions) {
    super()
    this.#opts = opts
  }

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
      this.emit('done', await this.#run(batch))
    }
  }

  #run(changes: Change[]): Promise<HookResult> {
    const t0 = performance.now()
    const env = {
      ...process.env,
      ASSETSYNC_ROOT: this.#opts.root,
      ASSETSYNC_EVENT: 'applied',
      ASSETSYNC_PATHS: changes.map((c) => c.path).join('\n'),
    }
    return new Promise((resolve) => {
      const child = spawn(this.#opts.command, {
        shell: true,
        env,
        cwd: this.#opts.root,
        // Own process group, so a timeout kills the hook and anything it started.
        detached: process.platform !== 'win32',
        stdio: ['pipe', this.#opts.stdout === 'stderr' ? process.stderr : 'inherit', 'inherit'],
      })
      let timedOut = false
      const timer = setTimeout(() => {
        timedOut = true
        try {
          if (child.pid && process.platform !== 'win32') process.kill(-child.pid, 'SIGKILL')
          else child.kill('SIGKILL')
        } catch { /* already gone */ }
      }, this.#opts.timeoutMs ?? HOOK_TIMEOUT_MS)
      child.stdin.on('error', () => { /* a hook that does not read stdin is fine (EPIPE) */ })
      child.stdin.end(`${JSON.stringify({ event: 'applied', root: this.#opts.root, changes })}\n`)
      const finish = (r: Omit<HookResult, 'ms' | 'changes'>): void => {
        clearTimeout(timer)
        resolve({ ...r, ms: Math.round(performance.now() - t0), changes })
      }
      child.once('error', (err) => finish({ exitCode: null, signal: null, timedOut, error: err.message }))
      child.once('close', (code, signal) => finish({ exitCode: code, signal, timedOut }))
    })
  }
}
