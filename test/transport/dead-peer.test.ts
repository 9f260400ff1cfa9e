/**
 * Dead-peer detection with real processes: a peer is SIGKILLed (no FIN, no goodbye) and the side
 * that survives must close its Connection with ERR_CONNECTION_LOST within 5 s. Over UDP only the
 * keepalive + idle timeout can notice this (raw udx never does); over TCP the kernel's FIN does.
 * The peer is test/fixtures/peer.mjs running the built code in dist/.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { AssetSyncError } from '../../src/errors.js'
import { IDLE_TIMEOUT_MS } from '../../src/limits.js'
import type { Connection } from '../../src/protocol/connection.js'
import { dial } from '../../src/protocol/endpoint.js'
import { Cleanup, LOOPBACK, nextEvent, withTimeout } from '../helpers/common.js'
import { listen } from '../helpers/endpoints.js'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')
const fixture = join(here, '..', 'fixtures', 'peer.mjs')
const DETECT_WITHIN_MS = 5000

beforeAll(() => {
  // The fixture runs the built code; build once if nobody has.
  if (!existsSync(join(root, 'dist', 'protocol', 'endpoint.js'))) {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' })
  }
}, 120_000)

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

interface Peer {
  child: ChildProcess
  /** Resolves with the next JSON line whose event is `event`. */
  next(event: string, ms: number): Promise<Record<string, unknown>>
}

function startPeer(args: string[]): Peer {
  const child = spawn(process.execPath, [fixture, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  cleanup.add(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let stderr = ''
  child.stderr?.on('data', (b: Buffer) => { stderr += b.toString() })
  const lines: Array<Record<string, unknown>> = []
  const waiters: Array<() => void> = []
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>)
    } catch {
      return
    }
    for (const w of waiters.splice(0)) w()
  })
  const next = (event: string, ms: number): Promise<Record<string, unknown>> => withTimeout(new Promise((resolve, reject) => {
    const check = (): void => {
      const i = lines.findIndex((l) => l.event === event)
      if (i >= 0) {
        resolve(lines.splice(i, 1)[0] as Record<string, unknown>)
        return
      }
      if (child.exitCode !== null) {
        reject(new Error(`peer exited with ${child.exitCode} before '${event}': ${stderr}`))
        return
      }
      waiters.push(check)
    }
    check()
  }), ms, `peer event '${event}' (stderr: ${stderr || 'empty'})`)
  return { child, next }
}

/** Kills `child` with SIGKILL and returns how long `conn` took to close, and with what. */
async function killAndTime(child: ChildProcess, conn: Connection): Promise<{ ms: number; err: unknown }> {
  expect(conn.closed).toBe(false)
  const closed = nextEvent(conn, 'close', DETECT_WITHIN_MS + 3000)
  const t0 = performance.now()
  expect(child.kill('SIGKILL')).toBe(true)
  const [err] = await closed
  return { ms: performance.now() - t0, err }
}

describe.each(['udp', 'tcp'] as const)('dead peer over %s', (transport) => {
  it(`the server notices a SIGKILLed client within ${DETECT_WITHIN_MS} ms`, async () => {
    const server = await listen(transport)
    cleanup.add(() => server.close())
    const accepted = nextEvent(server, 'connection', 10_000)
    const peer = startPeer(['dial', transport, String(server.address().port)])
    await peer.next('connected', 10_000)
    const [conn] = (await accepted) as [Connection]

    const { ms, err } = await killAndTime(peer.child, conn)
    console.log(`${transport}: server noticed the killed client after ${ms.toFixed(0)} ms (${(err as Error).message})`)
    expect(err).toBeInstanceOf(AssetSyncError)
    expect((err as AssetSyncError).code).toBe('ERR_CONNECTION_LOST')
    expect(ms).toBeLessThan(DETECT_WITHIN_MS)
    expect(server.connections.size).toBe(0)
  })

  it(`the client notices a SIGKILLed server within ${DETECT_WITHIN_MS} ms (and a live idle one is kept)`, async () => {
    const peer = startPeer(['serve', transport])
    const { port } = await peer.next('listening', 10_000)
    const conn = await dial({ transport, host: LOOPBACK, port: Number(port), connectTimeoutMs: 5000 })
    cleanup.add(() => conn.destroy())
    await peer.next('connection', 5000)

    if (transport === 'udp') {
      // Control: an idle connection to a live server outlives the idle timeout (keepalives flow),
      // so the close below is the kill's doing, not the idle timer firing on a healthy peer.
      let early: unknown = null
      conn.once('close', (e) => { early = e ?? 'closed' })
      await new Promise((resolve) => setTimeout(resolve, IDLE_TIMEOUT_MS + 1500))
      expect(early).toBeNull()
    }

    const { ms, err } = await killAndTime(peer.child, conn)
    console.log(`${transport}: client noticed the killed server after ${ms.toFixed(0)} ms (${(err as Error).message})`)
    expect((err as AssetSyncError).code).toBe('ERR_CONNECTION_LOST')
    expect(ms).toBeLessThan(DETECT_WITHIN_MS)
    await expect(conn.request((id) => ({ type: 'request', id, path: 'x', haveHash: null }), () => true).done)
      .rejects.toMatchObject({ code: 'ERR_CONNECTION_LOST' })
  })
})
