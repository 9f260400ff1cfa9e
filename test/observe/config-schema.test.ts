/**
 * assetsync.schema.json is generated from the key table (src/commands/config-keys.ts) and the
 * table matches the real commands' flags. To refresh the shipped file after changing the table:
 *   UPDATE_SCHEMA=1 npx vitest run test/observe/config-schema.test.ts
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { buildProgram } from '../../src/cli.js'
import { COMMAND_SECTION, CONFIG_KEYS, NOT_KEYS, configSchema } from '../../src/commands/config-keys.js'
import { parseProjectConfig } from '../../src/commands/config.js'
import { PROJECT_ROOT } from '../helpers/cli.js'

const SCHEMA_FILE = join(PROJECT_ROOT, 'assetsync.schema.json')

describe('assetsync.schema.json', () => {
  it('is the schema generated from the key table', () => {
    const generated = `${JSON.stringify(configSchema(), null, 2)}\n`
    if (process.env.UPDATE_SCHEMA === '1') writeFileSync(SCHEMA_FILE, generated)
    expect(readFileSync(SCHEMA_FILE, 'utf8')).toBe(generated)
  })

  it('lists every flag of every command that reads the file, with a matching type', () => {
    const program = buildProgram()
    const problems: string[] = []
    let checked = 0
    for (const cmd of program.commands) {
      const section = COMMAND_SECTION[cmd.name()]
      if (!section) continue
      for (const opt of cmd.options) {
        const key = (opt.long ?? '').replace(/^--/, '')
        if (NOT_KEYS.includes(key)) continue
        const spec = CONFIG_KEYS[section][key]
        if (!spec) { problems.push(`${cmd.name()} --${key}: not in CONFIG_KEYS.${section}`); continue }
        checked++
        const takesValue = opt.required || opt.optional
        const ok = opt.variadic ? spec.type === 'string[]' : takesValue ? spec.type !== 'boolean' && spec.type !== 'string[]' : spec.type === 'boolean'
        if (!ok) problems.push(`${cmd.name()} --${key}: the flag and the table (${spec.type}) disagree`)
        if (opt.argChoices && JSON.stringify(opt.argChoices) !== JSON.stringify(spec.enum)) problems.push(`${cmd.name()} --${key}: choices differ`)
        if (opt.envVar && opt.envVar !== spec.env) problems.push(`${cmd.name()} --${key}: env ${opt.envVar} vs ${spec.env}`)
      }
      for (const arg of cmd.registeredArguments) {
        const spec = CONFIG_KEYS[section][arg.name()]
        if (spec && !spec.argument) problems.push(`${cmd.name()} <${arg.name()}> is a key but not marked argument`)
      }
    }
    expect(problems).toEqual([])
    expect(checked).toBeGreaterThan(20)
  })

  // A real JSON Schema validator: eslint's ajv (draft-07). It and the loader must agree.
  const require = createRequire(import.meta.url)
  let Ajv: (new (o: object) => { compile(s: object): ((d: unknown) => boolean) }) | null = null
  try { Ajv = require('ajv') } catch { /* absent */ }
  it.skipIf(!Ajv)('accepts what the loader accepts and refuses what it refuses (ajv, from eslint; skipped if absent)', () => {
    const validate = new (Ajv as NonNullable<typeof Ajv>)({ allErrors: true }).compile(configSchema())
    const samples: [unknown, boolean][] = [
      [{ $schema: './assetsync.schema.json', serve: { dir: 'assets', port: 0, http: '127.0.0.1:7421', ignore: ['dist/**'], settle: 20 } }, true],
      [{ serve: { http: '7421', publish: 's3://bucket/prefix', 'cache-size': 1048576, 'idle-timeout': 5 } }, true],
      [{ client: { server: '[::1]:7420', key: 'a'.repeat(64), transport: 'tcp', timeout: 2.5, tick: 60, 'lua-path': '?.lua', direct: true } }, true],
      [{ serve: { prot: 1 } }, false],
      [{ serve: { port: '7420' } }, false],
      [{ serve: { port: 1.5 } }, false],
      [{ client: { timeout: 0 } }, false],
      [{ client: { server: 'nohost' } }, false],
      [{ client: { transport: 'quic' } }, false],
      [{ serve: { ignore: [''] } }, false],
      [{ serve: { http: 'http://x:1' } }, false],
      [{ other: {} }, false],
    ]
    for (const [doc, valid] of samples) {
      expect([doc, validate(doc)]).toEqual([doc, valid])
      let loaderOk = true
      try { parseProjectConfig(JSON.stringify(doc), { file: 'a.json', path: '/p/a.json', mode: 0o100600 }) } catch { loaderOk = false }
      expect([doc, loaderOk]).toEqual([doc, valid])
    }
  })
})
