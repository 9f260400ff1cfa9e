/**
 * Helpers of the slow runs: child processes spoken to over IPC (the server fixture, client
 * workers), so the server's memory is measured on its own.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { join } from 'node:path'
import { PROJECT_ROOT } from './cli.js'

export const FIXTURES = join(PROJECT_ROOT, 'test', 'fixtures')

export type Msg = { event: string } & Record<string, unknown>

/** A forked fixture with a queue of its IPC messages. */
export class Worker {
  readonly child: ChildProcess
  readonly #seen: Msg[] = []
  readonly #waiters = new Set<() => void>()
  #exit: { code: number | null; signal: NodeJS.Signals | null } | null = null
  stderr = ''

  constructor(script: string, args: string[], env: NodeJS.ProcessEnv, execArgv: string[] = []) {
    this.child = fork(join(FIXTURES, script), args, { env, stdio: ['ignore', 'inherit', 'pipe', 'ipc'], execArgv })
    this.child.stderr?.on('data', (b: Buffer) => { this.stderr += b.toString() })
    this.child.on('message', (m: Msg) => {
      this.#seen.push(m)
      this.#wake()
    })
    this.child.on('exit', (code, signal) => {
      this.#exit = { code, signal }
      this.#wake()
    })
  }

  #wake(): void { for (const w of [...this.#waiters]) w() }

  get pid(): number { return this.child.pid as number }
  get exited(): { code: number | null; signal: NodeJS.Signals | null } | null { return this.#exit }

  /** Every message so far with this event (not consumed). */
  all(event: string): Msg[] { return this.#seen.filter((m) => m.event === event) }

  /** Resolves with (and consumes) the first message with this event; rejects if the child exits or after `ms`. */
  next(event: string, ms: number): Promise<Msg> {
    return new Promise<Msg>((resolve, reject) => {
      const check = (): void => {
        const fatal = this.#seen.find((m) => m.event === 'fatal')
        if (fatal) { done(); reject(new Error(`worker failed: ${String(fatal.message)}`)); return }
        const i = this.#seen.findIndex((m) => m.event === event)
        if (i >= 0) { done(); resolve(this.#seen.splice(i, 1)[0] as Msg); return }
        if (this.#exit) { done(); reject(new Error(`worker exited (${this.#exit.code ?? this.#exit.signal}) before '${event}': ${this.stderr.slice(-2000)}`)) }
      }
      const t = setTimeout(() => { done(); reject(new Error(`timed out after ${ms} ms waiting for '${event}'`)) }, ms)
      const done = (): void => { clearTimeout(t); this.#waiters.delete(check) }
      this.#waiters.add(check)
      check()
    })
  }

  /** Sends a command and waits for the answer event. */
  async ask(cmd: Record<string, unknown>, event: string, ms = 30_000): Promise<Msg> {
    const p = this.next(event, ms)
    this.child.send(cmd)
    return p
  }

  kill(): void {
    if (!this.#exit) this.child.kill('SIGKILL')
  }
}

export interface ServerStats extends Msg {
  rss: number
  heapUsed: number
  arrayBuffers: number
  clients: number
  peakClients: number
  sessions: number | null
  subscriptions: number
  udp: { datagramsIn: number; bytesIn: number; handshakeBytesOut: number; cookiesSent: number; streamsCreated: number; rateLimited: number } | null
  counts: Record<string, number>
}

/** The server fixture (test/fixtures/hardening-server.mjs) on 127.0.0.1:0. */
export async function forkServer(root: string, configDir: string, transport: 'udp' | 'tcp', flags: string[] = []): Promise<{
  worker: Worker; port: number; key: string; addr: string; stats: (gc?: boolean) => Promise<ServerStats>
}> {
  const worker = new Worker('hardening-server.mjs', [root, transport, ...flags], { ...process.env, ASSETSYNC_CONFIG_DIR: configDir }, ['--expose-gc'])
  const l = await worker.next('listening', 60_000)
  const port = Number(l.port)
  return {
    worker, port, key: String(l.key), addr: `127.0.0.1:${port}`,
    /** With `gc`, the server collects garbage first (heapUsed is then what is really held). */
    stats: async (gc = false) => (await worker.ask({ cmd: 'stats', gc }, 'stats')) as ServerStats,
  }
}
