// HookRunner's fast starts (src/core/client/hooks.ts, src/core/client/hook-spawn.ts): a command of plain words
// runs without a shell, and the next hook process is parked ahead of time (warm) — with the same
// environment, stdin, cwd, process group, timeout kill and exit codes as `sh -c` started on
// demand (cold); anything with shell syntax still runs in a shell. Every behaviour is checked
// both warm and cold. Real processes: the hooks are small sh scripts that record what they got.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { chmod, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type Change, type HookResult, HookRunner, directArgv } from '../../src/core/client/hooks.js'
import { HOOK_WARM_MAX_PATH_BYTES } from '../../src/limits.js'
import { waitFor } from '../helpers/common.js'
import { processGone } from '../helpers/watch.js'

let dir: string
const runners: HookRunner[] = []

beforeEach(async () => {
  dir = await realpath(await mkdtemp(join(tmpdir(), 'assetsync-hooks-direct-')))
})

afterEach(async () => {
  await Promise.all(runners.splice(0).map(async (r) => { await r.idle(); r.close() }))
  await rm(dir, { recursive: true, force: true })
})

/** Writes an executable sh script `name` into the test folder. */
async function script(name: string, body: string): Promise<string> {
  const p = join(dir, name)
  await writeFile(p, `#!/bin/sh\n${body}\n`)
  await chmod(p, 0o755)
  return p
}

async function runOnce(command: string, changes: Change[], warm: boolean, timeoutMs?: number): Promise<{ hooks: HookRunner; result: HookResult }> {
  const hooks = new HookRunner({ command, root: dir, warm, ...(timeoutMs ? { timeoutMs } : {}) })
  runners.push(hooks)
  const done: HookResult[] = []
  hooks.on('done', (r: HookResult) => done.push(r))
  hooks.enqueue(changes)
  await hooks.idle()
  expect(done).toHaveLength(1)
  return { hooks, result: done[0] as HookResult }
}

const read = (f: string): Promise<string> => readFile(join(dir, f), 'utf8')

/**
 * Records everything a hook can see: its parent's pid ($PPID: this test process when spawned
 * directly, an intermediate `sh` otherwise), its process group, cwd, the ASSETSYNC_* variables,
 * its arguments (one per line) and stdin.
 */
const RECORDER = [
  'echo "$PPID" > ppid.out',
  'echo "$$ $(cut -d" " -f5 /proc/$$/stat)" > pgid.out',
  'pwd -P > cwd.out',
  'printf "%s" "$ASSETSYNC_ROOT" > root.out',
  'printf "%s" "$ASSETSYNC_EVENT" > event.out',
  'printf "%s" "$ASSETSYNC_PATHS" > paths.out',
  'for a in "$@"; do printf "%s\\n" "$a"; done > args.out',
  'cat > stdin.out',
].join('\n')

describe('directArgv: which commands run without a shell', () => {
  it('splits commands of plain words (letters, digits, - _ . / = : @ % + , and spaces)', () => {
    expect(directArgv('kill -HUP 4242')).toEqual(['kill', '-HUP', '4242'])
    expect(directArgv('./reload.sh --level=3 a%b x,y u@h:9 +1')).toEqual(['./reload.sh', '--level=3', 'a%b', 'x,y', 'u@h:9', '+1'])
    expect(directArgv('  touch   /tmp/reload.flag  ')).toEqual(['touch', '/tmp/reload.flag'])
    expect(directArgv('curl -s http://127.0.0.1:8080/reload')).toEqual(['curl', '-s', 'http://127.0.0.1:8080/reload'])
  })

  it('keeps `sh -c` for any shell syntax, assignments, keywords and shell-only builtins', () => {
    const shell = [
      'echo "quoted"', "echo 'quoted'", 'echo $HOME', 'echo ${X}', 'a; b', 'a | b', 'a && b', 'a & b', 'a > f', 'a < f',
      'ls *.json', 'ls file?.txt', 'ls [ab]', 'cd ~', 'echo a\\ b', 'echo $(date)', 'echo `date`', '(cd x)', '{ a; }',
      'a\nb', 'a\tb', 'echo #comment', 'echo !x', 'FOO=1 make', 'A=b', 'cd /tmp', 'exit 3', '. ./env.sh', ': noop',
      'export X', 'if', 'source x', 'exec cmd', 'wait', 'ulimit -n', '', '   ',
    ]
    for (const c of shell) expect(directArgv(c), JSON.stringify(c)).toBeNull()
  })
})

