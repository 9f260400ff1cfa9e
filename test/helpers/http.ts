/**
 * Reading a server's --http surface in tests: plain GETs, /status as StatusJson, /metrics as
 * numbers, and the machine's first non-loopback address for the token rules.
 */
import { type IncomingHttpHeaders, request } from 'node:http'
import { networkInterfaces } from 'node:os'
import { type StatusJson, parseStatusJson } from '../../src/protocol/status-json.js'

export interface HttpReply { status: number; headers: IncomingHttpHeaders; body: string }

/** One HTTP request; resolves with the whole answer. */
export function httpGet(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** GET <base>/status, checked to be a StatusJson (parseStatusJson throws on any other shape). */
export async function fetchStatus(base: string, headers: Record<string, string> = {}): Promise<StatusJson> {
  const r = await httpGet(`${base}/status`, headers)
  if (r.status !== 200) throw new Error(`/status answered ${r.status}: ${r.body.slice(0, 200)}`)
  return parseStatusJson(r.body)
}

/** Every sample of a Prometheus text exposition: `name{labels}` (as written) → value. */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line)
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`)
    out.set(m[1] as string, Number(m[2]))
  }
  return out
}

/** GET <base>/metrics, parsed. */
export async function scrape(base: string, headers: Record<string, string> = {}): Promise<Map<string, number>> {
  const r = await httpGet(`${base}/metrics`, headers)
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}: ${r.body.slice(0, 200)}`)
  return parseMetrics(r.body)
}

/** The value of one sample; throws naming it when it is missing (a renamed series fails loudly). */
export function sample(m: Map<string, number>, key: string): number {
  const v = m.get(key)
  if (v === undefined) throw new Error(`no sample ${key} in /metrics (have: ${[...m.keys()].filter((k) => k.startsWith('assetsync_') && !k.includes('process') && !k.includes('nodejs')).join(', ')})`)
  return v
}

/** The first non-internal IPv4 address of this machine, or null (then off-loopback tests skip). */
export function nonLoopbackAddress(): string | null {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
  }
  return null
}
