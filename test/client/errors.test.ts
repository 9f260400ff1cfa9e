/**
 * The retry/fatal classification of error codes (src/errors.ts): every code has a recovery, the
 * documented table says the same as ERROR_RECOVERY, and the predicates the client's retry loops
 * use (download retry, pull resume, watch reconnect) follow it.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  AssetSyncError, ERROR_EXIT, ERROR_RECOVERY, ProtocolError, type ErrorCode, type Recovery, isFatal, isRetryable, isTransient,
  needsReconnect, recoveryOf,
} from '../../src/errors.js'

const err = (code: ErrorCode): AssetSyncError => new AssetSyncError(code, `test ${code}`)
const codes = Object.keys(ERROR_EXIT) as ErrorCode[]

describe('ERROR_RECOVERY', () => {
  it('classifies every error code, and nothing else', () => {
    expect(Object.keys(ERROR_RECOVERY).sort()).toEqual([...codes].sort())
  })

  it('fatal: authentication, server key, protocol version, usage, stopped by a signal; never retried', () => {
    const fatal = codes.filter((c) => isFatal(err(c))).sort()
    expect(fatal).toEqual(['ERR_AUTH', 'ERR_INTERRUPTED', 'ERR_KEY_MISMATCH', 'ERR_TERMINATED', 'ERR_USAGE', 'ERR_VERSION'])
    for (const c of fatal) expect(isTransient(err(c)), c).toBe(false)
  })

  it('reconnect: a lost connection, a timeout, a server not reachable (yet)', () => {
    expect(codes.filter((c) => needsReconnect(err(c))).sort()).toEqual(['ERR_CONNECT', 'ERR_CONNECTION_LOST', 'ERR_TIMEOUT'])
  })

  it('retry on the same connection: a file that changed mid-transfer, bytes that failed their hash', () => {
    expect(codes.filter((c) => isRetryable(err(c))).sort()).toEqual(['ERR_CHANGED', 'ERR_INTEGRITY'])
  })

  it('transient is exactly retry + reconnect; the rest is final', () => {
    for (const c of codes) {
      const r = recoveryOf(err(c))
      expect(isTransient(err(c)), c).toBe(r === 'retry' || r === 'reconnect')
    }
    for (const c of ['ERR_NOT_FOUND', 'ERR_PATH_REFUSED', 'ERR_WRITE', 'ERR_LIMIT', 'ERR_PROTOCOL', 'ERR_INTERNAL'] as const) {
      expect(recoveryOf(err(c)), c).toBe('final')
    }
  })

  it('anything that is not an AssetSyncError is final: a bug is never retried into a loop', () => {
    for (const e of [new Error('x'), new TypeError('y'), 'ERR_TIMEOUT', { code: 'ERR_TIMEOUT' }, null, undefined]) {
      expect(recoveryOf(e)).toBe('final')
      expect(isTransient(e)).toBe(false)
      expect(isFatal(e)).toBe(false)
    }
    expect(recoveryOf(new ProtocolError('bad frame'))).toBe('final')
  })

  it('the table in the JSDoc of errors.ts lists each code under its recovery', () => {
    const src = readFileSync(new URL('../../src/errors.ts', import.meta.url), 'utf8')
    const rows = new Map<Recovery, string[]>()
    for (const m of src.matchAll(/^ \* \| `(retry|reconnect|fatal|final)` *\| ([^|]+)\|/gm)) {
      rows.set(m[1] as Recovery, (m[2] ?? '').split(',').map((s) => s.trim()).filter((s) => s.startsWith('ERR_')))
    }
    expect([...rows.keys()].sort()).toEqual(['fatal', 'final', 'reconnect', 'retry'])
    for (const [recovery, listed] of rows) {
      const actual = codes.filter((c) => ERROR_RECOVERY[c] === recovery).sort()
      expect(listed.sort(), recovery).toEqual(actual)
    }
  })
})