describe.each([{ warm: true }, { warm: false }])('HookRunner with a plain command (no shell), warm: $warm', ({ warm }) => {
  it('spawns the program itself, with ASSETSYNC_* variables, stdin JSON, arguments, cwd and its own process group', async () => {
    await script('hook.sh', RECORDER)
    const changes: Change[] = [{ path: 'levels/a level.json', action: 'change' }, { path: 'old.txt', action: 'delete' }]
    const { hooks, result } = await runOnce('./hook.sh --mode=fast a%b x,y', changes, warm)
    expect(hooks.direct).toBe(true)
    expect(result).toMatchObject({ exitCode: 0, signal: null, timedOut: false, direct: true, warm, changes })
    // No shell in between: the hook's parent is this process.
    expect(Number(await read('ppid.out'))).toBe(process.pid)
    const [pid, pgid] = (await read('pgid.out')).trim().split(' ')
    expect(pgid).toBe(pid) // leader of its own process group (detached), so a timeout can kill the group
    expect((await read('cwd.out')).trim()).toBe(dir)
    expect(await read('root.out')).toBe(dir)
    expect(await read('event.out')).toBe('applied')
    expect((await read('paths.out')).split('\n')).toEqual(changes.map((c) => c.path))
    expect((await read('args.out')).split('\n')).toEqual(['--mode=fast', 'a%b', 'x,y', ''])
    expect(JSON.parse(await read('stdin.out'))).toEqual({ event: 'applied', root: dir, changes })
  })

  it('the same script behind shell syntax runs through sh -c and sees the same variables and stdin', async () => {
    await script('hook.sh', RECORDER)
    const changes: Change[] = [{ path: 'x.lua', action: 'change' }]
    const { hooks, result } = await runOnce('./hook.sh "--mode=fast" && true', changes, warm)
    expect(hooks.direct).toBe(false)
    expect(result).toMatchObject({ exitCode: 0, timedOut: false, direct: false, warm })
    // A shell started it (the parked one evaluates the command): its parent is that `sh`.
    expect(Number(await read('ppid.out'))).not.toBe(process.pid)
    expect(await read('event.out')).toBe('applied')
    expect(await read('root.out')).toBe(dir)
    expect(await read('paths.out')).toBe('x.lua')
    expect((await read('args.out')).split('\n')).toEqual(['--mode=fast', ''])
    expect(JSON.parse(await read('stdin.out'))).toEqual({ event: 'applied', root: dir, changes })
  })

  it('reports the exit code of a failing hook, and 128 + n for one killed by a signal (as sh would)', async () => {
    await script('fail.sh', 'exit 7')
    expect((await runOnce('./fail.sh', [{ path: 'a', action: 'change' }], warm)).result).toMatchObject({ exitCode: 7, timedOut: false, direct: true })
    await script('selfkill.sh', 'kill -TERM $$\nsleep 5')
    const direct = (await runOnce('./selfkill.sh', [{ path: 'a', action: 'change' }], warm)).result
    expect(direct).toMatchObject({ exitCode: 143, signal: 'SIGTERM', timedOut: false, direct: true })
    const viaShell = (await runOnce('./selfkill.sh;', [{ path: 'a', action: 'change' }], warm)).result
    expect(viaShell).toMatchObject({ exitCode: 143, timedOut: false, direct: false })
  })

  it('a program that does not exist is a failing hook with exit code 127, and the runner keeps going', async () => {
    const hooks = new HookRunner({ command: 'assetsync-no-such-command-x1 --flag', root: dir, warm })
    runners.push(hooks)
    const done: HookResult[] = []
    hooks.on('done', (r: HookResult) => done.push(r))
    hooks.enqueue([{ path: 'a', action: 'change' }])
    await hooks.idle()
    hooks.enqueue([{ path: 'b', action: 'change' }])
    await hooks.idle()
    expect(hooks.direct).toBe(true)
    expect(done).toHaveLength(2)
    for (const r of done) {
      expect(r).toMatchObject({ exitCode: 127, signal: null, timedOut: false, direct: true, warm })
      // Cold, Node could not start it (ENOENT); warm, the parked launcher's exec says "not found".
      if (!warm) expect(r.error).toMatch(/ENOENT/)
    }
    expect(done.map((r) => r.changes[0]?.path)).toEqual(['a', 'b'])
  })

  it('a file that is not executable is a failing hook with exit code 126', async () => {
    await writeFile(join(dir, 'notexec'), 'echo hi\n')
    const { result } = await runOnce('./notexec', [{ path: 'a', action: 'change' }], warm)
    expect(result).toMatchObject({ exitCode: 126, timedOut: false, direct: true, warm })
    if (!warm) expect(result.error).toMatch(/EACCES/)
  })

  it('kills a hanging direct hook and everything it started after timeoutMs', async () => {
    await script('hang.sh', 'sleep 30 &\necho $! > child.pid\nwait')
    const t0 = Date.now()
    const { result } = await runOnce('./hang.sh', [{ path: 'a', action: 'change' }], warm, 400)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350)
    expect(result).toMatchObject({ timedOut: true, exitCode: null, signal: 'SIGKILL', direct: true })
    const pid = Number(await read('child.pid'))
    expect(pid).toBeGreaterThan(0)
    await waitFor(() => processGone(pid), 3000, `the hook's child ${pid} to be gone`)
  })

  it('a plain system command works too (PATH lookup, like sh)', async () => {
    const { result } = await runOnce('touch ran.flag', [{ path: 'a', action: 'change' }], warm)
    expect(result).toMatchObject({ exitCode: 0, direct: true })
    expect(existsSync(join(dir, 'ran.flag'))).toBe(true)
  })
})

