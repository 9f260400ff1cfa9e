/**
 * One session's share of the server (issue 12): the requests it has in flight and the bytes they
 * hold (MAX_INFLIGHT_PER_CLIENT, its MemoryAccount), its MANIFEST and SUBSCRIBE requests run in
 * order on the MatchScheduler (MANIFEST_DIGEST too: its listing is built as MANIFEST's pages are),
 * and the frames queued for it (a client that does not read is
 * closed past its memory budget; past the server's, the one queuing the most goes).
 */
import { AssetSyncError } from '../../errors.js'
import { MAX_INFLIGHT_PER_CLIENT } from '../../limits.js'
import type { ManifestDigestMsg, ManifestMsg, SubscribeMsg } from '../../protocol/messages.js'
import { equalHash } from '../fs/hash.js'
import { listingDigest } from './listing-digest.js'
import { ManifestScanner } from './manifest-scan.js'
import { MatchScheduler } from './match-work.js'
import { type MemoryAccount, MemoryBudget, REQUEST_BYTES } from './memory-budget.js'
import type { SessionConnection } from './session-types.js'
import type { AssetSource } from './source.js'

/** What a session is given of the server's budgets. */
export interface SessionGuard {
  scheduler: MatchScheduler
  account: MemoryAccount
  /** Past the server's memory total, closes the connections queuing the most (MemoryBudget.shed). */
  shed: () => void
}

/** A session's own scheduler and budget, when it is not part of a server (tests). */
export function ownGuard(): SessionGuard {
  return { scheduler: new MatchScheduler(), account: new MemoryBudget().account(), shed: () => {} }
}

/** Bytes a request's patterns hold (UTF-16 strings and their slots). */
function patternBytes(patterns: readonly string[]): number {
  let n = 0
  for (const p of patterns) n += 2 * p.length + 64
  return n
}

export class SessionBudget {
  readonly account: MemoryAccount
  /** MANIFEST requests: compiled, charged, scanned in slices. */
  readonly manifests: ManifestScanner
  readonly #conn: SessionConnection
  readonly #source: AssetSource
  readonly #scheduler: MatchScheduler
  readonly #shed: () => void
  /** The session's other requests in flight (opening or transferring). */
  readonly #others: () => number
  /** Bytes its requests hold beyond REQUEST_BYTES each (a BATCH's items). */
  readonly #held: () => number
  #patternRequests = 0
  #patternBytes = 0
  #subscribes: Promise<void> = Promise.resolve()
  #queueWatched = false

  constructor(conn: SessionConnection, source: AssetSource, guard: SessionGuard, others: () => number, held: () => number = () => 0) {
    this.#conn = conn
    this.#source = source
    this.account = guard.account
    this.#scheduler = guard.scheduler
    this.#shed = guard.shed
    this.#others = others
    this.#held = held
    this.manifests = new ManifestScanner(conn, source, guard.scheduler, guard.account)
  }

