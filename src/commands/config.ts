/**
 * The project file, assetsync.json: looked up in the working folder, or named with --config.
 * Sections "serve" and "client", keys named as the flags (./config-keys.ts). Precedence: flags,
 * then environment (ASSETSYNC_TOKEN), then the file, then defaults. Anything the table does not
 * know, or a value of the wrong type, is a usage error (exit 2) naming the key and the file.
 * A file holding a token must not be readable by group or others (mode 0600): otherwise it is
 * refused, never silently read and never silently ignored (ignoring it would start a server
 * without its token).
 */
import { constants } from 'node:fs'
import { open } from 'node:fs/promises'
import { dirname, isAbsolute, resolve } from 'node:path'
import { type Command, Option } from 'commander'
import { AssetSyncError } from '../errors.js'
import { CONFIG_MAX_BYTES, MAX_TOKEN_BYTES } from '../limits.js'
import { COMMAND_SECTION, CONFIG_KEYS, type KeySpec, SECTIONS, type Section } from './config-keys.js'

export { COMMAND_SECTION, CONFIG_KEYS, configSchema, type KeySpec, type Section } from './config-keys.js'

/** The file looked up in the working folder when --config is not given. */
export const CONFIG_FILE = 'assetsync.json'

/** A value as the file gives it, after validation. */
export type ConfigValue = string | number | boolean | string[]

export interface ProjectConfig {
  /** The file as named in messages (as typed, or relative to the working folder). */
  file: string
  /** Its absolute path. */
  path: string
  serve: Record<string, ConfigValue>
  client: Record<string, ConfigValue>
}

function usage(file: string, msg: string): AssetSyncError {
  return new AssetSyncError('ERR_USAGE', `${file}: ${msg}`)
}

/**
 * Reads and validates the project file: `explicit` (from --config; must exist) or
 * ./assetsync.json in `cwd` (optional: null when absent). Relative `dir` and `out` values are
 * made absolute against the file's folder.
 */
export async function loadProjectConfig(explicit: string | undefined, cwd: string = process.cwd()): Promise<ProjectConfig | null> {
  const path = resolve(cwd, explicit ?? CONFIG_FILE)
  const file = explicit ?? CONFIG_FILE
  let fh
  try {
    // O_NONBLOCK: a FIFO named assetsync.json must not hang the CLI; isFile() refuses it below.
    fh = await open(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0))
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (explicit === undefined && code === 'ENOENT') return null
    throw usage(file, `cannot read the project file: ${code ?? (err as Error).message}`)
  }
  let text: string
  let mode: number
  try {
    // fstat on the open handle: the mode checked is the mode of the bytes read.
    const st = await fh.stat()
    if (!st.isFile()) throw usage(file, 'the project file is not a regular file')
    if (st.size > CONFIG_MAX_BYTES) throw usage(file, `the project file is larger than ${CONFIG_MAX_BYTES} bytes`)
    mode = st.mode
    const buf = Buffer.alloc(CONFIG_MAX_BYTES + 1)
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0)
    if (bytesRead > CONFIG_MAX_BYTES) throw usage(file, `the project file is larger than ${CONFIG_MAX_BYTES} bytes`)
    text = buf.subarray(0, bytesRead).toString('utf8')
  } finally {
    await fh.close()
  }
  return parseProjectConfig(text, { file, path, mode })
}

