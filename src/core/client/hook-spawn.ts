/**
 * Starting `--exec` hook processes fast. Starting a process from Node is the long pole of
 * save → hook (docs/benchmarks.md, "Hot reload"): spawn() blocks the event loop ~8–10 ms here
 * (fork of a large process, then waiting for exec), and `sh -c` adds a second process start.
 *
 * - A command of plain words runs without a shell (`directArgv`): the program itself is started.
 * - Warm start: after each run (and at first) a small launcher is started ahead of time, in the
 *   hook's own process group, with the hook's environment and cwd, and parks reading its pipe on
 *   fd 3. A batch then only writes the changed paths to that pipe: the launcher sets
 *   ASSETSYNC_PATHS and ASSETSYNC_PATH_COUNT and `exec`s the program (plain words) or `eval`s the command (shell syntax,
 *   in the launcher's own shell: no second shell start), with stdin still the pipe the batch JSON
 *   goes to. If the pipe closes first (Node exits, `close()`), the launcher exits and runs nothing.
 * - Cold start (Windows, no launcher ready, or a batch over HOOK_WARM_MAX_PATH_BYTES): spawn now.
 * - The environment cannot overflow (issue 11, case 7: 1,500 paths of ~240 bytes made spawn fail
 *   with E2BIG, and that batch's hook never ran): ASSETSYNC_PATHS holds the paths only up to
 *   HOOK_ENV_PATHS_MAX_BYTES; a bigger batch gets it empty and ASSETSYNC_PATHS_TRUNCATED=1.
 *   ASSETSYNC_PATH_COUNT and the JSON on stdin always hold the whole batch.
 * - A launcher parked in a folder that is no longer the mirror's root (the out folder was deleted
 *   and made again) is dropped: a hook always starts in the current root.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process'
import { statSync } from 'node:fs'
import type { Socket } from 'node:net'
import { HOOK_ENV_PATHS_MAX_BYTES, HOOK_WARM_MAX_PATH_BYTES } from '../../limits.js'

/** Plain words separated by spaces: letters, digits and - _ . / = : @ % + , only. */
const PLAIN_WORDS = /^ *[A-Za-z0-9_./=:@%+,-]+(?: +[A-Za-z0-9_./=:@%+,-]+)* *$/
/**
 * Command names that mean something else in a shell than as a program: reserved words, and
 * builtins with no program of that name (or whose program cannot do the same, such as `cd`).
 */
const SHELL_WORDS = new Set([
  '!', '.', ':', 'alias', 'bg', 'bind', 'break', 'builtin', 'case', 'cd', 'command', 'compgen', 'complete',
  'continue', 'coproc', 'declare', 'dirs', 'disown', 'do', 'done', 'elif', 'else', 'enable', 'esac', 'eval',
  'exec', 'exit', 'export', 'fc', 'fg', 'fi', 'for', 'function', 'getopts', 'hash', 'help', 'history', 'if',
  'in', 'jobs', 'let', 'local', 'logout', 'mapfile', 'popd', 'pushd', 'read', 'readarray', 'readonly',
  'return', 'select', 'set', 'shift', 'shopt', 'source', 'suspend', 'then', 'time', 'times', 'trap', 'type',
  'typeset', 'ulimit', 'umask', 'unalias', 'unset', 'until', 'wait', 'while',
])

/**
 * The argv to run `command` with no shell, or null when it needs a shell: anything but plain
 * words (quotes, `$`, `;`, `|`, `&`, `<`, `>`, globs, `~`, backslashes, parentheses, newlines, ...),
 * a leading `VAR=x` assignment, or a first word that is a shell keyword or shell-only builtin.
 * For plain words a shell does nothing but split on the spaces and look the program up in PATH,
 * which spawn does too.
 */
export function directArgv(command: string): string[] | null {
  if (process.platform === 'win32' || !PLAIN_WORDS.test(command)) return null
  const argv = command.trim().split(/ +/)
  const name = argv[0] as string
  if (name.includes('=') || SHELL_WORDS.has(name)) return null
  return argv
}

/**
 * The parked launcher (POSIX sh, run as `sh -c LAUNCHER sh exec|eval ARGS...`): reads paths from
 * fd 3, one per line, up to an empty line — a wire path is never empty and has no control
 * characters — then starts the hook in place. Its own variables are unset first, and for `eval`
 * the positional parameters are cleared, so the command sees what `sh -c` would give it.
 */
const LAUNCHER = [
  '__as_p=',
  '__as_n=0',
  'while IFS= read -r __as_l <&3; do',
  '  if [ -z "$__as_l" ]; then',
  '    exec 3<&-',
  '    ASSETSYNC_PATHS=$__as_p; ASSETSYNC_PATH_COUNT=$__as_n; export ASSETSYNC_PATHS ASSETSYNC_PATH_COUNT',
  '    unset __as_p __as_l __as_n',
  '    if [ "$1" = eval ]; then __as_c=$2; set --; eval "unset __as_c; $__as_c"; exit; fi',
  '    shift; exec "$@"',
  '  fi',
  '  __as_p="${__as_p:+$__as_p\n}$__as_l"',
  '  __as_n=$((__as_n + 1))',
  'done',
  'exit 0',
].join('\n')


export interface HookSpawnOptions {
  command: string
  /** ASSETSYNC_ROOT and the hook's cwd. */
  root: string
  /** Where the hook's stdout goes ('inherit' or our stderr, to keep --json output clean). */
  stdout?: 'inherit' | 'stderr'
  /** Start the next hook process ahead of time (default true; never on Windows). */
  warm?: boolean
}