  /** Requests in flight: the session's others, and MANIFEST / SUBSCRIBE queued or running. */
  get inflight(): number { return this.#others() + this.#patternRequests }

  /**
   * Counts a new request holding `extra` bytes (beyond REQUEST_BYTES) in, within MAX_INFLIGHT_PER_CLIENT and the memory
   * budget: null, or the ERR_LIMIT to answer it with. The caller calls `settle()` when it ends.
   */
  admit(extra = 0): AssetSyncError | null {
    if (this.inflight >= MAX_INFLIGHT_PER_CLIENT) return new AssetSyncError('ERR_LIMIT', `more than ${MAX_INFLIGHT_PER_CLIENT} requests in flight`)
    const bytes = this.#bytes() + REQUEST_BYTES + extra
    if (!this.account.fits('inflight', bytes)) this.manifests.dropCache()
    try {
      this.account.charge('inflight', bytes, 'another request')
    } catch (err) {
      return err as AssetSyncError
    }
    return null
  }

  /** Recounts what in-flight requests hold (after one ended). */
  settle(): void { this.account.set('inflight', this.#bytes()) }

  #bytes(): number { return this.#others() * REQUEST_BYTES + this.#held() + this.#patternBytes }

  /** Runs a MANIFEST: its reply, sent once built (null when the connection closed meanwhile). */
  manifest(msg: ManifestMsg, fail: (err: unknown) => void): void {
    this.#pattern(msg.patterns, fail, async () => {
      const reply = await this.manifests.answer(msg)
      if (reply && !this.#conn.closed) {
        this.#conn.send(reply)
        this.checkQueue()
      }
    })
  }

  /**
   * Runs a MANIFEST_DIGEST (feature `manifest-digest`): the listing of its patterns, built page by
   * page exactly as MANIFEST builds it (the same compiled set, slices and cost rule), digested
   * (listing-digest.ts) and compared with the client's.
   */
  manifestDigest(msg: ManifestDigestMsg, fail: (err: unknown) => void): void {
    this.#pattern(msg.patterns, fail, async () => {
      const digest = await listingDigest(this.#source, msg.patterns.join('\0'),
        (after) => this.manifests.answer({ type: 'manifest', id: msg.id, patterns: msg.patterns, after }))
      if (digest && !this.#conn.closed) {
        this.#conn.send({ type: 'manifest-digest-reply', id: msg.id, unchanged: equalHash(digest, msg.digest), digest })
        this.checkQueue()
      }
    })
  }

  /**
   * Runs a SUBSCRIBE through `handle` after the connection's earlier ones, on a turn of the
   * MatchScheduler (compiling the connection's set is matching work).
   */
  subscribe(msg: SubscribeMsg, handle: (msg: SubscribeMsg) => void, fail: (err: unknown) => void): void {
    this.#pattern(msg.patterns, fail, () => {
      const run = this.#subscribes.then(() => this.#scheduler.turn()).then(() => { if (!this.#conn.closed) handle(msg) })
      this.#subscribes = run.catch(() => {})
      return run
    })
  }

  #pattern(patterns: readonly string[], fail: (err: unknown) => void, run: () => Promise<void>): void {
    const bytes = REQUEST_BYTES + patternBytes(patterns)
    const refused = this.admit(bytes - REQUEST_BYTES)
    if (refused) return fail(refused)
    this.#patternRequests++
    this.#patternBytes += bytes
    void run().catch(fail).finally(() => {
      this.#patternRequests--
      this.#patternBytes -= bytes
      this.settle()
    })
  }

  /**
   * Records the frames now queued for this client; past the connection's memory budget (a client
   * that does not read what it is sent) its MANIFEST caches go first, then the connection.
   */
  checkQueue(): void {
    if (this.#conn.closed) return
    const queued = this.#conn.queuedBytes ?? 0
    this.account.set('queue', queued)
    if (queued > 0 && !this.#queueWatched) {
      // Recount once it has drained (below the stream's high-water mark there is no 'drain': the
      // bytes go within a turn), so an idle connection's past burst stays no one's charge.
      this.#queueWatched = true
      const recount = (): void => {
        this.#queueWatched = false
        if (!this.#conn.closed) this.account.set('queue', this.#conn.queuedBytes ?? 0)
      }
      this.#conn.drained().then(() => setImmediate(recount), () => { this.#queueWatched = false })
    }
    if (this.account.over) {
      this.manifests.dropCache()
      if (this.account.over) this.#conn.fail(this.notReading("the connection's memory budget"))
    }
    this.#shed()
  }

  /** The error a connection is closed with when the frames queued for it are too many. */
  notReading(budget: string): AssetSyncError {
    return new AssetSyncError('ERR_LIMIT', `${this.#conn.remote} is not reading: ${this.account.of('queue')} bytes of frames queued, past ${budget}`)
  }

  /** The connection closed: releases every charge. */
  close(): void {
    this.manifests.dropCache()
    this.account.close()
  }
}
