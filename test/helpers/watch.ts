/**
 * Helpers for the watch tests (test/watch): a `watch --json` process
 * handle, a shell hook that records every run to a log, and writers that save a file in pieces.
 * Processes are spawned through test/helpers/cli.ts's Sandbox, which owns and ends them.
 */
import { readFileSync } from 'node:fs'
import { open, readFile } from 'node:fs/promises'
import { type CliResult, parseEvents, type Sandbox, type SpawnedCli } from './cli.js'
import { sha256, waitFor } from './common.js'
import { diffTrees } from './trees.js'

export type Event = { event: string } & Record<string, unknown>

/** Complete NDJSON lines of a process's stdout so far, parsed. */
export function completeEvents(text: string): Event[] {
  return parseEvents(text.slice(0, text.lastIndexOf('\n') + 1))
}

/**
 * Polls until the regular files of `a` and `b` are equal (diffTrees with filesOnly: folders are not
 * compared, so an emptied folder is no difference); the timeout error lists the differences.
 */
export async function waitForSameFiles(a: string, b: string, ms: number, only?: (rel: string) => boolean): Promise<void> {
  let last: string[] = []
  await waitFor(async () => {
    try {
      last = await diffTrees(a, b, { filesOnly: true, ...(only ? { only } : {}) })
    } catch (err) {
      // A file renamed or removed between readdir and lstat: look again.
      last = [`(diff failed: ${(err as Error).message})`]
    }
    return last.length === 0
  }, ms, `the files of ${b} to equal those of ${a}`, { everyMs: 25, detail: () => last.slice(0, 20).join('\n') })
}

export interface WatchHandle {
  cli: SpawnedCli
  out: string
  /** The `synced` event. */
  synced: Event
  events(): Event[]
  stderr(): string
  /** Waits for the first event (counting from `from`, an index into events()) matching `pred`. */
  waitEvent(pred: (e: Event) => boolean, ms: number, what: string, from?: number): Promise<Event>
  /** Paths of every `applied` event so far, in order. */
  appliedPaths(): string[]
  exited: Promise<CliResult>
}

export interface WatchOptions {
  out: string
  patterns?: string[]
  exec?: string
  args?: string[]
  /** Wait this long for the `synced` event. */
  readyMs?: number
  /** The CLI entry to run instead of bin/assetsync.js (e.g. a vendored earlier release). */
  bin?: string
  /** SIGKILL the watcher after this long (default 600 s; the soak runs longer). */
  timeoutMs?: number
}

/** `assetsync watch --server <addr> --out <out> --json [--exec ...] [patterns...]`; resolves after `synced`. */
export async function startWatch(sb: Sandbox, addr: string, o: WatchOptions): Promise<WatchHandle> {
  const args = ['watch', '--server', addr, '--out', o.out, '--json', ...(o.exec ? ['--exec', o.exec] : []), ...(o.args ?? []), ...(o.patterns ?? [])]
  const cli = sb.spawn(args, { timeoutMs: o.timeoutMs ?? 600_000, ...(o.bin ? { bin: o.bin } : {}) })
  let exited: CliResult | null = null
  const exitedP = cli.result.then((r) => { exited = r; return r })
  const events = (): Event[] => completeEvents(cli.stdoutSoFar())
  const waitEvent = (pred: (e: Event) => boolean, ms: number, what: string, from = 0): Promise<Event> =>
    waitFor(() => {
      const hit = events().slice(from).find(pred)
      if (hit) return hit
      if (exited) throw new Error(`watch exited (${exited.code ?? exited.signal}) while waiting for ${what}: ${exited.stderr.trim()}`)
      return null
    }, ms, what, { detail: () => `events: ${cli.stdoutSoFar().slice(-2000)}\nstderr: ${cli.stderrSoFar().slice(-2000)}` })
  const synced = await waitEvent((e) => e.event === 'synced', o.readyMs ?? 20_000, 'watch to print {"event":"synced"}')
  return {
    cli,
    out: o.out,
    synced,
    events,
    stderr: cli.stderrSoFar,
    waitEvent,
    appliedPaths: () => events().filter((e) => e.event === 'applied')
      .flatMap((e) => (e.changes as { path: string }[]).map((c) => c.path)),
    exited: exitedP,
  }
}

// --- hooks ---------------------------------------------------------------------------------

export interface HookRun {
  event: string
  root: string
  paths: string[]
  /** The batch JSON the hook read on stdin. */
  stdin: { event: string; root: string; changes: { path: string; action: string }[] }
  /** Lines the `extra` shell snippet printed. */
  extra: string[]
}

