/** Keeps docs/protocol.md honest: every constant of src/limits.ts is listed there with its value. */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import * as limits from '../../src/limits.js'
import { MAX_MANIFEST_ENTRIES } from '../../src/protocol/codec.js'
import { MAX_ERROR_CODE_BYTES } from '../../src/limits.js'
import { MSG, PROTOCOL_VERSION } from '../../src/protocol/messages.js'

const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8')

/** The value cells of every table row that starts with `name`. */
function valuesOf(name: string): string[] {
  return [...doc.matchAll(new RegExp(`^\\| \`${name}\` \\| ([^|]+)\\|`, 'gm'))].map((m) => (m[1] ?? '').trim())
}

describe('docs/protocol.md', () => {
  const entries = Object.entries(limits).filter((e): e is [string, number] => typeof e[1] === 'number')

  it('lists every constant of src/limits.ts with its current value', () => {
    expect(entries.length).toBeGreaterThan(20)
    const wrong = entries
      .map(([name, value]) => ({ name, value, doc: valuesOf(name) }))
      .filter((e) => e.doc.length === 0 || e.doc.some((cell) => cell.split(/[\s(]/)[0] !== String(e.value)))
    expect(wrong).toEqual([])
  })

  it('states the protocol version, the codec-local caps and every type code', () => {
    expect(doc).toContain(`protocol version **${PROTOCOL_VERSION}**`)
    expect(valuesOf('MAX_ERROR_CODE_BYTES')).toEqual([String(MAX_ERROR_CODE_BYTES)])
    expect(doc).toContain(`= ${MAX_MANIFEST_ENTRIES}`)
    for (const code of Object.values(MSG)) {
      expect(doc).toMatch(new RegExp(`^\\| \`0x${code.toString(16).padStart(2, '0')}\` \\|`, 'm'))
    }
  })
})