export interface StartedHook {
  child: ChildProcess
  /** Started from a parked launcher. */
  warm: boolean
}

export class HookSpawner {
  readonly #opts: HookSpawnOptions
  /** The command's words when it runs without a shell; null when it needs one. */
  readonly argv: string[] | null
  readonly #warm: boolean
  #parked: ChildProcess | null = null
  /** The root folder (device + inode) the parked launcher was started in. */
  #parkedIn: string | null = null
  #closed = false

  constructor(opts: HookSpawnOptions) {
    this.#opts = opts
    this.argv = directArgv(opts.command)
    this.#warm = opts.warm !== false && process.platform !== 'win32'
  }

  #options(env: NodeJS.ProcessEnv, fd3: boolean): SpawnOptions {
    return {
      env,
      cwd: this.#opts.root,
      // Own process group, so a timeout kills the hook and anything it started.
      detached: process.platform !== 'win32',
      // stderr is a pipe: the runner passes it on to ours and keeps its end for the reload report.
      stdio: ['pipe', this.#opts.stdout === 'stderr' ? process.stderr : 'inherit', 'pipe', ...(fd3 ? ['pipe' as const] : [])],
    }
  }

  /**
   * The hook's environment. With `paths` (a cold start): ASSETSYNC_PATHS when it fits in
   * HOOK_ENV_PATHS_MAX_BYTES, else empty with ASSETSYNC_PATHS_TRUNCATED=1; ASSETSYNC_PATH_COUNT.
   * Values inherited from our own environment never leak through.
   */
  #env(paths?: readonly string[]): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env, ASSETSYNC_ROOT: this.#opts.root, ASSETSYNC_EVENT: 'applied',
      ASSETSYNC_PATHS: undefined, ASSETSYNC_PATH_COUNT: undefined, ASSETSYNC_PATHS_TRUNCATED: undefined,
    }
    if (paths === undefined) return env
    const joined = paths.join('\n')
    const fits = Buffer.byteLength(joined) <= HOOK_ENV_PATHS_MAX_BYTES
    env.ASSETSYNC_PATHS = fits ? joined : ''
    env.ASSETSYNC_PATH_COUNT = String(paths.length)
    if (!fits) env.ASSETSYNC_PATHS_TRUNCATED = '1'
    return env
  }

  /** Identity of the root folder now ('' if it is gone). */
  #rootNow(): string {
    try {
      const st = statSync(this.#opts.root)
      return `${st.dev}:${st.ino}`
    } catch {
      return ''
    }
  }

  /**
   * Starts the hook for a batch: the parked launcher if one is ready and the paths fit, else a new
   * process. The batch JSON is written to its stdin. Spawn failures surface as the child's
   * 'error' event (pid undefined), or as a throw for invalid arguments.
   */
  start(paths: readonly string[], stdinJson: string): StartedHook {
    const joined = paths.join('\n')
    const parked = this.#parked
    this.#parked = null
    let child: ChildProcess | null = null
    if (parked) {
      // Started in the root as it was: if the folder was deleted and made again, its cwd is gone.
      const usable = parked.exitCode === null && parked.signalCode === null && parked.pid !== undefined && this.#parkedIn === this.#rootNow()
      // Wire paths are never empty and hold no control characters (paths.ts); anything else
      // could not be told apart from the launcher's framing, so it goes cold.
      const framable = paths.every((p) => p.length > 0 && !/[\u0000-\u001f\u007f]/.test(p))
      if (usable && framable && paths.length > 0 && Buffer.byteLength(joined) <= HOOK_WARM_MAX_PATH_BYTES) {
        child = parked
        for (const s of [child, child.stdin, child.stderr, child.stdio[3]] as (ChildProcess | Socket | null)[]) s?.ref()
        ;(child.stdio[3] as Socket).end(`${joined}\n\n`)
      } else (parked.stdio[3] as Socket | null)?.end() // it exits without running anything
    }
    const warm = child !== null
    if (!child) {
      const options = this.#options(this.#env(paths), false)
      child = this.argv ? spawn(this.argv[0] as string, this.argv.slice(1), options) : spawn(this.#opts.command, { ...options, shell: true })
    }
    child.stdin?.on('error', () => { /* a hook that does not read stdin is fine (EPIPE) */ })
    child.stdin?.end(stdinJson)
    return { child, warm }
  }

  /** Parks a launcher for the next batch (no-op when one is parked, when closed, or not warm). */
  prepare(): void {
    if (!this.#warm || this.#closed || this.#parked) return
    const args = this.argv ? ['exec', ...this.argv] : ['eval', this.#opts.command]
    let child: ChildProcess
    try {
      child = spawn('/bin/sh', ['-c', LAUNCHER, 'sh', ...args], this.#options(this.#env(), true))
    } catch {
      return // cold starts then
    }
    child.on('error', () => { if (this.#parked === child) this.#parked = null })
    child.once('exit', () => { if (this.#parked === child) this.#parked = null })
    child.stdio[3]?.on('error', () => { /* it exited: the next start is cold */ })
    // Parked, it must not keep the process alive; Node exiting closes fd 3 and so ends it.
    for (const s of [child, child.stdin, child.stderr, child.stdio[3]] as (ChildProcess | Socket | null)[]) s?.unref()
    this.#parked = child
    this.#parkedIn = this.#rootNow()
  }

  /** Ends the parked launcher (it runs nothing); later starts are cold. */
  close(): void {
    this.#closed = true
    const parked = this.#parked
    this.#parked = null
    ;(parked?.stdio[3] as Socket | null | undefined)?.end()
  }
}