/** Validates the text of a project file (pure; `mode` is its permission bits, for the token rule). */
export function parseProjectConfig(text: string, where: { file: string; path: string; mode: number; platform?: NodeJS.Platform }): ProjectConfig {
  const { file, path } = where
  let doc: unknown
  try {
    doc = JSON.parse(text.replace(/^\uFEFF/, ''))
  } catch (err) {
    throw usage(file, `not valid JSON: ${jsonErrorAt(text, (err as Error).message)}`)
  }
  if (!isPlainObject(doc)) throw usage(file, 'the project file must hold a JSON object: {"serve": {...}, "client": {...}}')
  const out: ProjectConfig = { file, path, serve: {}, client: {} }
  for (const [name, body] of Object.entries(doc)) {
    if (name === '$schema') {
      if (typeof body !== 'string') throw usage(file, '"$schema" must be a string')
      continue
    }
    if (!(SECTIONS as string[]).includes(name)) {
      throw usage(file, `unknown section "${printable(name)}"${hint(name, SECTIONS)} (sections: ${SECTIONS.join(', ')})`)
    }
    const section = name as Section
    if (!isPlainObject(body)) throw usage(file, `"${section}" must be an object of options`)
    const table = CONFIG_KEYS[section]
    for (const [key, value] of Object.entries(body)) {
      const spec = Object.hasOwn(table, key) ? table[key] : undefined
      if (!spec) throw usage(file, `unknown key "${section}.${printable(key)}"${hint(key, Object.keys(table))} (${section} keys: ${Object.keys(table).join(', ')})`)
      const checked = checkValue(spec, value)
      if (typeof checked === 'string') throw usage(file, `"${section}.${key}" must be ${checked}, got ${shown(value)}`)
      out[section][key] = spec.path && typeof value === 'string' && !isAbsolute(value) ? resolve(dirname(path), value) : checked.value
    }
  }
  const secrets = SECTIONS.flatMap((s) => Object.keys(out[s]).filter((k) => CONFIG_KEYS[s][k]?.secret).map((k) => `${s}.${k}`))
  if (secrets.length > 0) {
    const platform = where.platform ?? process.platform
    if (platform === 'win32') {
      throw usage(file, `"${secrets[0]}": tokens are not read from a project file on Windows, where its mode cannot be checked; use --token or ASSETSYNC_TOKEN`)
    }
    if ((where.mode & 0o077) !== 0) {
      throw usage(file, `"${secrets[0]}" is set but the file is mode ${(where.mode & 0o777).toString(8).padStart(4, '0')}, readable by others: run "chmod 600 ${file}", or pass the token with --token or ASSETSYNC_TOKEN instead`)
    }
  }
  return out
}

/** The value, or what it should have been (for the message). */
function checkValue(spec: KeySpec, v: unknown): { value: ConfigValue } | string {
  switch (spec.type) {
    case 'boolean':
      return typeof v === 'boolean' ? { value: v } : 'true or false'
    case 'string[]': {
      const what = `an array of non-empty strings${spec.maxItems !== undefined ? ` (at most ${spec.maxItems})` : ''}`
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x.length === 0)) return what
      if (spec.maxItems !== undefined && v.length > spec.maxItems) return what
      return { value: [...(v as string[])] }
    }
    case 'integer':
    case 'number': {
      const what = numberWords(spec)
      if (typeof v !== 'number' || !Number.isFinite(v) || (spec.type === 'integer' && !Number.isInteger(v))) return what
      if ((spec.minimum !== undefined && v < spec.minimum) || (spec.maximum !== undefined && v > spec.maximum)) return what
      if (spec.exclusiveMinimum !== undefined && v <= spec.exclusiveMinimum) return what
      return { value: v }
    }
    case 'string': {
      if (spec.enum) return typeof v === 'string' && spec.enum.includes(v) ? { value: v } : `one of ${spec.enum.map((e) => `"${e}"`).join(', ')}`
      const what = spec.pattern ? `a string: ${spec.pattern.means}` : 'a non-empty string'
      if (typeof v !== 'string' || v.length === 0) return what
      if (spec.pattern && !new RegExp(spec.pattern.re, 'u').test(v)) return what
      if (spec.secret && Buffer.byteLength(v) > MAX_TOKEN_BYTES) return `at most ${MAX_TOKEN_BYTES} bytes`
      return { value: v }
    }
  }
}

function numberWords(spec: KeySpec): string {
  const kind = spec.type === 'integer' ? 'an integer' : 'a number'
  const lo = spec.exclusiveMinimum !== undefined ? `> ${spec.exclusiveMinimum}` : spec.minimum !== undefined ? `>= ${spec.minimum}` : ''
  const hi = spec.maximum !== undefined ? `<= ${spec.maximum}` : ''
  return [kind, [lo, hi].filter(Boolean).join(' and ')].filter(Boolean).join(' ')
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** A key as it may be printed: control characters escaped, long keys cut. */
function printable(s: string): string {
  const j = JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s)
  return j.slice(1, -1)
}

function shown(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v)
  return s.length > 60 ? `${s.slice(0, 60)}…` : s
}

