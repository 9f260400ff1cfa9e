/**
 * The project file: lookup, validation (each kind of bad file is exit 2 naming the key and the
 * file), the 0600 rule for tokens, and precedence flags > env > file > defaults, through the real
 * CLI program (buildProgram) with only the command actions replaced by recorders.
 */
import { chmod, mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { Command, Option } from 'commander'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { buildProgram, run } from '../../src/cli.js'
import { applySection, loadProjectConfig, optionSources, parseProjectConfig } from '../../src/commands/config.js'
import type { OutputStreams } from '../../src/commands/output.js'
import { EXIT } from '../../src/errors.js'

let dir: string
const savedCwd = process.cwd()
const savedToken = process.env.ASSETSYNC_TOKEN

function streams(): OutputStreams & { err: () => string } {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let err = ''
  stderr.on('data', (d: Buffer) => { err += d.toString() })
  stdout.resume()
  return { stdout, stderr, err: () => err }
}

async function writeConfig(name: string, body: unknown, mode = 0o600): Promise<string> {
  const file = join(dir, name)
  await writeFile(file, typeof body === 'string' ? body : JSON.stringify(body, null, 2))
  await chmod(file, mode)
  return file
}

interface Seen { args: unknown[]; flags: Record<string, unknown>; sources: Record<string, string | undefined> }

/** Parses argv with the real program, the `name` command's action replaced by a recorder. */
async function parse(name: string, argv: string[]): Promise<Seen> {
  const io = streams()
  const program = buildProgram(io)
  const cmd = program.commands.find((c) => c.name() === name) as Command
  let seen: Seen | null = null
  cmd.action((...a: unknown[]) => {
    const c = a[a.length - 1] as Command
    seen = { args: a.slice(0, -2), flags: c.opts(), sources: optionSources(c) }
  })
  await program.parseAsync(['node', 'assetsync', name, ...argv])
  if (!seen) throw new Error(`no action ran; stderr: ${io.err()}`)
  return seen
}

/** Runs the real CLI and returns the exit code and stderr. */
async function cli(argv: string[]): Promise<{ code: number; err: string }> {
  const io = streams()
  const code = await run(['node', 'assetsync', ...argv], io)
  return { code, err: io.err() }
}

beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'assetsync-config-')) })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })
beforeEach(() => { delete process.env.ASSETSYNC_TOKEN })
afterEach(() => {
  process.chdir(savedCwd)
  if (savedToken === undefined) delete process.env.ASSETSYNC_TOKEN
  else process.env.ASSETSYNC_TOKEN = savedToken
})

