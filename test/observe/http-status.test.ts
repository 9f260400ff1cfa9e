/**
 * The --http listener on real sockets (port 0): routes, the live-page event stream, and who may
 * ask. The off-loopback rule is tested on a real non-loopback address of this machine (the first
 * non-internal IPv4 of os.networkInterfaces()); without one those tests skip and say so.
 */
import { type IncomingHttpHeaders, request } from 'node:http'
import { networkInterfaces } from 'node:os'
import { afterEach, describe, expect, it } from 'vitest'
import { HTTP_SSE_MAX_CLIENTS } from '../../src/limits.js'
import { HttpStatusServer, SESSION_COOKIE, isLoopback, parseHttpAddress } from '../../src/core/server/http-status.js'
import { Metrics } from '../../src/core/server/metrics.js'
import { StatusTracker } from '../../src/core/server/status.js'
import type { StatusJson } from '../../src/core/server/status.js'

const TOKEN = 'correct horse battery staple'
const open: HttpStatusServer[] = []
afterEach(async () => { await Promise.all(open.splice(0).map((s) => s.close())) })

function newTracker(): StatusTracker {
  return new StatusTracker({ version: '0.1.0', protocol: 2, key: 'cd'.repeat(32), transport: 'udp', address: 'udp://127.0.0.1:7420', files: () => 3 })
}

async function listen(opts: { host?: string; token?: string | null; tracker?: StatusTracker; metrics?: Metrics | null } = {}): Promise<{ http: HttpStatusServer; tracker: StatusTracker }> {
  const tracker = opts.tracker ?? newTracker()
  const http = await HttpStatusServer.listen({
    host: opts.host, port: 0, token: opts.token ?? null, provider: tracker,
    metrics: opts.metrics === undefined ? new Metrics({ version: '0.1.0', processMetrics: false }) : opts.metrics,
  })
  open.push(http)
  return { http, tracker }
}

interface Reply { status: number; headers: IncomingHttpHeaders; body: string }

function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
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

/** An /events reader: collects each `status` event's snapshot. */
function events(url: string, headers: Record<string, string> = {}): Promise<{ status: number; got: StatusJson[]; next(n?: number): Promise<StatusJson>; close(): void }> {
  return new Promise((resolve, reject) => {
    const got: StatusJson[] = []
    const waiters: (() => void)[] = []
    const req = request(`${url}/events`, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      let buf = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => {
        buf += d
        let end
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end)
          buf = buf.slice(end + 2)
          const data = /^event: status\ndata: (.*)$/m.exec(block)
          if (data) { got.push(JSON.parse(data[1] as string)); for (const w of waiters.splice(0)) w() }
        }
      })
      resolve({
        status: res.statusCode ?? 0,
        got,
        /** Resolves with the n-th event (1-based) once it has arrived. */
        next: (n = got.length + 1) => new Promise((ok, fail) => {
          const timer = setTimeout(() => fail(new Error(`no event #${n} within 10 s (got ${got.length})`)), 10_000)
          const check = (): void => { if (got.length >= n) { clearTimeout(timer); ok(got[n - 1] as StatusJson) } else waiters.push(check) }
          check()
        }),
        close: () => req.destroy(),
      })
    })
    req.on('error', reject)
    req.end()
  })
}

function nonLoopbackAddress(): string | null {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
  }
  return null
}

describe('parseHttpAddress / isLoopback', () => {
  it.each([
    ['7421', { host: '127.0.0.1', port: 7421 }],
    [':0', { host: '127.0.0.1', port: 0 }],
    ['0.0.0.0:7421', { host: '0.0.0.0', port: 7421 }],
    ['[::1]:80', { host: '::1', port: 80 }],
    ['localhost:9000', { host: 'localhost', port: 9000 }],
  ])('%s', (v, want) => { expect(parseHttpAddress(v)).toEqual(want) })

  it.each(['', 'host', 'host:', 'h:70000', 'http://h:1', 'h:1:2', ':-1'])('refuses "%s" as a usage error', (v) => {
    expect(() => parseHttpAddress(v)).toThrow(expect.objectContaining({ code: 'ERR_USAGE' }))
  })

  it('knows loopback', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) expect([h, isLoopback(h)]).toEqual([h, true])
    for (const h of ['0.0.0.0', '::', '192.168.1.2', 'example.com', '128.0.0.1', '127.0.0.1.evil.com']) expect([h, isLoopback(h)]).toEqual([h, false])
  })
})

