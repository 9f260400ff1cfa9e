/**
 * `assetsync status` without --json: a StatusJson as tables a person reads in a terminal. Every
 * string came from the server, so control characters (terminal escapes) are made visible, never
 * written raw.
 */
import type { StatusJson } from '../protocol/status-json.js'
import { formatBytes } from './output.js'

/** Widest a table cell gets before it is cut with "…". */
const CELL_MAX = 48

/** The text with C0/C1 control characters (ESC, CR, …) shown as \u001b etc.; newlines too. */
export function visible(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

function cell(s: string, max = CELL_MAX): string {
  const v = visible(s)
  return v.length > max ? `${v.slice(0, max - 1)}…` : v
}

function duration(ms: number): string {
  const s = Math.floor(ms / 1000)
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min`
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`
}

function ago(iso: string, now: number): string {
  const t = Date.parse(iso)
  return Number.isNaN(t) ? '?' : `${duration(Math.max(0, now - t))} ago`
}

function table(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd()
  return [line(head), ...rows.map(line)]
}

/** The status as text: a header, a device table, then the recent change batches. */
export function formatStatus(s: StatusJson, now: number = Date.now()): string {
  // The snapshot's own clock: "ago" is measured from when the server took it.
  const at = Date.parse(s.startedAt) + s.uptimeMs
  const out: string[] = [
    `assetsync ${cell(s.version)} serving ${cell(s.address)}, up ${duration(s.uptimeMs)}, ${s.files} files`,
    `server key ${cell(s.key, 64)}`,
    '',
  ]
  const ref = Number.isNaN(at) ? now : at
  if (s.clients.length === 0) out.push('no devices connected')
  else {
    out.push(...table(['DEVICE', 'VIA', 'CONNECTED', 'SENT', 'RECEIVED', 'SUBSCRIPTIONS', 'LAST RELOAD'], s.clients.map((c) => {
      const subs = c.subscriptions.map((x) => x.pattern).join(', ') || '-'
      const r = c.lastReport
      let reload = '-'
      if (r?.ok) reload = `ok: ${r.paths.length} file${r.paths.length === 1 ? '' : 's'} in ${r.ms} ms, ${ago(r.at, ref)}`
      else if (r) {
        const first = (r.error?.message ?? 'reload failed').split('\n')[0] ?? ''
        const where = r.error?.file ? `${r.error.file}${r.error.line !== null ? `:${r.error.line}` : ''}` : ''
        // A Lua message usually starts with its own file:line; say it once.
        reload = `FAILED: ${where && !first.includes(where) ? `${where}: ` : ''}${first}`
      }
      return [cell(c.remote), c.transport, ago(c.since, ref), formatBytes(c.bytes.sent), formatBytes(c.bytes.received), cell(subs, 40), cell(reload, 80)]
    })))
  }
  out.push('', 'RECENT CHANGES (newest first)')
  if (s.batches.length === 0) out.push('none yet')
  else {
    out.push(...table(['WHEN', 'CHANGES', 'LAG', 'PATHS', 'SENT TO'], s.batches.slice(0, 10).map((b) => [
      ago(b.at, ref),
      String(b.changeCount),
      b.lagMs === null ? '-' : `${b.lagMs} ms`,
      cell(b.changes.map((c) => c.path).join(', ') + (b.changeCount > b.changes.length ? ', …' : ''), 60),
      b.recipientCount === 0 ? 'nobody' : cell(b.recipients.join(', ') + (b.recipientCount > b.recipients.length ? ` +${b.recipientCount - b.recipients.length}` : ''), 60),
    ])))
    if (s.batches.length > 10) out.push(`… ${s.batches.length - 10} older batches (--json shows all)`)
  }
  if (s.truncated) out.push('', '(the server cut this status to fit one frame: not every device or batch is shown)')
  return `${out.join('\n')}\n`
}
