/**
 * `serve --http`: a small node:http listener for people and dashboards. GET /metrics (Prometheus
 * text), /status (StatusJson), / (the live page) and /events (Server-Sent Events: a full status
 * snapshot after each change, throttled).
 *
 * Who may ask: bound to a loopback address (the default, 127.0.0.1) anyone on this machine may,
 * but only with a loopback Host header, so a web page cannot reach it through DNS rebinding.
 * Bound anywhere else every request needs the server's token, as `Authorization: Bearer <token>`
 * or as the session cookie a browser gets once from `/?token=<token>` (HttpOnly, SameSite=Strict;
 * its value is an HMAC of the token, not the token). A non-loopback listener without a token is
 * refused at start. Comparisons are constant-time. See docs/observability.md.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http'
import { isIP } from 'node:net'
import { AssetSyncError } from '../../errors.js'
import { HTTP_HEADERS_TIMEOUT_MS, HTTP_MAX_HEADER_BYTES, HTTP_SSE_KEEPALIVE_MS, HTTP_SSE_MAX_CLIENTS, HTTP_SSE_THROTTLE_MS } from '../../limits.js'
import type { StatusProvider } from './status.js'
import { STATUS_PAGE, loginPage } from './status-page.js'

/** What /metrics serves (Metrics satisfies it). */
export interface MetricsSource {
  readonly contentType: string
  text(): Promise<string>
}

/** How HttpStatusServer.listen listens, and what it serves. */
export interface HttpStatusOptions {
  /** Address to bind; default 127.0.0.1. Anything but loopback requires `token`. */
  host?: string
  /** Port; 0 picks a free one. */
  port: number
  /** The server's access token; required when `host` is not loopback. */
  token: string | null
  provider: StatusProvider
  /** Null: /metrics answers 404. */
  metrics: MetricsSource | null
}

/** The session cookie's name. */
export const SESSION_COOKIE = 'assetsync_session'

/** Parses the --http value: "7421", ":7421", "host:7421" or "[v6]:7421"; the host defaults to 127.0.0.1. */
export function parseHttpAddress(value: string): { host: string; port: number } {
  const m = /^(?:(\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+)?:)?([0-9]{1,5})$/.exec(value.trim())
  const port = Number(m?.[2])
  if (!m || !Number.isInteger(port) || port > 65535) {
    throw new AssetSyncError('ERR_USAGE', `--http must be a port, :port or host:port (e.g. 7421 or 0.0.0.0:7421), got "${value}"`)
  }
  const host = m[1] ? m[1].replace(/^\[(.*)\]$/, '$1') : '127.0.0.1'
  return { host, port }
}

/** True for 127.0.0.0/8, ::1, ::ffff:127.x and "localhost": addresses only this machine reaches. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1')
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h
  return isIP(v4) === 4 && v4.startsWith('127.')
}

/** The Host header's host part (port and brackets removed); null when malformed. */
function hostOf(header: string | undefined): string | null {
  if (!header) return null
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+)(?::[0-9]{1,5})?$/.exec(header)
  return m ? (m[1] as string) : null
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

/** Constant-time string equality (hashing first makes the lengths equal). */
function same(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b))
}

const COMMON_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'x-frame-options': 'DENY',
} as const

interface LivePage {
  res: ServerResponse
  /** Its last write did not drain: skip pushes until it does, then send the latest. */
  blocked: boolean
}

/**
 * The `serve --http` listener: /metrics, /status, the live page and its /events stream, with the
 * access rules above. Give it a server's `status` and `metrics`:
 * `HttpStatusServer.listen({ port: 0, token: null, provider: server.status, metrics: server.metrics })`.
 */
export class HttpStatusServer {
  readonly #server: Server
  readonly #opts: HttpStatusOptions
  readonly #session: string | null
  readonly #pages = new Set<LivePage>()
  #unsubscribe: (() => void) | null = null
  #timer: NodeJS.Timeout | null = null
  #keepalive: NodeJS.Timeout | null = null
  #lastPush = 0
  /** True when every request must carry the token (bound off loopback). */
  readonly requiresToken: boolean

