/**
 * The project file end to end, through the built CLI: `assetsync serve` and `assetsync pull` with
 * no flags at all in a folder holding assetsync.json, and the precedence of a token given by the
 * file, by ASSETSYNC_TOKEN and by --token against a real server that requires it.
 */
import { chmod, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EXIT } from '../../src/errors.js'
import { ensureBuilt, parseEvents, Sandbox } from '../helpers/cli.js'
import { waitFor } from '../helpers/common.js'
import { writeTree } from '../helpers/trees.js'

describe('assetsync.json, end to end', () => {
  let sb: Sandbox
  let project: string
  let stop: (() => void) | null = null
  let port = 0

  beforeAll(async () => {
    ensureBuilt()
    sb = await Sandbox.create('config-e2e')
    project = await sb.mkdir('project')
    await writeTree(join(project, 'assets'), { 'main.lua': 'print(1)\n', 'levels/one.json': '{}\n' })
    const file = join(project, 'assetsync.json')
    await writeFile(file, JSON.stringify({
      $schema: '../assetsync.schema.json',
      serve: { dir: 'assets', host: '127.0.0.1', port: 0, json: true, token: 'from-file' },
    }))
    await chmod(file, 0o600)
    const s = sb.spawn(['serve'], { cwd: project, timeoutMs: 120_000 })
    stop = () => s.proc.kill('SIGTERM')
    const listening = await waitFor(() => {
      const text = s.stdoutSoFar()
      return parseEvents(text.slice(0, text.lastIndexOf('\n') + 1)).find((e) => e.event === 'listening')
    }, 20_000, 'serve to print its listening event', { detail: () => s.stderrSoFar() })
    expect(listening).toMatchObject({ host: '127.0.0.1', files: 2 })
    port = listening.port as number
    expect(port).toBeGreaterThan(0)
    // Now the client half, knowing the port.
    const config = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>
    await writeFile(file, JSON.stringify({ ...config, client: { server: `127.0.0.1:${port}`, token: 'from-file', out: 'mirror', json: true } }))
  }, 60_000)

  afterAll(async () => {
    stop?.()
    await sb?.cleanup()
  })

  it('serve took dir, host, port, --json and the token from the file; pull takes server, token and out', async () => {
    const r = await sb.run(['pull'], { cwd: project, env: { ASSETSYNC_TOKEN: undefined } })
    expect([r.code, r.stderr]).toEqual([0, ''])
    expect(parseEvents(r.stdout).at(-1)).toMatchObject({ event: 'summary', files: 2, downloaded: 2 })
    expect(await readFile(join(project, 'mirror', 'levels', 'one.json'), 'utf8')).toBe('{}\n')
  })

  it('ASSETSYNC_TOKEN wins over the file, and --token wins over both', async () => {
    const envWrong = await sb.run(['pull'], { cwd: project, env: { ASSETSYNC_TOKEN: 'wrong' } })
    expect(envWrong.code).toBe(EXIT.AUTH)
    const flagRight = await sb.run(['pull', '--token', 'from-file'], { cwd: project, env: { ASSETSYNC_TOKEN: 'wrong' } })
    expect([flagRight.code, flagRight.stderr]).toEqual([0, ''])
    const flagWrong = await sb.run(['pull', '--token', 'nope'], { cwd: project, env: { ASSETSYNC_TOKEN: undefined } })
    expect(flagWrong.code).toBe(EXIT.AUTH)
  })

  it('a typo in the file stops the command before it connects, naming key and file', async () => {
    const bad = join(project, 'typo.json')
    await writeFile(bad, JSON.stringify({ client: { sever: `127.0.0.1:${port}` } }))
    const r = await sb.run(['pull', '--config', bad, '--server', `127.0.0.1:${port}`], { cwd: project })
    expect(r.code).toBe(EXIT.USAGE)
    expect(r.stderr).toBe(`assetsync: ${bad}: unknown key "client.sever" (did you mean "server"?) (client keys: server, token, key, transport, timeout, idle-timeout, out, prune, dry-run, exec, hook-timeout, lua-path, tick, once, direct, s3-endpoint, json)\n`)
  })
})