/** Single-quotes `s` for sh. */
export function shq(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`
}

/**
 * A hook command that appends one record per run to `log`: event, root, ASSETSYNC_PATHS, stdin
 * and whatever `extra` (shell, run with cwd = the mirror root) prints; it also appends "OVERLAP"
 * if another run is still inside (never two at once). Exits with `exitCode`.
 */
export function recordingHook(log: string, extra = '', exitCode = 0): string {
  const l = shq(log)
  const lock = shq(`${log}.lock`)
  return [
    `mkdir ${lock} 2>/dev/null || echo OVERLAP >> ${l}`,
    `{ echo '<<<RUN'`,
    `printf 'EVENT %s\\n' "$ASSETSYNC_EVENT"`,
    `printf 'ROOT %s\\n' "$ASSETSYNC_ROOT"`,
    `printf '%s\\n' "$ASSETSYNC_PATHS" | sed 's/^/PATH /'`,
    `printf 'STDIN '; cat`,
    ...(extra ? [`{ ${extra}; } | sed 's/^/EXTRA /'`] : []),
    `echo '>>>END'; } > ${l}.part`,
    // One append per run, so a reader never sees half a record.
    `cat ${l}.part >> ${l}`,
    `rmdir ${lock}`,
    `exit ${exitCode}`,
  ].join('\n')
}

/** The completed records of a recordingHook log (throws if a run overlapped another). */
export function readHookRuns(log: string): HookRun[] {
  let text: string
  try {
    text = readFileSync(log, 'utf8')
  } catch {
    return []
  }
  if (text.includes('OVERLAP')) throw new Error(`two hook runs overlapped (${log})`)
  const runs: HookRun[] = []
  for (const block of text.split('<<<RUN\n').slice(1)) {
    const end = block.indexOf('>>>END\n')
    if (end < 0) continue
    const run: HookRun = { event: '', root: '', paths: [], stdin: { event: '', root: '', changes: [] }, extra: [] }
    for (const line of block.slice(0, end).split('\n')) {
      if (line.startsWith('EVENT ')) run.event = line.slice(6)
      else if (line.startsWith('ROOT ')) run.root = line.slice(5)
      else if (line.startsWith('PATH ')) run.paths.push(line.slice(5))
      else if (line.startsWith('STDIN ')) run.stdin = JSON.parse(line.slice(6)) as HookRun['stdin']
      else if (line.startsWith('EXTRA ')) run.extra.push(line.slice(6))
    }
    runs.push(run)
  }
  return runs
}

// --- writers -------------------------------------------------------------------------------

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/**
 * Writes `data` to `file` in `pieces` appends through one open handle, pausing `pauseMs` (a number
 * or a function of the piece index) between pieces: a slow writer that is never quiet for long.
 */
export async function writeInPieces(file: string, data: Buffer, pieces: number, pauseMs: number | ((i: number) => number)): Promise<void> {
  const fh = await open(file, 'w')
  try {
    const step = Math.ceil(data.length / pieces)
    for (let i = 0, off = 0; off < data.length; i++, off += step) {
      if (i > 0) await sleep(typeof pauseMs === 'number' ? pauseMs : pauseMs(i))
      await fh.write(data, off, Math.min(step, data.length - off), off)
    }
  } finally {
    await fh.close()
  }
}

/** SHA-256 (hex) of a file's content, or null if it cannot be read. */
export async function sha256OfFile(file: string): Promise<string | null> {
  try {
    return sha256(await readFile(file)).toString('hex')
  } catch {
    return null
  }
}

/** True when `pid` no longer runs (gone, or a zombie nobody reaped). */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return true
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return true
  }
}

/**
 * The hook runs a watcher's `--json` events imply, each as the batches it was handed: HookRunner
 * (src/core/client/hooks.ts) starts a run on an `applied` batch when none is running, and merges
 * the batches applied meanwhile into the run that starts right after the `hook` event. Compare
 * with `readHookRuns` to check that every applied batch reached exactly one hook run.
 */
export function expectedHookRuns(events: Event[]): { path: string; action: string }[][][] {
  const runs: { path: string; action: string }[][][] = []
  let running: { path: string; action: string }[][] | null = null
  let pending: { path: string; action: string }[][] = []
  for (const e of events) {
    if (e.event === 'applied') {
      const batch = e.changes as { path: string; action: string }[]
      if (running) pending.push(batch)
      else running = [batch]
    } else if (e.event === 'hook' && running) {
      runs.push(running)
      running = pending.length > 0 ? pending : null
      pending = []
    }
  }
  if (running) runs.push(running) // still running (or its `hook` event not printed yet)
  return runs
}

/** A hook run's changes as a sorted list of "action path" (the merge of its batches: last action per path wins). */
export function changeSet(batches: { path: string; action: string }[][]): string[] {
  const byPath = new Map<string, string>()
  for (const b of batches) for (const c of b) byPath.set(c.path, c.action)
  return [...byPath].map(([p, a]) => `${a} ${p}`).sort()
}
