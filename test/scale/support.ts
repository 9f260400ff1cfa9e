/**
 * Real parts for the scale-out tests: an S3 API server (s3rver, in this process, on a free port,
 * its data in a temp folder) and nats-server processes (one, or a 3-node JetStream cluster), and
 * the CLI's origin and edges on top. Nothing is mocked: the SDK, the NATS client and the servers
 * are the real ones; s3rver stands in for S3 itself (docs/scale-out.md lists what it lacks).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { type Server, type Socket, connect as tcpConnect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import S3rver from 's3rver'
import type { Sandbox, ServerHandle } from '../helpers/cli.js'
import { parseEvents } from '../helpers/cli.js'
import { LOOPBACK, waitFor } from '../helpers/common.js'

export const NATS_BIN = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server'
/** Why the scale tests cannot run here, or null. */
export const NATS_MISSING = existsSync(NATS_BIN) ? null : `nats-server not found at ${NATS_BIN} (apt-get install nats-server; .ci/run does)`
if (NATS_MISSING) console.warn(`\n*** SKIPPING scale-out tests: ${NATS_MISSING} ***\n`)

export const BUCKET = 'assets-test'
export const S3_KEYS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' }

export async function freePort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, LOOPBACK, r))
  const a = srv.address()
  await new Promise<void>((r) => srv.close(() => r()))
  if (typeof a !== 'object' || a === null) throw new Error('no address')
  return a.port
}

/** An S3 API server with one bucket; `stop`/`start` cut it off and bring it back on the same port. */
export class TestS3 {
  readonly dir: string
  readonly port: number
  #srv: S3rver | null = null

  private constructor(dir: string, port: number) {
    this.dir = dir
    this.port = port
  }

  static async start(): Promise<TestS3> {
    const s = new TestS3(await mkdtemp(join(tmpdir(), 'assetsync-s3-')), await freePort())
    await s.start()
    return s
  }

  get endpoint(): string { return `http://${LOOPBACK}:${this.port}` }
  /** The standard AWS environment pointing at this server. */
  env(): Record<string, string> { return { ...S3_KEYS, AWS_ENDPOINT_URL_S3: this.endpoint } }
  /** The same environment, reaching this server through `endpoint` (a TcpRelay's httpUrl). */
  envVia(endpoint: string): Record<string, string> { return { ...S3_KEYS, AWS_ENDPOINT_URL_S3: endpoint } }
  /** Path of an object's data file in s3rver's folder (to tamper with it). */
  objectFile(key: string): string { return join(this.dir, BUCKET, `${key}._S3rver_object`) }

  async start(): Promise<void> {
    const srv = new S3rver({ port: this.port, address: LOOPBACK, silent: true, directory: this.dir, configureBuckets: [{ name: BUCKET, configs: [] }] })
    await srv.run()
    this.#srv = srv
  }

  async stop(): Promise<void> {
    const srv = this.#srv
    this.#srv = null
    await srv?.close()
  }

  async remove(): Promise<void> {
    await this.stop()
    await rm(this.dir, { recursive: true, force: true })
  }
}

/** nats-server processes: one, or a JetStream cluster of `size`. */
export class TestNats {
  readonly ports: number[]
  readonly #procs: (ChildProcess | null)[]
  readonly #args: string[][]
  readonly #dirs: string[]

  private constructor(ports: number[], args: string[][], dirs: string[]) {
    this.ports = ports
    this.#args = args
    this.#dirs = dirs
    this.#procs = ports.map(() => null)
  }

  static async start(size = 1): Promise<TestNats> {
    const ports: number[] = []
    const routes: number[] = []
    for (let i = 0; i < size; i++) ports.push(await freePort())
    for (let i = 0; i < size; i++) routes.push(await freePort())
    const dirs: string[] = []
    const args: string[][] = []
    for (let i = 0; i < size; i++) {
      const dir = await mkdtemp(join(tmpdir(), 'assetsync-nats-'))
      dirs.push(dir)
      const a = ['-js', '-a', LOOPBACK, '-p', String(ports[i]), '-sd', dir, '-n', `n${i}`]
      if (size > 1) {
        a.push('--cluster_name', 'assetsync-test', '--cluster', `nats://${LOOPBACK}:${routes[i]}`,
          '--routes', routes.filter((_, j) => j !== i).map((r) => `nats://${LOOPBACK}:${r}`).join(','))
      }
      args.push(a)
    }
    const n = new TestNats(ports, args, dirs)
    await Promise.all(ports.map((_, i) => n.startNode(i)))
    if (size > 1) await n.#waitForCluster()
    return n
  }

  /** `nats://` URLs of every node, comma-separated (the --feed value). */
  get url(): string { return this.ports.map((p) => `nats://${LOOPBACK}:${p}`).join(',') }

  async startNode(i: number): Promise<void> {
    const p = spawn(NATS_BIN, this.#args[i] as string[], { stdio: ['ignore', 'ignore', 'pipe'] })
    this.#procs[i] = p
    let log = ''
    p.stderr?.on('data', (d: Buffer) => { log += d.toString() })
    await waitFor(() => {
      if (p.exitCode !== null) throw new Error(`nats-server exited: ${log}`)
      return /Server is ready/.test(log)
    }, 10_000, 'nats-server to be ready', { detail: () => log.slice(-2000) })
  }

  /** JetStream in a cluster needs a meta leader before a stream can be created. */
  async #waitForCluster(): Promise<void> {
    const { connect } = await import('nats')
    const nc = await connect({ servers: this.ports.map((p) => `${LOOPBACK}:${p}`) })
    try {
      await waitFor(async () => {
        try {
          const jsm = await nc.jetstreamManager()
          await jsm.getAccountInfo()
          return true
        } catch {
          return false
        }
      }, 20_000, 'the JetStream cluster to elect a leader')
    } finally {
      await nc.close()
    }
  }

