/**
 * A mirror's small files in batches (feature `batch-request`, issue 15): instead of one REQUEST
 * round trip per file, CLIENT_BATCH_FILES files per BATCH, CLIENT_BATCHES_IN_FLIGHT batches open,
 * so the server streams them back to back while the client makes the next batch's folders ready.
 * Each answered file is written whole and synchronously (writeWholeSync: a few syscalls, no
 * thread-pool round trip) as its frame arrives. Files too large for a batch, and those the server
 * answers `alone`, are left for the usual per-file download.
 */
import { AssetSyncError } from '../../errors.js'
import { BATCH_FILE_BYTES, BATCH_MAX_FILES, CLIENT_BATCHES_IN_FLIGHT, CLIENT_BATCH_FILES, MAX_FRAME_BYTES, MAX_PATH_BYTES } from '../../limits.js'
import type { BatchItem, FileMeta } from '../../protocol/messages.js'
import { mapLimitSettled } from '../fs/pool.js'
import { printable } from '../fs/paths.js'
import type { AssetClient } from './client.js'

/** One file to fetch: its wire path, its size by the manifest, the local copy's hash if any. */
export interface FetchJob { path: string; size: number; have: Buffer | null }

/** How one batched file ended. */
export type BatchOutcome = { action: 'downloaded'; bytes: number } | { action: 'up-to-date' | 'vanished'; bytes: 0 }

/** Where batched files go (the mirror). */
export interface BatchTarget<P> {
  /**
   * Makes ready for `wire` (its folders made and checked, its temp file created) before its batch
   * is sent: this waits on the disk, and overlaps the batch before it on the wire.
   */
  prepare(wire: string): Promise<P>
  /**
   * Writes a verified file whole into what `prepare` made: the bytes synchronously (it runs inside
   * the frame's delivery, and `data` is not kept); what is left (bookkeeping) may settle later.
   */
  write(wire: string, prepared: P, meta: FileMeta, data: Uint8Array): void | Promise<void>
  /** Drops what `prepare` made for a file that will not be written here (synchronous, never throws). */
  drop(prepared: P): void
}

/** Prepares at once per batch (thread-pool work: creates wait on the disk, several overlap). */
const PREPARE_PARALLEL = 8

/** Whether `job` may travel in a batch: small by the manifest (the server answers `alone` if it grew). */
export const batchable = (job: FetchJob): boolean => job.size <= BATCH_FILE_BYTES

/** Items per BATCH: CLIENT_BATCH_FILES, fewer when long paths would pass the frame cap. */
function groups(jobs: FetchJob[]): FetchJob[][] {
  const per = Math.min(CLIENT_BATCH_FILES, BATCH_MAX_FILES)
  // Worst case per item: str16 path, flag, hash. Keeps every BATCH frame under MAX_FRAME_BYTES.
  const itemMax = 2 + MAX_PATH_BYTES + 1 + 32
  const byFrame = Math.max(1, Math.floor((MAX_FRAME_BYTES - 16) / itemMax))
  const n = Math.min(per, byFrame)
  const out: FetchJob[][] = []
  for (let i = 0; i < jobs.length; i += n) out.push(jobs.slice(i, i + n))
  return out
}

/**
 * Fetches `jobs` (each `batchable`) in batches over `client` (which agreed to `batch-request`),
 * calling `done` for each file that ended here. Returns the jobs left for a per-file download
 * (answered `alone`: grown past BATCH_FILE_BYTES, changing, or failed their hash). A path the
 * server refuses is ERR_PATH_REFUSED, as for a download.
 */
export async function fetchInBatches<P>(
  client: AssetClient, jobs: FetchJob[], target: BatchTarget<P>, done: (path: string, outcome: BatchOutcome) => void,
): Promise<FetchJob[]> {
  const alone: FetchJob[] = []
  // Settled, not just rejected: a failed batch must not leave the other still making temp files
  // after the caller's cleanup (a signal removes this process's temp files once the pull ends).
  await mapLimitSettled(groups(jobs), CLIENT_BATCHES_IN_FLIGHT, async (group) => {
    const prepared: (P | undefined)[] = new Array(group.length)
    const writing: Promise<void>[] = []
    try {
      await mapLimitSettled(group, PREPARE_PARALLEL, async (j, i) => { prepared[i] = await target.prepare(j.path) })
      const items: BatchItem[] = group.map((j) => ({ path: j.path, haveHash: j.have }))
      await client.batch(items, (i, r) => {
        const job = group[i] as FetchJob
        const p = prepared[i] as P
        prepared[i] = undefined // written or dropped here, whatever happens
        if (r.status !== 'file') target.drop(p)
        switch (r.status) {
          case 'file': {
            const bytes = r.data.byteLength
            const w = Promise.resolve(target.write(job.path, p, r.meta, r.data)).then(() => done(job.path, { action: 'downloaded', bytes }))
            w.catch(() => {}) // handled: awaited below, after the batch
            writing.push(w)
            return
          }
          case 'up-to-date': done(job.path, { action: 'up-to-date', bytes: 0 }); return
          case 'not-found': done(job.path, { action: 'vanished', bytes: 0 }); return
          case 'alone': alone.push(job); return
          case 'refused': throw new AssetSyncError('ERR_PATH_REFUSED', `${client.server} refused ${printable(job.path)}: ${r.reason}`)
        }
      })
    } finally {
      for (const p of prepared) if (p !== undefined) target.drop(p)
      // Every write settles before the batch is done (or its failure is the batch's).
      await Promise.allSettled(writing)
    }
    for (const w of writing) await w
  })
  return alone
}
