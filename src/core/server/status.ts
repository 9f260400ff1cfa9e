/**
 * What a server is doing, as one JSON document (StatusJson): served as /status by `serve --http`,
 * pushed to the live page, and (wave 2) the payload of the STATUS protocol frame that
 * `assetsync status --json` prints. StatusTracker keeps it up to date from narrow calls the
 * server makes, and tells listeners (the live page) when it changed.
 */
import { STATUS_BATCHES, STATUS_BATCH_PATHS, STATUS_BATCH_RECIPIENTS } from '../../limits.js'

import type { BatchStatus, ReloadError, ReloadReport, StatusJson, SubscriptionStatus } from '../../protocol/status-json.js'

export type { BatchStatus, ClientStatus, ReloadError, ReloadReport, StatusJson, SubscriptionStatus } from '../../protocol/status-json.js'

/** What the HTTP surface (and the STATUS frame) needs from a server: a snapshot, and change news. */
export interface StatusProvider {
  snapshot(): StatusJson
  /** Calls `listener` after each change of the snapshot; returns the function that stops that. */
  onChange(listener: () => void): () => void
}

/** What the tracker reads from a connected client whenever a snapshot is taken. */
export interface ClientProbe {
  remote: string
  transport: 'udp' | 'tcp'
  bytes(): { sent: number; received: number }
  subscriptions(): SubscriptionStatus[]
}

/** A reload report as it arrives: the error may be plain text, its location is then looked for. */
export interface ReportInput {
  ok: boolean
  paths: string[]
  ms: number
  error?: string | { message: string; file?: string | null; line?: number | null } | null
}

const LUA_LOCATION = /(?:\[string "([^"\n]{1,1024})"\]|((?:[A-Za-z]:)?[^\s:"'()[\]<>]{1,1024}\.lua)):(\d{1,9}):/

/**
 * The first "file:line:" a Lua error message names: `scripts/main.lua:12: attempt to call a nil
 * value` or `[string "scripts/main.lua"]:12: …`. Null when there is none.
 */
export function errorLocation(message: string): { file: string; line: number } | null {
  const m = LUA_LOCATION.exec(message)
  if (!m) return null
  return { file: (m[1] ?? m[2]) as string, line: Number(m[3]) }
}

/** The fixed facts of the server a StatusTracker describes, and its clock. */
export interface StatusTrackerOptions {
  version: string
  protocol: number
  key: string
  transport: 'udp' | 'tcp'
  address: string
  /** Files indexed now (read at snapshot time). */
  files: () => number
  /** Milliseconds since the epoch; injectable for tests. */
  now?: () => number
}

interface Tracked {
  probe: ClientProbe
  since: number
  lastReport: ReloadReport | null
}

/** Keeps the StatusJson of one server; the server calls it as things happen. */
export class StatusTracker implements StatusProvider {
  readonly #opts: StatusTrackerOptions
  readonly #now: () => number
  readonly #startedAt: number
  readonly #clients = new Map<string, Tracked>()
  #batches: BatchStatus[] = []
  #seq = 0
  readonly #listeners = new Set<() => void>()

  constructor(opts: StatusTrackerOptions) {
    this.#opts = opts
    this.#now = opts.now ?? Date.now
    this.#startedAt = this.#now()
  }

  /** A client finished the handshake and authentication. */
  clientConnected(probe: ClientProbe): void {
    this.#clients.set(probe.remote, { probe, since: this.#now(), lastReport: null })
    this.changed()
  }

  /** A client's connection closed: it leaves the status at once. */
  clientDisconnected(remote: string): void {
    if (this.#clients.delete(remote)) this.changed()
  }

  /** A client sent a reload report. Unknown remotes are ignored (the report raced the close). */
  clientReport(remote: string, r: ReportInput): ReloadReport | null {
    const c = this.#clients.get(remote)
    if (!c) return null
    let error: ReloadError | null = null
    if (!r.ok || r.error) {
      const e = typeof r.error === 'object' && r.error !== null ? r.error : { message: r.error ?? 'reload failed' }
      const found = e.file ? null : errorLocation(e.message)
      error = { message: e.message, file: e.file ?? found?.file ?? null, line: e.line ?? found?.line ?? null }
    }
    c.lastReport = { at: this.#iso(this.#now()), ok: r.ok, paths: r.paths.slice(0, STATUS_BATCH_PATHS), ms: r.ms, error }
    this.changed()
    return c.lastReport
  }

  /** A change batch was pushed to `recipients` (their remotes). */
  batch(b: { changes: BatchStatus['changes']; recipients: string[]; lagMs: number | null }): void {
    const entry: BatchStatus = {
      seq: ++this.#seq,
      at: this.#iso(this.#now()),
      lagMs: b.lagMs === null || !Number.isFinite(b.lagMs) ? null : Math.max(0, Math.round(b.lagMs)),
      changeCount: b.changes.length,
      changes: b.changes.slice(0, STATUS_BATCH_PATHS).map((c) => ({ ...c })),
      recipientCount: b.recipients.length,
      recipients: b.recipients.slice(0, STATUS_BATCH_RECIPIENTS),
    }
    this.#batches.unshift(entry)
    if (this.#batches.length > STATUS_BATCHES) this.#batches.length = STATUS_BATCHES
    this.changed()
  }

  /** Something read through a probe changed (e.g. subscriptions): tell the listeners. */
  changed(): void {
    for (const l of [...this.#listeners]) l()
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  snapshot(): StatusJson {
    const now = this.#now()
    const o = this.#opts
    return {
      version: o.version,
      protocol: o.protocol,
      key: o.key,
      transport: o.transport,
      address: o.address,
      startedAt: this.#iso(this.#startedAt),
      uptimeMs: Math.max(0, now - this.#startedAt),
      files: o.files(),
      clients: [...this.#clients.values()].map((c) => ({
        remote: c.probe.remote,
        transport: c.probe.transport,
        since: this.#iso(c.since),
        bytes: { ...c.probe.bytes() },
        subscriptions: c.probe.subscriptions().map((s) => ({ pattern: s.pattern, instances: [...s.instances] })),
        lastReport: c.lastReport,
      })),
      batches: this.#batches.slice(),
    }
  }

  #iso(ms: number): string {
    return new Date(ms).toISOString()
  }
}