describe('precedence: flags > env > file > defaults', () => {
  // Every combination of (flag typed, env set, file has it) for the token, which has all four layers.
  const combos = [0, 1, 2, 3, 4, 5, 6, 7].map((n) => ({ flag: !!(n & 4), env: !!(n & 2), file: !!(n & 1) }))
  for (const c of combos) {
    it(`token: flag ${c.flag ? 'typed' : '-'}, env ${c.env ? 'set' : '-'}, file ${c.file ? 'has it' : '-'}`, async () => {
      const file = await writeConfig(`token-${c.flag}-${c.env}-${c.file}.json`, { serve: c.file ? { token: 'from-file' } : {} })
      if (c.env) process.env.ASSETSYNC_TOKEN = 'from-env'
      const seen = await parse('serve', ['--config', file, ...(c.flag ? ['--token', 'from-flag'] : [])])
      const want = c.flag ? ['from-flag', 'cli'] : c.env ? ['from-env', 'env'] : c.file ? ['from-file', 'config'] : [undefined, undefined]
      expect([seen.flags.token, seen.sources.token]).toEqual(want)
    })
  }

  // Keys with no environment variable: flag > file > default, for each value shape.
  it.each([
    ['port', ['--port', '9001'], { port: 9002 }, '9001', '9002', '7420'],
    ['transport', ['--transport', 'tcp'], { transport: 'tcp' }, 'tcp', 'tcp', 'udp'],
    ['settle', ['--settle', '5'], { settle: 7.5 }, '5', '7.5', undefined],
    ['json', ['--json'], { json: true }, true, true, undefined],
    ['ignore', ['--ignore', 'a/**', 'b/**'], { ignore: ['c/**'] }, ['a/**', 'b/**'], ['c/**'], undefined],
  ] as const)('serve %s: flag, then file, then default', async (key, flag, body, fromFlag, fromFile, fromDefault) => {
    const file = await writeConfig(`serve-${key}.json`, { serve: body })
    const empty = await writeConfig(`serve-${key}-empty.json`, { serve: {} })
    expect((await parse('serve', ['--config', file, ...flag])).flags[key]).toEqual(fromFlag)
    const viaFile = await parse('serve', ['--config', file])
    expect([viaFile.flags[key], viaFile.sources[key]]).toEqual([fromFile, 'config'])
    const none = await parse('serve', ['--config', empty])
    expect([none.flags[key], none.sources[key]]).toEqual([fromDefault, fromDefault === undefined ? undefined : 'default'])
  })

  it('a file value satisfies the mandatory --server, and a typed --server replaces it', async () => {
    const file = await writeConfig('client.json', { client: { server: '10.0.0.5:7420', timeout: 2, out: 'mirror', prune: true } })
    const seen = await parse('pull', ['--config', file])
    expect(seen.flags).toMatchObject({ server: '10.0.0.5:7420', timeout: '2', out: join(dir, 'mirror'), prune: true })
    expect((await parse('pull', ['--config', file, '--server', 'h:1'])).flags.server).toBe('h:1')
    // Without the file, --server is still mandatory.
    const empty = await writeConfig('client-empty.json', {})
    expect((await cli(['pull', '--config', empty])).code).toBe(EXIT.USAGE)
  })

  it('the serve section fills the [dir] argument (relative to the file), a typed dir wins', async () => {
    await mkdir(join(dir, 'sub'), { recursive: true })
    const file = await writeConfig('sub/dir.json', { serve: { dir: '../assets' } })
    expect((await parse('serve', ['--config', file])).args[0]).toBe(join(dir, 'assets'))
    expect((await parse('serve', ['--config', file, 'elsewhere'])).args[0]).toBe('elsewhere')
  })

  it('reads ./assetsync.json from the working folder when --config is not given', async () => {
    const here = await mkdtemp(join(dir, 'cwd-'))
    await writeFile(join(here, 'assetsync.json'), JSON.stringify({ serve: { port: 9100 } }))
    process.chdir(here)
    const seen = await parse('serve', [])
    expect([seen.flags.port, seen.sources.port]).toEqual(['9100', 'config'])
    expect(await loadProjectConfig(undefined, dir)).toBeNull() // none there: no file, no error
  })

  it('an env variable listed in the table but not declared on the option still sits between flag and file', () => {
    // A future option without Option.env(): applySection reads the table's env itself.
    const cmd = new Command('pull').addOption(new Option('--token <t>'))
    const config = parseProjectConfig('{"client":{"token":"f"}}', { file: 'x.json', path: join(dir, 'x.json'), mode: 0o100600 })
    applySection(cmd, 'client', config, { ASSETSYNC_TOKEN: 'e' })
    expect([cmd.getOptionValue('token'), cmd.getOptionValueSource('token')]).toEqual(['e', 'env'])
    applySection(cmd, 'client', config, {})
    expect([cmd.getOptionValue('token'), cmd.getOptionValueSource('token')]).toEqual(['f', 'config'])
    cmd.parse(['--token', 'c'], { from: 'user' })
    expect([cmd.getOptionValue('token'), cmd.getOptionValueSource('token')]).toEqual(['c', 'cli'])
  })
})