/** JSON.parse's message with the line and column of its "position N". */
function jsonErrorAt(text: string, msg: string): string {
  const m = /position (\d+)/.exec(msg)
  const oneLine = msg.replace(/\s*\n\s*/g, ' ')
  if (!m) return oneLine
  const before = text.slice(0, Number(m[1]))
  const line = before.split('\n').length
  const col = before.length - before.lastIndexOf('\n')
  return `${oneLine.replace(/ in JSON at position \d+.*$/, '').replace(/ at position \d+.*$/, '')} at line ${line} column ${col}`
}

/** ` (did you mean "x"?)` when a known name is one or two edits away. */
function hint(name: string, known: readonly string[]): string {
  let best: string | null = null
  let bestD = 3
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k)
    if (d < bestD) { best = k; bestD = d }
  }
  return best ? ` (did you mean "${best}"?)` : ''
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2 || a.length > 64) return 99
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    prev = cur
  }
  return prev[b.length] ?? 99
}

// --- commander --------------------------------------------------------------------------------

/** The value a flag would have had, typed on the command line, for the option `opt`. */
function asFlagValue(opt: Option, v: ConfigValue): unknown {
  if (!opt.required && !opt.optional) return v // a boolean flag
  if (Array.isArray(v)) return opt.variadic ? v : v.join(',')
  return opt.variadic ? [String(v)] : String(v)
}

/**
 * Gives `program` the --config option and applies the project file to each subcommand before it
 * parses its own arguments: file values go in with source "config", so commander's own order does
 * the rest (a typed flag replaces them; an env var declared with Option.env() replaces them; the
 * declared default only fills what is left). A value from the file also satisfies a mandatory
 * option such as --server. Call once, after every subcommand is added.
 */
export function withProjectConfig(program: Command, env: NodeJS.ProcessEnv = process.env): Command {
  program.addOption(new Option('--config <file>', `project file to read (default: ./${CONFIG_FILE} when present)`))
  for (const sub of program.commands) sub.configureHelp({ ...sub.configureHelp(), showGlobalOptions: true })
  program.hook('preSubcommand', async (_program, sub) => {
    const section = COMMAND_SECTION[sub.name()]
    // Help must work in a folder whose project file is broken.
    // (rawArgs is public in commander's JavaScript, missing from its typings.)
    const raw = (program as unknown as { rawArgs?: string[] }).rawArgs ?? []
    if (!section || raw.some((a) => a === '--help' || a === '-h')) return
    const config = await loadProjectConfig(program.getOptionValue('config') as string | undefined)
    applySection(sub, section, config, env)
  })
  return program
}

/**
 * Sets `cmd`'s options from the environment (for table keys whose option does not read it itself)
 * and from `config`, each with its source, before `cmd` parses its arguments. Exported for tests.
 */
export function applySection(cmd: Command, section: Section, config: ProjectConfig | null, env: NodeJS.ProcessEnv): void {
  const table = CONFIG_KEYS[section]
  const values = config?.[section] ?? {}
  for (const opt of cmd.options) {
    const key = opt.long?.replace(/^--/, '')
    const spec = key !== undefined && Object.hasOwn(table, key) ? table[key] : undefined
    if (!key || !spec) continue
    const attr = opt.attributeName()
    if (spec.env && !opt.envVar && env[spec.env] !== undefined) {
      cmd.setOptionValueWithSource(attr, asFlagValue(opt, env[spec.env] as string), 'env')
    } else if (Object.hasOwn(values, key)) {
      const v = asFlagValue(opt, values[key] as ConfigValue)
      // Commander starts a fresh list for a variadic flag only when the value so far is the
      // option's default; otherwise typed values would extend the file's list, not replace it.
      if (opt.variadic) opt.default(v)
      cmd.setOptionValueWithSource(attr, v, 'config')
    }
  }
  for (const arg of cmd.registeredArguments) {
    const v = values[arg.name()]
    if (v !== undefined && table[arg.name()]?.argument) arg.default(v)
  }
}

/** Where the value of each of `cmd`'s options came from: "cli", "env", "config", "default" or undefined. */
export function optionSources(cmd: Command): Record<string, string | undefined> {
  return Object.fromEntries(cmd.options.map((o) => [o.attributeName(), cmd.getOptionValueSource(o.attributeName())]))
}
