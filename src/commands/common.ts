/**
 * Options shared by the client commands (pull, get, watch) and how they become AssetClient options.
 */
import { Option } from 'commander'
import { keepNoParts, removeLiveTemps } from '../core/fs/atomic-write.js'
import { AssetSyncError, interruptedBy } from '../errors.js'
import {
  CONNECT_TIMEOUT_MS, IDLE_TIMEOUT_MS, MAX_IDLE_TIMEOUT_MS, MAX_PATTERNS, MAX_PATTERN_BYTES, REQUEST_TIMEOUT_MS,
} from '../limits.js'
import type { AssetClientOptions } from '../core/client/client.js'
import { TRANSPORTS, type TransportName } from '../protocol/transport.js'

export interface ClientFlags {
  server: string
  token?: string
  key?: string
  transport: TransportName
  timeout?: string
  idleTimeout?: string
  json?: boolean
}

export const transportOption = (): Option =>
  new Option('--transport <name>', 'udp (encrypted reliable UDP) or tcp, for networks that block UDP')
    .choices(TRANSPORTS as string[]).default('udp')

export const tokenOption = (what: string): Option =>
  new Option('--token <secret>', what).env('ASSETSYNC_TOKEN')

/** --idle-timeout, for serve and the client commands. */
export const idleTimeoutOption = (): Option =>
  new Option('--idle-timeout <seconds>', `a peer we hear nothing from for this long is gone (default ${IDLE_TIMEOUT_MS / 1000}, at most ${MAX_IDLE_TIMEOUT_MS / 1000}); a killed peer is noticed in about 2 s anyway`)

/** Parses --idle-timeout (seconds, > 0, at most MAX_IDLE_TIMEOUT_MS); returns milliseconds. */
export function parseIdleTimeout(v: string | undefined): number | undefined {
  const ms = parseDuration('--idle-timeout', v, 's')
  if (ms !== undefined && ms > MAX_IDLE_TIMEOUT_MS) {
    throw new AssetSyncError('ERR_USAGE', `--idle-timeout must be at most ${MAX_IDLE_TIMEOUT_MS / 1000} seconds, got "${v}"`)
  }
  return ms
}

/** Adds --server, --token, --key, --transport, --timeout and --idle-timeout to a client command. */
export function clientOptions(): Option[] {
  return [
    new Option('-s, --server <host:port>', 'the assetsync server, e.g. 192.168.1.20:7420').makeOptionMandatory(),
    tokenOption('access token the server requires (or env ASSETSYNC_TOKEN)'),
    new Option('--key <hex>', "the server's public key; without it the key is pinned on first use"),
    transportOption(),
    new Option('--timeout <seconds>', `give up connecting after this long, and on a request with no answer for this long (default ${CONNECT_TIMEOUT_MS / 1000} s to connect, ${REQUEST_TIMEOUT_MS / 1000} s per request)`),
    idleTimeoutOption(),
  ]
}

/** Checks glob arguments before anything connects: an empty or oversize pattern is a usage error. */
export function checkPatterns(patterns: string[]): string[] {
  if (patterns.length > MAX_PATTERNS) throw new AssetSyncError('ERR_USAGE', `at most ${MAX_PATTERNS} patterns, got ${patterns.length}`)
  for (const p of patterns) {
    if (p.length === 0) throw new AssetSyncError('ERR_USAGE', 'empty pattern: pass a glob such as "**" or "scripts/**"')
    if (Buffer.byteLength(p) > MAX_PATTERN_BYTES) throw new AssetSyncError('ERR_USAGE', `pattern longer than ${MAX_PATTERN_BYTES} bytes`)
  }
  return patterns
}

/** Parses a positive duration flag given in `unit`; returns milliseconds. */
export function parseDuration(name: string, v: string | undefined, unit: 's' | 'ms', min = Number.MIN_VALUE): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  const ms = unit === 's' ? n * 1000 : n
  if (v.trim() === '' || !Number.isFinite(ms) || ms < min || ms > 86_400_000) {
    throw new AssetSyncError('ERR_USAGE', `${name} must be a number of ${unit === 's' ? 'seconds' : 'milliseconds'}${min > 0 ? ' > 0' : ' >= 0'}, got "${v}"`)
  }
  return Math.round(ms)
}

export function toClientOptions(f: ClientFlags): AssetClientOptions {
  const timeout = parseDuration('--timeout', f.timeout, 's')
  const idleTimeoutMs = parseIdleTimeout(f.idleTimeout)
  return {
    server: f.server,
    transport: f.transport,
    token: f.token,
    key: f.key ?? null,
    connectTimeoutMs: timeout ?? CONNECT_TIMEOUT_MS,
    requestTimeoutMs: timeout ?? REQUEST_TIMEOUT_MS,
    ...(idleTimeoutMs !== undefined ? { idleTimeoutMs } : {}),
  }
}

/**
 * Resolves when SIGINT or SIGTERM arrives (handlers removed afterwards); `cancel()` removes them
 * without waiting (a command that ended by itself, run in-process).
 */
export function untilSignal(): Promise<NodeJS.Signals> & { cancel(): void } {
  let on!: (sig: NodeJS.Signals) => void
  const off = (): void => {
    process.off('SIGINT', on)
    process.off('SIGTERM', on)
  }
  const p = new Promise<NodeJS.Signals>((resolve) => {
    on = (sig) => {
      off()
      keepNoParts()
      resolve(sig)
    }
    process.on('SIGINT', on)
    process.on('SIGTERM', on)
  })
  return Object.assign(p, { cancel: off })
}

/**
 * Turns the first SIGINT or SIGTERM into `ac.abort(ERR_INTERRUPTED | ERR_TERMINATED)`: the
 * command stops its work, its temp files go, and it exits 130 / 143 (errors.ts EXIT). A second
 * signal removes the temp files at once and lets the signal end the process. Returns the
 * function that removes the handlers.
 */
export function abortOnSignal(ac: AbortController): () => void {
  const on = (sig: NodeJS.Signals): void => {
    if (!ac.signal.aborted) {
      keepNoParts() // before the abort: the transfers it cuts short keep no staged part
      ac.abort(interruptedBy(sig))
      return
    }
    removeLiveTemps()
    dispose()
    process.kill(process.pid, sig)
  }
  const dispose = (): void => {
    process.off('SIGINT', on)
    process.off('SIGTERM', on)
  }
  process.on('SIGINT', on)
  process.on('SIGTERM', on)
  return dispose
}
