/**
 * The small things every kind of test needs, once: loopback, sizes, a content hash for checks,
 * polling and deadlines, a cleanup stack, temp folders, and memory readings.
 */
import { createHash } from 'node:crypto'
import type { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const LOOPBACK = '127.0.0.1'
export const KiB = 1024
export const MiB = 1024 * KiB

/** SHA-256 of `data`: an independent check of content in tests (the product uses BLAKE3). */
export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest()
}

export { waitFor, type WaitOptions } from '../../bench/lib/wait.mjs'

/** Rejects with a message naming `what` if `p` has not settled within `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
    p.then((v) => { clearTimeout(t); resolve(v) }, (e: unknown) => { clearTimeout(t); reject(e) })
  })
}

/** Resolves with the arguments of the next `event`, or rejects after `ms`. */
export function nextEvent(emitter: EventEmitter, event: string, ms: number): Promise<unknown[]> {
  return new Promise<unknown[]>((resolve, reject) => {
    const on = (...args: unknown[]): void => { clearTimeout(t); resolve(args) }
    const t = setTimeout(() => {
      emitter.off(event, on)
      reject(new Error(`timed out after ${ms} ms waiting for '${event}'`))
    }, ms)
    emitter.once(event, on)
  })
}

/** A LIFO stack of cleanup functions; `run()` in afterEach closes everything a test opened. */
export class Cleanup {
  #fns: Array<() => unknown> = []
  add(fn: () => unknown): void { this.#fns.push(fn) }
  async run(): Promise<void> {
    const fns = this.#fns.reverse()
    this.#fns = []
    for (const fn of fns) {
      try {
        await fn()
      } catch { /* best effort: one failed close must not leak the rest */ }
    }
  }
}

/** A temp folder removed by the returned cleanup. */
export async function tempDir(name: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `assetsync-hard-${name}-`))
  return { dir, remove: () => rm(dir, { recursive: true, force: true, maxRetries: 3 }) }
}

/** VmRSS of process `pid` in bytes, from /proc (Linux). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!m) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(m[1]) * 1024
}

export function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`
}