/** Pids of live processes whose command line contains `marker`. */
function processesWith(marker: string): number[] {
  const out: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8')
      if (cmdline.includes(marker) && !processGone(Number(name))) out.push(Number(name))
    } catch { /* gone */ }
  }
  return out
}

describe('the parked (warm) hook process', () => {
  it('hands over paths exactly, whatever characters they hold; a batch too big for the pipe starts cold, as correct', async () => {
    await script('paths.sh', 'printf "%s" "$ASSETSYNC_PATHS" > "paths.$(ls | grep -c "^paths\\.[0-9]")"; cat > /dev/null')
    const hooks = new HookRunner({ command: './paths.sh', root: dir })
    runners.push(hooks)
    const done: HookResult[] = []
    hooks.on('done', (r: HookResult) => done.push(r))
    const odd = ['it\'s $HOME "x".json', ' lead space/trail ', '日本/ü.lua', '-dash', 'a;b|c&d', '`x`', '*', 'go', '%s %n']
    hooks.enqueue(odd.map((path) => ({ path, action: 'change' })))
    await hooks.idle()
    // Exactly HOOK_WARM_MAX_PATH_BYTES of newline-joined paths still go warm; one byte more, cold.
    const fill = (bytes: number): string[] => {
      const paths = Array.from({ length: Math.floor(bytes / 64) }, (_, i) => `folder-${i}/${'x'.repeat(40)}-${String(i).padStart(4, '0')}.json`)
      const rest = bytes - paths.join('\n').length - 1
      return [...paths, `last/${'y'.repeat(rest - 5)}`]
    }
    const atLimit = fill(HOOK_WARM_MAX_PATH_BYTES)
    const overLimit = fill(HOOK_WARM_MAX_PATH_BYTES + 1)
    expect(Buffer.byteLength(atLimit.join('\n'))).toBe(HOOK_WARM_MAX_PATH_BYTES)
    for (const batch of [atLimit, overLimit]) {
      hooks.enqueue(batch.map((path) => ({ path, action: 'change' })))
      await hooks.idle()
    }
    expect(done.map((r) => [r.exitCode, r.warm])).toEqual([[0, true], [0, true], [0, false]])
    expect((await read('paths.0')).split('\n')).toEqual(odd)
    expect((await read('paths.1')).split('\n')).toEqual(atLimit)
    expect((await read('paths.2')).split('\n')).toEqual(overLimit)
  })

  it('runs nothing when closed (and is gone); a runner started later parks a fresh one', async () => {
    const marker = join(dir, 'touch-me.sh')
    await script('touch-me.sh', 'touch "$ASSETSYNC_ROOT/touched"')
    const hooks = new HookRunner({ command: marker, root: dir })
    expect(processesWith(marker), 'one parked launcher').toHaveLength(1)
    hooks.close()
    await waitFor(() => processesWith(marker).length === 0, 3000, 'the parked launcher to exit')
    await new Promise((r) => setTimeout(r, 100))
    expect(existsSync(join(dir, 'touched'))).toBe(false)
    // After close, runs still work (cold), and nothing stays parked.
    const done: HookResult[] = []
    hooks.on('done', (r: HookResult) => done.push(r))
    hooks.enqueue([{ path: 'a', action: 'change' }])
    await hooks.idle()
    expect(done[0]).toMatchObject({ exitCode: 0, warm: false })
    expect(existsSync(join(dir, 'touched'))).toBe(true)
    expect(processesWith(marker)).toEqual([])
  })

  it('a parked launcher whose parent goes away exits without running the hook', async () => {
    const marker = join(dir, 'orphan.sh')
    await script('orphan.sh', 'touch "$ASSETSYNC_ROOT/ran"')
    // A separate Node process parks a launcher, then exits without closing it.
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', `
      import { HookRunner } from ${JSON.stringify(new URL('../../dist/core/client/hooks.js', import.meta.url).href)}
      new HookRunner({ command: ${JSON.stringify(marker)}, root: ${JSON.stringify(dir)} })
    `], { encoding: 'utf8', timeout: 20_000 })
    expect(child.status, child.stderr).toBe(0)
    await waitFor(() => processesWith(marker).length === 0, 3000, 'the orphaned launcher to exit')
    expect(existsSync(join(dir, 'ran'))).toBe(false)
  })
})
