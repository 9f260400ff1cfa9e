/**
 * StatusJson: what a server is doing, as one JSON document. The server's /status (serve --http)
 * serves it, its live page renders it, and (wave 2) it is the payload of the STATUS reply frame
 * that `assetsync status` prints. It lives here, beside the wire, because both sides use it: the
 * server builds it (core/server/status.ts), the client reads it. What comes off the wire goes
 * through parseStatusJson, which refuses anything not of this exact shape.
 */
import { ProtocolError } from '../errors.js'

/** The whole status of one server. Times are ISO 8601 strings (UTC), durations milliseconds. */
export interface StatusJson {
  /** The assetsync version serving. */
  version: string
  /** The wire protocol version it speaks. */
  protocol: number
  /** The server's public key, 64 hex digits (what clients pin). */
  key: string
  transport: 'udp' | 'tcp'
  /** Where clients connect, e.g. "udp://0.0.0.0:7420". */
  address: string
  /** When the server started, and how long ago that was when this snapshot was taken. */
  startedAt: string
  uptimeMs: number
  /** Files indexed now. */
  files: number
  /** One entry per connected, authenticated client, oldest connection first. */
  clients: ClientStatus[]
  /** The last STATUS_BATCHES (50) change batches, newest first. */
  batches: BatchStatus[]
  /** Present (true) when fitStatus cut lists to fit a frame: what is shown is not everything. */
  truncated?: boolean
}

export interface ClientStatus {
  /** "address:port" as the server sees the client; unique among the connected clients. */
  remote: string
  transport: 'udp' | 'tcp'
  /** When it connected. */
  since: string
  /** Bytes over this connection so far (frames, before encryption). */
  bytes: { sent: number; received: number }
  /** What it is subscribed to: each pattern and the instance ids holding it. */
  subscriptions: SubscriptionStatus[]
  /** Its last reload report (`assetsync run`), or null if it never sent one. */
  lastReport: ReloadReport | null
}

export interface SubscriptionStatus {
  pattern: string
  instances: number[]
}

export interface ReloadReport {
  /** When the server received it. */
  at: string
  ok: boolean
  /** The wire paths the device reloaded (or tried to). */
  paths: string[]
  /** How long the reload took on the device. */
  ms: number
  /** Null when ok. */
  error: ReloadError | null
}

export interface ReloadError {
  /** The error as the device reported it (e.g. a Lua message with its traceback). */
  message: string
  /** The script and line it points at, when the message names one ("scripts/main.lua:12: …"). */
  file: string | null
  line: number | null
}

export interface BatchStatus {
  /** Numbers batches in the order they were pushed, from 1. */
  seq: number
  /** When it was announced. */
  at: string
  /** Newest save in the batch (file mtime) → announced; null when unknown. */
  lagMs: number | null
  /** Paths in the batch; `changes` keeps the first STATUS_BATCH_PATHS of them. */
  changeCount: number
  changes: { path: string; action: 'change' | 'delete' | 'rename'; from?: string }[]
  /** Clients it was pushed to; `recipients` keeps the first STATUS_BATCH_RECIPIENTS remotes. */
  recipientCount: number
  recipients: string[]
}

const utf8 = (s: string): number => Buffer.byteLength(s)

/**
 * The JSON text of `s`, at most `maxBytes` of UTF-8: when the whole document is larger (thousands
 * of clients, long tracebacks), batches are cut first, then each client's subscriptions and report,
 * then clients, and `truncated` says so.
 */
export function fitStatus(s: StatusJson, maxBytes: number): string {
  let json = JSON.stringify(s)
  if (utf8(json) <= maxBytes) return json
  const cut: StatusJson = {
    ...s,
    truncated: true,
    batches: s.batches.slice(0, 10).map((b) => ({ ...b, changes: b.changes.slice(0, 10), recipients: b.recipients.slice(0, 8) })),
    clients: s.clients.map((c) => ({
      ...c,
      subscriptions: c.subscriptions.slice(0, 16).map((x) => ({ pattern: x.pattern, instances: x.instances.slice(0, 8) })),
      lastReport: c.lastReport && {
        ...c.lastReport,
        paths: c.lastReport.paths.slice(0, 10),
        error: c.lastReport.error && { ...c.lastReport.error, message: c.lastReport.error.message.slice(0, 512) },
      },
    })),
  }
  json = JSON.stringify(cut)
  while (utf8(json) > maxBytes && cut.clients.length > 0) {
    cut.clients = cut.clients.slice(0, Math.floor(cut.clients.length / 2))
    json = JSON.stringify(cut)
  }
  if (utf8(json) > maxBytes) json = JSON.stringify({ ...cut, batches: [], clients: [] })
  return json
}

type Check = (v: unknown, at: string) => void

function fail(at: string, what: string): never {
  throw new ProtocolError(`bad status from the server: ${at} is not ${what}`)
}
const str: Check = (v, at) => { if (typeof v !== 'string') fail(at, 'a string') }
const num: Check = (v, at) => { if (typeof v !== 'number' || !Number.isFinite(v)) fail(at, 'a number') }
const bool: Check = (v, at) => { if (typeof v !== 'boolean') fail(at, 'true or false') }
const nullable = (c: Check): Check => (v, at) => { if (v !== null) c(v, at) }
const oneOf = (...values: string[]): Check => (v, at) => { if (!values.includes(v as string)) fail(at, values.join(' or ')) }
const list = (c: Check): Check => (v, at) => {
  if (!Array.isArray(v)) fail(at, 'a list')
  v.forEach((x, i) => c(x, `${at}[${i}]`))
}
const obj = (fields: Record<string, Check>, optional: Record<string, Check> = {}): Check => (v, at) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(at, 'an object')
  const o = v as Record<string, unknown>
  for (const [k, c] of Object.entries(fields)) c(o[k], `${at}.${k}`)
  for (const [k, c] of Object.entries(optional)) if (o[k] !== undefined) c(o[k], `${at}.${k}`)
}

const reloadError = obj({ message: str, file: nullable(str), line: nullable(num) })
const report = obj({ at: str, ok: bool, paths: list(str), ms: num, error: nullable(reloadError) })
const client = obj({
  remote: str, transport: oneOf('udp', 'tcp'), since: str, bytes: obj({ sent: num, received: num }),
  subscriptions: list(obj({ pattern: str, instances: list(num) })), lastReport: nullable(report),
})
const batch = obj({
  seq: num, at: str, lagMs: nullable(num), changeCount: num,
  changes: list(obj({ path: str, action: oneOf('change', 'delete', 'rename') }, { from: str })),
  recipientCount: num, recipients: list(str),
})
const status = obj({
  version: str, protocol: num, key: str, transport: oneOf('udp', 'tcp'), address: str, startedAt: str,
  uptimeMs: num, files: num, clients: list(client), batches: list(batch),
}, { truncated: bool })

/** Parses a StatusJson that came from elsewhere (a server's frame): anything else is a ProtocolError. */
export function parseStatusJson(text: string): StatusJson {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    throw new ProtocolError('bad status from the server: not JSON')
  }
  status(v, 'status')
  return v as StatusJson
}
