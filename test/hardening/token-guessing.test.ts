/**
 * Issue 12, case 4: guessing the access token must cost the guesser. Parallel guessers against a
 * live server, from one source address and from many, for a fixed time; the tokens the server
 * actually compared are counted by the server (AuthThrottle stats) and must stay under the
 * documented bound for the time that passed (per address: the doubling delay from
 * AUTH_FAILURE_DELAY_MS; server-wide: AUTH_FAILURES_PER_SEC, plus its bucket). Before, every guess
 * was checked at once: 227 guesses/s over UDP, 418/s over TCP from one address (docs/security.md).
 * The clock's precise schedule is test/protocol/auth-throttle.test.ts; this is the live version.
 */
import { describe, expect, it } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import { AssetSyncError, exitCodeOf } from '../../src/errors.js'
import { AUTH_FAILURE_DELAY_MS, AUTH_FAILURES_PER_SEC } from '../../src/limits.js'
import type { TransportName } from '../../src/protocol/transport.js'
import { type GuessResult, guess, sources } from '../helpers/attackers.js'
import { type LocalServer, localServers } from '../helpers/raw-peers.js'

const TOKEN = 'correct horse battery staple'
const WINDOW_MS = 3000
const servers = localServers('guessing', { token: TOKEN })
const server = servers.start

/** `loops` guessers per address in `from`, each guessing until WINDOW_MS is over; what they got. */
async function attack(s: LocalServer, transport: TransportName, from: string[], loops: number): Promise<{ ms: number; results: GuessResult[] }> {
  const results: GuessResult[] = []
  const t0 = performance.now()
  const end = Date.now() + WINDOW_MS
  let n = 0
  await Promise.all(from.flatMap((local) => Array.from({ length: loops }, async () => {
    while (Date.now() < end) results.push(await guess(transport, local, s.port, `guess ${n++}`))
  })))
  return { ms: performance.now() - t0, results }
}

const count = (rs: GuessResult[], f: (r: GuessResult) => boolean): number => rs.filter(f).length
const checkedWrong = (r: GuessResult): boolean => r.answer === 'error' && r.message === 'access token rejected by the server'
const locked = (r: GuessResult): boolean => r.answer === 'error' && r.code === 'ERR_AUTH' && r.message.includes('failed attempts from this address')

/** Most failures one address can have checked in `ms`: they are AUTH_FAILURE_DELAY_MS × 2^k apart. */
function perAddressBound(ms: number): number {
  let k = 1
  for (let waited = 0, d = AUTH_FAILURE_DELAY_MS; waited + d <= ms; waited += d, d *= 2) k++
  return k
}

describe.each(['udp', 'tcp'] as const)('token guessing (%s)', (transport) => {
  it('from one address, 8 guessers in parallel: checked one at a time, ever more slowly; the rest refused unchecked with exit 4', async () => {
    const s = await server(transport)
    const { ms, results } = await attack(s, transport, sources(1, 50), 8)
    const { auth } = s.server.guard
    const bound = perAddressBound(ms)
    console.log(`guessing ${transport}, 1 address: ${results.length} guesses in ${ms.toFixed(0)} ms, ${auth.failures} checked (bound ${bound}),`
      + ` ${auth.locked} refused unchecked, ${(auth.failures / (ms / 1000)).toFixed(1)} checked/s`)
    expect(auth.failures).toBeLessThanOrEqual(bound)
    expect(auth.failures).toBeGreaterThanOrEqual(2)
    expect(count(results, checkedWrong)).toBe(auth.failures)
    expect(count(results, locked)).toBe(auth.locked)
    expect(auth.locked).toBeGreaterThan(0)
    // Every guess got an answer: none was left hanging to its deadline.
    expect(count(results, (r) => r.answer === 'error' && r.code === 'ERR_AUTH')).toBe(results.length)
    expect(exitCodeOf(new AssetSyncError('ERR_AUTH', ''))).toBe(4)

    // Meanwhile a client with the token from another address is let in at once.
    const c = await AssetClient.connect({ server: s.addr, transport, key: s.key, token: TOKEN, configDir: servers.config(), connectTimeoutMs: 2000 })
    c.close()
  })

  it('from 24 addresses, 2 guessers each: the server checks at most AUTH_FAILURES_PER_SEC a second in all', async () => {
    const s = await server(transport)
    const { ms, results } = await attack(s, transport, sources(24, 60), 2)
    const { auth } = s.server.guard
    const bound = AUTH_FAILURES_PER_SEC * (1 + ms / 1000)
    console.log(`guessing ${transport}, 24 addresses: ${results.length} guesses in ${ms.toFixed(0)} ms, ${auth.failures} checked (bound ${bound.toFixed(0)}),`
      + ` ${auth.locked} locked, ${auth.busy} busy, ${auth.waited} waited; ${(auth.failures / (ms / 1000)).toFixed(1)} checked/s`)
    expect(auth.failures).toBeLessThanOrEqual(bound)
    expect(auth.failures).toBeGreaterThan(AUTH_FAILURES_PER_SEC) // the bucket was spent, so the cap did the bounding
    expect(count(results, checkedWrong)).toBe(auth.failures)
  })
})

describe('who pays', () => {
  it('a client with the token from a locked address is refused too (exit 4), and told when to try again', async () => {
    // Scaled down: 100 ms doubling, 1 s deadline, so the 5th failure locks the address for 1.6 s.
    const s = await server('tcp', { connectTimeoutMs: 1000, authThrottle: { delayMs: 100 } })
    const from = sources(1, 90)[0] as string
    for (let i = 0; i < 5; i++) expect(await guess('tcp', from, s.port, `wrong ${i}`)).toMatchObject({ code: 'ERR_AUTH' })
    expect(s.server.guard.auth.failures).toBe(5)
    const r = await guess('tcp', from, s.port, TOKEN)
    expect(r).toMatchObject({ answer: 'error', code: 'ERR_AUTH' })
    expect((r as { message: string }).message).toMatch(/^access token rejected by the server: 5 failed attempts from this address, try again in 2 s$/)
    expect(s.server.guard.auth.checks).toBe(5) // the right token was not even compared
    // Once the wait is over, the right token is checked and let in, and the address is cleared.
    await new Promise((res) => setTimeout(res, 1700))
    expect(await guess('tcp', from, s.port, TOKEN)).toEqual({ answer: 'auth-ok' })
    expect(await guess('tcp', from, s.port, TOKEN)).toEqual({ answer: 'auth-ok' })
  })
})