  private constructor(server: Server, opts: HttpStatusOptions, requiresToken: boolean) {
    this.#server = server
    this.#opts = opts
    this.requiresToken = requiresToken
    // The cookie carries a MAC of the token, so a leaked cookie does not leak the token itself.
    this.#session = opts.token ? createHmac('sha256', opts.token).update('assetsync http session v1').digest('base64url') : null
  }

  /** Starts listening; resolves once requests are served. */
  static async listen(opts: HttpStatusOptions): Promise<HttpStatusServer> {
    const host = opts.host ?? '127.0.0.1'
    const requiresToken = !isLoopback(host)
    if (requiresToken && !opts.token) {
      throw new AssetSyncError('ERR_USAGE', `--http on ${host}, which is not a loopback address, needs the server to have a token (--token or ASSETSYNC_TOKEN)`)
    }
    const server = createServer({ headersTimeout: HTTP_HEADERS_TIMEOUT_MS, requestTimeout: HTTP_HEADERS_TIMEOUT_MS, maxHeaderSize: HTTP_MAX_HEADER_BYTES })
    const self = new HttpStatusServer(server, { ...opts, host }, requiresToken)
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      self.#handle(req, res).catch(() => {
        if (!res.headersSent) self.#send(res, 500, 'text/plain; charset=utf-8', 'internal error\n')
        else res.destroy()
      })
    })
    // A client that sends garbage is answered 400 by Node; nothing else to do.
    server.on('clientError', (_err, socket) => { socket.destroy() })
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(new AssetSyncError('ERR_USAGE', `--http cannot listen on ${host}:${opts.port}: ${err.code ?? err.message}`, { cause: err }))
      })
      server.listen(opts.port, host, () => resolve())
    })
    return self
  }

  /** The bound address and port. */
  address(): { host: string; port: number } {
    const a = this.#server.address()
    if (a === null || typeof a === 'string') throw new AssetSyncError('ERR_INTERNAL', 'the HTTP listener is not bound')
    return { host: a.address, port: a.port }
  }

  /** "http://host:port", IPv6 hosts in brackets: the value of the listening event's `http` field. */
  get url(): string {
    const { host, port } = this.address()
    return `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  }

  /** Ends the live pages and the listener. */
  async close(): Promise<void> {
    this.#unsubscribe?.()
    this.#unsubscribe = null
    if (this.#timer) clearTimeout(this.#timer)
    if (this.#keepalive) clearInterval(this.#keepalive)
    for (const p of this.#pages) p.res.end()
    this.#pages.clear()
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve())
      this.#server.closeAllConnections()
    })
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x')
    const path = url.pathname
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD')
      return this.#send(res, 405, 'text/plain; charset=utf-8', 'only GET and HEAD\n')
    }
    if (!this.requiresToken && !isLoopback(hostOf(req.headers.host) ?? '')) {
      // DNS rebinding: a page on evil.example resolving to 127.0.0.1 arrives with its own Host.
      return this.#send(res, 421, 'text/plain; charset=utf-8', 'this listener answers loopback host names only\n')
    }
    if (this.requiresToken) {
      const offered = url.searchParams.get('token')
      if (offered !== null) {
        if (!same(offered, this.#opts.token as string)) return this.#denied(req, res, 'wrong token')
        // Swap the token in the address bar for the cookie, and drop it from the history entry.
        res.setHeader('set-cookie', `${SESSION_COOKIE}=${this.#session}; HttpOnly; SameSite=Strict; Path=/`)
        res.setHeader('location', KNOWN_PATHS.has(path) ? path : '/')
        return this.#send(res, 303, 'text/plain; charset=utf-8', 'signed in\n')
      }
      if (!this.#authorised(req)) return this.#denied(req, res, null)
    }
    switch (path) {
      case '/': return this.#send(res, 200, 'text/html; charset=utf-8', STATUS_PAGE.html, { 'content-security-policy': STATUS_PAGE.csp })
      case '/status': return this.#send(res, 200, 'application/json; charset=utf-8', `${JSON.stringify(this.#opts.provider.snapshot(), null, 2)}\n`)
      case '/metrics': {
        const m = this.#opts.metrics
        if (!m) return this.#send(res, 404, 'text/plain; charset=utf-8', 'no metrics on this server\n')
        return this.#send(res, 200, m.contentType, await m.text())
      }
      case '/events': return this.#openEvents(req, res)
      default: return this.#send(res, 404, 'text/plain; charset=utf-8', 'not found\n')
    }
  }

  #authorised(req: IncomingMessage): boolean {
    const auth = req.headers.authorization
    if (auth !== undefined) {
      // Everything after "Bearer ": an assetsync token may hold spaces, unlike RFC 6750's b64token.
      const m = /^Bearer (.+)$/i.exec(auth)
      return !!m && same(m[1] as string, this.#opts.token as string)
    }
    for (const part of (req.headers.cookie ?? '').split(';')) {
      const eq = part.indexOf('=')
      if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE && same(part.slice(eq + 1).trim(), this.#session as string)) return true
    }
    return false
  }

  #denied(req: IncomingMessage, res: ServerResponse, why: string | null): void {
    res.setHeader('www-authenticate', 'Bearer realm="assetsync"')
    if ((req.headers.accept ?? '').includes('text/html')) {
      const page = loginPage(why)
      return this.#send(res, 401, 'text/html; charset=utf-8', page.html, { 'content-security-policy': page.csp })
    }
    return this.#send(res, 401, 'text/plain; charset=utf-8', `${why ?? 'the token is required'}: send "Authorization: Bearer <token>", or open /?token=<token> once in a browser\n`)
  }

  #send(res: ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
    res.writeHead(status, { ...COMMON_HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(body), ...extra })
    res.end(res.req.method === 'HEAD' ? undefined : body)
  }

  #openEvents(req: IncomingMessage, res: ServerResponse): void {
    if (this.#pages.size >= HTTP_SSE_MAX_CLIENTS) {
      res.setHeader('retry-after', '10')
      return this.#send(res, 503, 'text/plain; charset=utf-8', `at most ${HTTP_SSE_MAX_CLIENTS} live pages at once\n`)
    }
    res.writeHead(200, { ...COMMON_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive', 'x-accel-buffering': 'no' })
    if (req.method === 'HEAD') return void res.end()
    const page: LivePage = { res, blocked: false }
    this.#pages.add(page)
    req.socket.setNoDelay(true)
    res.on('close', () => { this.#pages.delete(page) })
    res.on('drain', () => {
      if (!page.blocked) return
      page.blocked = false
      this.#write(page, this.#event())
    })
    this.#write(page, `retry: 2000\n\n${this.#event()}`)
    if (!this.#unsubscribe) this.#unsubscribe = this.#opts.provider.onChange(() => this.#schedule())
    if (!this.#keepalive) {
      // A fresh snapshot doubles as the keep-alive, and moves the byte counts on the page.
      this.#keepalive = setInterval(() => this.#push(), HTTP_SSE_KEEPALIVE_MS).unref()
    }
  }

  /** The next snapshot goes out at once, or when HTTP_SSE_THROTTLE_MS has passed since the last. */
  #schedule(): void {
    if (this.#timer || this.#pages.size === 0) return
    const wait = Math.max(0, this.#lastPush + HTTP_SSE_THROTTLE_MS - Date.now())
    // Even with no wait, a tick later: the changes of one event-loop turn go out as one push.
    this.#timer = setTimeout(() => { this.#timer = null; this.#push() }, wait)
    this.#timer.unref()
  }

  #push(): void {
    if (this.#pages.size === 0) return
    this.#lastPush = Date.now()
    const ev = this.#event()
    for (const p of this.#pages) if (!p.blocked) this.#write(p, ev)
  }

  #event(): string {
    // JSON.stringify never emits a raw newline, so the whole snapshot is one SSE data line.
    return `event: status\ndata: ${JSON.stringify(this.#opts.provider.snapshot())}\n\n`
  }

  #write(p: LivePage, text: string): void {
    if (!p.res.write(text)) p.blocked = true
  }
}

const KNOWN_PATHS = new Set(['/', '/status', '/metrics', '/events'])