  /** Kills node `i` (SIGKILL) and waits for it to be gone. */
  async kill(i: number): Promise<void> {
    const p = this.#procs[i]
    this.#procs[i] = null
    if (!p || p.exitCode !== null) return
    await new Promise<void>((r) => { p.once('exit', () => r()); p.kill('SIGKILL') })
  }

  async stop(): Promise<void> {
    for (let i = 0; i < this.ports.length; i++) await this.kill(i)
    for (const d of this.#dirs) await rm(d, { recursive: true, force: true })
  }
}

/**
 * A TCP relay in front of one NATS server, so one client (an edge) can lose NATS while the others
 * (the origin) keep it: `cut()` drops every relayed connection and refuses new ones until
 * `heal()`. A single nats-server (no cluster) gossips no other URL, so the client only ever
 * reconnects through the relay.
 */
export class TcpRelay {
  readonly #target: number
  readonly #srv: Server
  readonly #open = new Set<Socket>()
  #cut = false
  #port = 0

  private constructor(target: number) {
    this.#target = target
    this.#srv = createServer((client) => this.#relay(client))
  }

  static async start(target: number): Promise<TcpRelay> {
    const relay = new TcpRelay(target)
    await new Promise<void>((r) => relay.#srv.listen(0, LOOPBACK, r))
    const a = relay.#srv.address()
    if (typeof a !== 'object' || a === null) throw new Error('no address')
    relay.#port = a.port
    return relay
  }

  #relay(client: Socket): void {
    if (this.#cut) {
      client.destroy()
      return
    }
    const upstream = tcpConnect(this.#target, LOOPBACK)
    for (const s of [client, upstream]) {
      this.#open.add(s)
      s.on('error', () => {})
      s.on('close', () => {
        this.#open.delete(s)
        client.destroy()
        upstream.destroy()
      })
    }
    client.pipe(upstream)
    upstream.pipe(client)
  }

  /** The `nats://` URL of the relay (the --feed value for the client behind it). */
  get url(): string { return `nats://${LOOPBACK}:${this.#port}` }
  /** The `http://` URL of the relay (an S3 endpoint, for a client behind it). */
  get httpUrl(): string { return `http://${LOOPBACK}:${this.#port}` }

  /** Drops every relayed connection and refuses new ones. */
  cut(): void {
    this.#cut = true
    for (const s of this.#open) s.destroy()
  }

  /** Relays new connections again. */
  heal(): void { this.#cut = false }

  async close(): Promise<void> {
    this.cut()
    await new Promise<void>((r) => this.#srv.close(() => r()))
  }
}

export interface EdgeHandle extends ServerHandle {
  config: string
}

/**
 * `assetsync serve --origin s3://BUCKET/<prefix> --feed <feed> --json` on a free port, with its
 * own config dir (identity, so its own durable consumer, and chunk cache).
 */
export async function startEdge(sb: Sandbox, s3: Pick<TestS3, 'env'>, prefix: string, feed: string | null, args: string[] = [], config?: string): Promise<EdgeHandle> {
  const cfg = config ?? await sb.mkdir('edge-config')
  const all = ['serve', '--origin', `s3://${BUCKET}/${prefix}`, ...(feed ? ['--feed', feed] : []), '--host', LOOPBACK, '--port', '0', '--json', ...args]
  const s = sb.spawn(all, { timeoutMs: 600_000, env: { ...s3.env(), ASSETSYNC_CONFIG_DIR: cfg } })
  let exited = false
  const exitedP = s.result.then((r) => { exited = true; return r })
  const events = (): Array<{ event: string } & Record<string, unknown>> => {
    const text = s.stdoutSoFar()
    return parseEvents(text.slice(0, text.lastIndexOf('\n') + 1))
  }
  const listening = await waitFor(() => {
    if (exited) throw new Error(`edge exited before listening: ${s.stderrSoFar()}`)
    return events().find((e) => e.event === 'listening')
  }, 30_000, 'the edge to print {"event":"listening"}', { detail: () => s.stderrSoFar() })
  const port = listening.port as number
  return {
    proc: s.proc, host: LOOPBACK, port, addr: `${LOOPBACK}:${port}`, key: String(listening.key), listening, events,
    stderr: s.stderrSoFar, exited: exitedP, config: cfg,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (!exited) s.proc.kill(signal)
      return exitedP
    },
  }
}

/** Waits until an origin printed a `published` event with at least `version`. */
export async function waitPublished(server: Pick<ServerHandle, 'events' | 'stderr'>, version: number, ms = 30_000): Promise<Record<string, unknown>> {
  return waitFor(() => server.events().find((e) => e.event === 'published' && (e.version as number) >= version), ms,
    `the origin to publish version ${version}`, { detail: () => `${JSON.stringify(server.events().slice(-5))}\n${server.stderr().slice(-2000)}` })
}