describe('on loopback (the default)', () => {
  it('binds 127.0.0.1 on a free port and serves /status, /metrics and the page', async () => {
    const { http, tracker } = await listen()
    expect(http.address().host).toBe('127.0.0.1')
    expect(http.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(http.requiresToken).toBe(false)
    tracker.clientConnected({ remote: '10.1.1.1:999', transport: 'tcp', bytes: () => ({ sent: 1, received: 2 }), subscriptions: () => [{ pattern: '**', instances: [0] }] })

    const status = await get(`${http.url}/status`)
    expect(status.status).toBe(200)
    expect(status.headers['content-type']).toBe('application/json; charset=utf-8')
    const s = JSON.parse(status.body) as StatusJson
    expect(s.clients).toEqual([expect.objectContaining({ remote: '10.1.1.1:999', transport: 'tcp', subscriptions: [{ pattern: '**', instances: [0] }] })])

    const metrics = await get(`${http.url}/metrics`)
    expect(metrics.status).toBe(200)
    expect(metrics.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(metrics.body).toContain('# TYPE assetsync_requests_total counter')

    const page = await get(`${http.url}/`, { accept: 'text/html' })
    expect(page.status).toBe(200)
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8')
    expect(page.headers['content-security-policy']).toMatch(/default-src 'none'; style-src 'sha256-[^']+'; script-src 'sha256-[^']+'; connect-src 'self'/)
    expect(page.headers['x-content-type-options']).toBe('nosniff')
    expect(page.headers['referrer-policy']).toBe('no-referrer')
    expect(page.body).toContain('<script>')
  })

  it('answers 404, 405 and HEAD sensibly, and 404 for /metrics without metrics', async () => {
    const { http } = await listen({ metrics: null })
    expect((await get(`${http.url}/nope`)).status).toBe(404)
    const post = await get(`${http.url}/status`, {}, 'POST')
    expect([post.status, post.headers.allow]).toEqual([405, 'GET, HEAD'])
    const head = await get(`${http.url}/status`, {}, 'HEAD')
    expect([head.status, head.body, Number(head.headers['content-length']) > 0]).toEqual([200, '', true])
    expect((await get(`${http.url}/metrics`)).status).toBe(404)
  })

  it('refuses a foreign Host header (DNS rebinding)', async () => {
    const { http } = await listen()
    const port = http.address().port
    expect((await get(`${http.url}/status`, { host: `evil.example:${port}` })).status).toBe(421)
    expect((await get(`${http.url}/status`, { host: `localhost:${port}` })).status).toBe(200)
  })

  it('does not ask a token on loopback even when the server has one', async () => {
    const { http } = await listen({ token: TOKEN })
    expect((await get(`${http.url}/status`)).status).toBe(200)
  })

  it('pushes a snapshot on connect and after changes, one per burst', async () => {
    const { http, tracker } = await listen()
    const ev = await events(http.url)
    expect(ev.status).toBe(200)
    expect((await ev.next(1)).batches).toEqual([])
    // 100 changes in one turn of the event loop: one push, carrying the last of them.
    for (let i = 0; i < 100; i++) tracker.batch({ changes: [{ path: `f${i}`, action: 'change' }], recipients: [], lagMs: 5 })
    expect((await ev.next(2)).batches[0]?.seq).toBe(100)
    tracker.batch({ changes: [{ path: 'g', action: 'delete' }], recipients: ['10.0.0.9:1'], lagMs: null })
    const third = await ev.next(3)
    expect(third.batches[0]).toMatchObject({ seq: 101, recipients: ['10.0.0.9:1'] })
    expect(ev.got.map((s) => s.batches[0]?.seq ?? 0)).toEqual([0, 100, 101])
    ev.close()
  })

  it(`serves at most HTTP_SSE_MAX_CLIENTS (${HTTP_SSE_MAX_CLIENTS}) live pages`, async () => {
    const { http } = await listen()
    const pages = await Promise.all(Array.from({ length: HTTP_SSE_MAX_CLIENTS }, () => events(http.url)))
    await Promise.all(pages.map((p) => p.next(1)))
    const extra = await events(http.url)
    expect(extra.status).toBe(503)
    extra.close()
    pages[0]?.close()
    // The slot frees once the server sees the close.
    let again = await events(http.url)
    for (let i = 0; again.status === 503 && i < 200; i++) {
      again.close()
      await new Promise((r) => setTimeout(r, 10))
      again = await events(http.url)
    }
    expect(again.status).toBe(200)
    again.close()
    for (const p of pages) p.close()
  })

  it('close() ends live pages and frees the port', async () => {
    const { http } = await listen()
    const port = http.address().port
    const ev = await events(http.url)
    await ev.next(1)
    await http.close()
    open.splice(open.indexOf(http), 1)
    const again = await HttpStatusServer.listen({ port, token: null, provider: newTracker(), metrics: null })
    open.push(again)
    expect(again.address().port).toBe(port)
  })
})

describe('off loopback: the token is required', () => {
  const addr = nonLoopbackAddress()
  if (!addr) console.warn('SKIPPED off-loopback HTTP tests: this machine has no non-loopback IPv4 address to bind')

  it('will not start without a token', async () => {
    await expect(HttpStatusServer.listen({ host: '0.0.0.0', port: 0, token: null, provider: newTracker(), metrics: null }))
      .rejects.toMatchObject({ code: 'ERR_USAGE', message: expect.stringContaining('needs the server to have a token') })
  })

  it.skipIf(!addr)('refuses requests without the token, with a wrong one, and with a forged cookie', async () => {
    const { http } = await listen({ host: addr as string, token: TOKEN })
    expect(http.requiresToken).toBe(true)
    expect(http.url).toBe(`http://${addr}:${http.address().port}`)
    for (const path of ['/', '/status', '/metrics', '/events']) {
      const r = await get(`${http.url}${path}`)
      expect([path, r.status, r.headers['www-authenticate']]).toEqual([path, 401, 'Bearer realm="assetsync"'])
      expect(r.body).not.toContain('assetsync_')
    }
    expect((await get(`${http.url}/status`, { authorization: 'Bearer wrong' })).status).toBe(401)
    expect((await get(`${http.url}/status`, { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` })).status).toBe(401)
    expect((await get(`${http.url}/status`, { cookie: `${SESSION_COOKIE}=${TOKEN}` })).status).toBe(401)
    expect((await get(`${http.url}/status?token=wrong`)).status).toBe(401)
    // A browser without the token gets the sign-in form, not the page.
    const login = await get(`${http.url}/`, { accept: 'text/html' })
    expect([login.status, login.body.includes('name="token"'), login.body.includes('<script')]).toEqual([401, true, false])
  })

  it.skipIf(!addr)('accepts the bearer token, and a ?token= sign-in that swaps the token for a cookie', async () => {
    const { http } = await listen({ host: addr as string, token: TOKEN })
    expect((await get(`${http.url}/status`, { authorization: `Bearer ${TOKEN}` })).status).toBe(200)
    expect((await get(`${http.url}/metrics`, { authorization: `bearer ${TOKEN}` })).status).toBe(200)

    const signIn = await get(`${http.url}/?token=${encodeURIComponent(TOKEN)}`)
    expect(signIn.status).toBe(303)
    expect(signIn.headers.location).toBe('/')
    const cookie = signIn.headers['set-cookie']?.[0] ?? ''
    expect(cookie).toMatch(new RegExp(`^${SESSION_COOKIE}=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=/$`))
    expect(cookie).not.toContain(encodeURIComponent(TOKEN).slice(0, 7))
    const session = cookie.split(';')[0] as string
    expect((await get(`${http.url}/status`, { cookie: `other=1; ${session}` })).status).toBe(200)
    const ev = await events(http.url, { cookie: session })
    expect(ev.status).toBe(200)
    await ev.next(1)
    ev.close()
    // Sign-in on another path returns there; unknown paths go home.
    expect((await get(`${http.url}/status?token=${encodeURIComponent(TOKEN)}`)).headers.location).toBe('/status')
    expect((await get(`${http.url}/x?token=${encodeURIComponent(TOKEN)}`)).headers.location).toBe('/')
  })

  it.skipIf(!addr)('a different token makes a different cookie', async () => {
    const a = await listen({ host: addr as string, token: TOKEN })
    const b = await listen({ host: addr as string, token: `${TOKEN}!` })
    const cookieOf = async (h: HttpStatusServer, t: string): Promise<string> =>
      ((await get(`${h.url}/?token=${encodeURIComponent(t)}`)).headers['set-cookie']?.[0] ?? '').split(';')[0] as string
    const ca = await cookieOf(a.http, TOKEN)
    expect((await get(`${b.http.url}/status`, { cookie: ca })).status).toBe(401)
    expect(ca).not.toBe(await cookieOf(b.http, `${TOKEN}!`))
  })
})
