/**
 * A one-shot pull that survives a lost connection: if the connection drops mid-way (a reset
 * udx stream, a Wi-Fi blip), it reconnects and resumes — files already verified are skipped by
 * hash — up to PULL_ATTEMPTS connections. Each file is reported once.
 */
import { type AssetSyncError, needsReconnect } from '../../errors.js'
import { PULL_ATTEMPTS } from '../../limits.js'
import type { ManifestEntry } from '../../protocol/messages.js'
import type { AssetClient } from './client.js'
import type { FileEvent, Mirror, SyncOptions, SyncSummary } from './mirror.js'
import type { Listing } from './saved-listing.js'

/**
 * The server's listing of the mirror's patterns: the saved one when the server says its digest
 * still holds (feature manifest-digest: one small frame each way), else all manifest pages.
 */
async function listingOf(client: AssetClient, mirror: Mirror, saved: Listing | null): Promise<{ entries: readonly ManifestEntry[]; fresh: boolean }> {
  if (saved) {
    const answer = await client.manifestDigest(mirror.patterns, saved.digest)
    if (answer?.unchanged) return { entries: saved.entries, fresh: false }
  }
  return { entries: await client.manifest(mirror.patterns), fresh: true }
}

export interface PullOptions extends SyncOptions {
  attempts?: number
  /**
   * Stops the pull (SIGINT, SIGTERM): the connection closes, transfers in flight end and drop
   * their temp files, and the pull rejects with the signal's reason (no reconnect).
   */
  signal?: AbortSignal
  /** Called before each reconnect after a lost connection. */
  onRetry?: (err: AssetSyncError, attempt: number) => void
}

export async function pullResuming(connect: () => Promise<AssetClient>, mirror: Mirror, opts: PullOptions = {}): Promise<SyncSummary> {
  const t0 = performance.now()
  const attempts = opts.attempts ?? PULL_ATTEMPTS
  const seen = new Map<string, FileEvent>()
  let bytesReceived = 0
  let bytesReused = 0
  const { signal } = opts
  // Read, and the local copies looked at, while the connection is made: the local side of a no-op
  // overlaps the handshake and the digest's round trip.
  const savedListing = opts.dryRun ? Promise.resolve(null) : mirror.savedListing().catch(() => null)
  const ahead = savedListing.then((l) => (l ? mirror.lookAhead(l.entries) : null)).catch(() => null)
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted()
    // The first connect failing is final (wrong address, server down); later ones too.
    const client = await connect()
    const stop = (): void => client.close()
    signal?.addEventListener('abort', stop, { once: true })
    try {
      signal?.throwIfAborted()
      const listing = await listingOf(client, mirror, await savedListing)
      await mirror.sync(client, listing.entries, {
        ...opts,
        saveListing: listing.fresh,
        ahead: attempt === 1 ? await ahead : null,
        onFile: (ev) => {
          bytesReceived += ev.bytes
          bytesReused += ev.reused
          const before = seen.get(ev.path)
          // A file downloaded before the drop shows up as up to date on the resume: keep the first.
          if (before && before.action === 'downloaded' && ev.action === 'up-to-date') return
          seen.set(ev.path, ev)
          if (!before) opts.onFile?.(ev)
        },
      })
      break
    } catch (err) {
      signal?.throwIfAborted() // what failed was the connection we closed: report the stop
      // Only a lost connection (or a request timing out) is worth a new one: see ERROR_RECOVERY.
      if (!needsReconnect(err) || attempt >= attempts) throw err
      opts.onRetry?.(err as AssetSyncError, attempt)
    } finally {
      signal?.removeEventListener('abort', stop)
      client.close()
    }
  }
  const summary: SyncSummary = { files: 0, downloaded: 0, upToDate: 0, modeChanged: 0, deleted: 0, vanished: 0, bytesReceived, bytesReused, ms: 0 }
  for (const ev of seen.values()) {
    if (ev.action === 'deleted') summary.deleted++
    else if (ev.action === 'vanished') summary.vanished++
    else {
      summary.files++
      if (ev.action === 'downloaded') summary.downloaded++
      else summary.upToDate++
      if (ev.action === 'mode') summary.modeChanged++
    }
  }
  summary.ms = Math.round(performance.now() - t0)
  return summary
}