describe('bad project files are usage errors (exit 2) naming the key and the file', () => {
  const cases: [string, string | object, RegExp][] = [
    ['unknown key', { serve: { prot: 7420 } }, /unknown key "serve\.prot" \(did you mean "port"\?\)/],
    ['unknown section', { server: {} }, /unknown section "server" \(did you mean "serve"\?\)/],
    ['wrong type: string for integer', { serve: { port: '7420' } }, /"serve\.port" must be an integer >= 0 and <= 65535, got "7420"/],
    ['wrong type: out of range', { serve: { port: 70000 } }, /"serve\.port" must be an integer/],
    ['wrong type: not a boolean', { client: { prune: 'yes' } }, /"client\.prune" must be true or false, got "yes"/],
    ['wrong type: not an enum value', { client: { transport: 'quic' } }, /"client\.transport" must be one of "udp", "tcp"/],
    ['wrong type: not an array', { serve: { ignore: 'dist/**' } }, /"serve\.ignore" must be an array of non-empty strings/],
    ['wrong format: server', { client: { server: 'no-port' } }, /"client\.server" must be a string: host:port/],
    ['wrong format: key', { client: { key: 'abc' } }, /"client\.key" must be a string: 64 hex digits/],
    ['a section that is not an object', { serve: [] }, /"serve" must be an object/],
    ['not an object', '[1, 2]', /must hold a JSON object/],
    ['bad JSON', '{\n  "serve": {\n    "port": 7420,\n  }\n}', /not valid JSON: .* at line 4 column 3/],
    ['$schema not a string', { $schema: 5 }, /"\$schema" must be a string/],
  ]
  for (const [what, body, message] of cases) {
    it(what, async () => {
      const file = await writeConfig(`bad-${what.replace(/\W+/g, '-')}.json`, body)
      const { code, err } = await cli(['serve', '--config', file, '--port', '0'])
      expect(code).toBe(EXIT.USAGE)
      expect(err).toMatch(/^assetsync: /)
      expect(err).toContain(file)
      expect(err).toMatch(message)
      expect(err.trim().split('\n')).toHaveLength(1)
    })
  }

  it('a missing --config file is a usage error; a missing ./assetsync.json is not', async () => {
    const { code, err } = await cli(['pull', '--config', join(dir, 'nope.json'), '--server', 'h:1'])
    expect(code).toBe(EXIT.USAGE)
    expect(err).toMatch(/nope\.json: cannot read the project file: ENOENT/)
  })

  it('a project file that is a folder is refused', async () => {
    await mkdir(join(dir, 'folder.json'), { recursive: true })
    expect((await cli(['pull', '--config', join(dir, 'folder.json'), '--server', 'h:1'])).err).toMatch(/not a regular file/)
  })

  it('allows "$schema"', async () => {
    const file = await writeConfig('schema.json', { $schema: './node_modules/assetsync/assetsync.schema.json', serve: { port: 9003 } })
    expect((await parse('serve', ['--config', file])).flags.port).toBe('9003')
  })

  it('help still works next to a broken project file', async () => {
    const file = await writeConfig('broken.json', '{')
    const { code } = await cli(['serve', '--config', file, '--help'])
    expect(code).toBe(EXIT.OK)
  })
})

describe('tokens only from a file of mode 0600', () => {
  it.each(['644', '640', '604', '660'])('refuses a token in a file of mode 0%s', async (octal) => {
    const mode = parseInt(octal, 8)
    const file = await writeConfig(`token-${mode.toString(8)}.json`, { client: { token: 's3cret' } }, mode)
    const { code, err } = await cli(['pull', '--config', file, '--server', 'h:1'])
    expect(code).toBe(EXIT.USAGE)
    expect(err).toContain(`"client.token" is set but the file is mode 0${mode.toString(8)}`)
    expect(err).toContain(`chmod 600 ${file}`)
    expect(err).not.toContain('s3cret')
  })

  it('refuses even when a flag would override it (the secret is exposed either way)', async () => {
    const file = await writeConfig('token-644-override.json', { serve: { token: 'x' } }, 0o644)
    expect((await cli(['serve', '--config', file, '--token', 'y'])).code).toBe(EXIT.USAGE)
  })

  it('reads a token from a file of mode 0600 or 0400', async () => {
    for (const mode of [0o600, 0o400]) {
      const file = await writeConfig(`token-ok-${mode.toString(8)}.json`, { client: { token: 'fine', server: 'h:1' } }, mode)
      expect((await parse('get', ['--config', file, 'x'])).flags.token).toBe('fine')
    }
  })

  it('a 0644 file without a token is fine', async () => {
    const file = await writeConfig('open.json', { client: { server: 'h:2' } }, 0o644)
    expect((await parse('get', ['--config', file, 'x'])).flags.server).toBe('h:2')
  })

  it('refuses tokens from a project file on Windows, where the mode means nothing', () => {
    expect(() => parseProjectConfig('{"serve":{"token":"t"}}', { file: 'a.json', path: '/a.json', mode: 0o100600, platform: 'win32' }))
      .toThrow(/not read from a project file on Windows/)
  })
})
