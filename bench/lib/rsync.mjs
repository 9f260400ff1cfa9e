// rsync as the reference peer: make sure it is installed (apt-get if not), run a daemon on
// loopback with one read-only module, and run the client with --stats.
import { spawnSync } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { userInfo } from 'node:os'
import { join } from 'node:path'
import { runToEnd, start, stop, waitFor } from './procs.mjs'

function version() {
  const r = spawnSync('rsync', ['--version'], { encoding: 'utf8' })
  if (r.status !== 0) return null
  return (/version\s+(\S+)/.exec(r.stdout) ?? [])[1] ?? 'unknown'
}

/**
 * {ok: true, version} if rsync runs, installing it with apt-get when it is missing; otherwise
 * {ok: false, reason} (the rsync rows are then skipped).
 */
export function ensureRsync({ install = true, log = console.log } = {}) {
  let v = version()
  if (v) return { ok: true, version: v }
  if (!install) return { ok: false, reason: 'rsync not found (and --no-install given)' }
  log('rsync not found: trying apt-get install -y rsync')
  const sudo = process.getuid?.() === 0 ? [] : ['sudo', '-n']
  const run = (args) => spawnSync(sudo[0] ?? args[0], sudo.length ? [...sudo.slice(1), ...args] : args.slice(1),
    { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: 300_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
  let r = run(['apt-get', 'install', '-y', 'rsync'])
  if (r.status !== 0) {
    run(['apt-get', 'update'])
    r = run(['apt-get', 'install', '-y', 'rsync'])
  }
  v = version()
  if (v) return { ok: true, version: v, installed: true }
  return { ok: false, reason: `rsync is not installed and apt-get install failed: ${(r.stderr || r.error?.message || '').trim().split('\n').at(-1)}` }
}

/** A free TCP port on 127.0.0.1 (released before use: a small race, fine on loopback). */
export async function freePort() {
  const s = createServer()
  await new Promise((r) => s.listen(0, '127.0.0.1', r))
  const { port } = s.address()
  await new Promise((r) => s.close(r))
  return port
}

/** True once something accepts TCP connections on 127.0.0.1:port. */
function connectable(port) {
  return new Promise((resolve) => {
    const c = createConnection({ host: '127.0.0.1', port })
    c.once('connect', () => { c.destroy(); resolve(true) })
    c.once('error', () => resolve(false))
  })
}

/** Starts `rsync --daemon --no-detach` serving `dir` as module "mod"; returns {port, url, stop}. */
export async function startRsyncDaemon(dir, workDir) {
  const conf = join(workDir, 'rsyncd.conf')
  const me = userInfo()
  writeFileSync(conf, [
    `pid file = ${join(workDir, 'rsyncd.pid')}`,
    `log file = ${join(workDir, 'rsyncd.log')}`,
    'use chroot = no',
    // As root the daemon would switch to "nobody", who cannot enter a 0700 mkdtemp folder.
    `uid = ${me.username}`,
    `gid = ${spawnSync('id', ['-gn'], { encoding: 'utf8' }).stdout.trim() || me.gid}`,
    '[mod]',
    `  path = ${dir}`,
    '  read only = yes',
    '',
  ].join('\n'))
  const port = await freePort()
  const p = start('rsync', ['--daemon', '--no-detach', `--config=${conf}`, `--port=${port}`, '--address=127.0.0.1'])
  await waitFor(() => connectable(port), 10_000, `the rsync daemon to listen on ${port}`, 50)
  return { port, pid: p.pid, url: `rsync://127.0.0.1:${port}/mod/`, stop: () => stop(p) }
}

const num = (s, re) => {
  const m = re.exec(s)
  return m ? Number(m[1].replace(/,/g, '')) : NaN
}

const TIME = '/usr/bin/time'

/**
 * Runs `rsync -a --stats [args] <url> <dest>/` (args: e.g. `--no-whole-file`, `--delete`); returns
 * {wallMs, stats, cpuS}. Throws on failure. With `cpu` (and /usr/bin/time installed) the client
 * runs under /usr/bin/time: cpuS is its user + system seconds (else NaN).
 */
export async function rsyncPull(url, dest, { timeoutMs = 600_000, cpu = false, args = [] } = {}) {
  const timed = cpu && existsSync(TIME)
  const argv = ['-a', '--stats', ...args, url, `${dest}/`]
  const r = await runToEnd(timed ? TIME : 'rsync', timed ? ['-f', 'cpu %U %S', 'rsync', ...argv] : argv, { timeoutMs })
  const out = r.p.text.join('\n')
  if (r.code !== 0) throw new Error(`rsync exited ${r.code}: ${r.p.stderrText.trim().slice(-400)}`)
  const t = /cpu ([\d.]+) ([\d.]+)\s*$/.exec(r.p.stderrText)
  return {
    wallMs: r.wallMs,
    cpuS: t ? Number(t[1]) + Number(t[2]) : NaN,
    stats: {
      files: num(out, /Number of regular files transferred:\s+([\d,]+)/),
      totalFileBytes: num(out, /Total file size:\s+([\d,]+)/),
      transferredFileBytes: num(out, /Total transferred file size:\s+([\d,]+)/),
      literalBytes: num(out, /Literal data:\s+([\d,]+)/),
      matchedBytes: num(out, /Matched data:\s+([\d,]+)/),
      bytesSent: num(out, /Total bytes sent:\s+([\d,]+)/),
      bytesReceived: num(out, /Total bytes received:\s+([\d,]+)/),
    },
  }
}
