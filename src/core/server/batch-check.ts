/**
 * The server's check of a batch before fan-out. A feed may carry batches from another process
 * (NATS): an entry that breaks the wire rules (unsafe path, wrong hash length, a number the codec
 * cannot carry) must be dropped with a clear error, not end in a throw inside `encode` halfway
 * through a fan-out, nor tell clients to fetch an unsafe path.
 */
import { AssetSyncError } from '../../errors.js'
import { HASH_BYTES, type UpdateEntry } from '../../protocol/messages.js'
import { checkWirePath, printable } from '../fs/paths.js'

const isCount = (n: unknown): boolean => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0

/** Why `e` cannot be pushed, or null if it can. */
export function entryProblem(e: UpdateEntry): string | null {
  const path = checkWirePath(e.path)
  if (path !== null) return path
  if (e.kind === 'delete') return null
  if (e.kind !== 'change' && e.kind !== 'rename') return `unknown kind "${String((e as { kind: unknown }).kind)}"`
  if (e.kind === 'rename') {
    const from = checkWirePath(e.from)
    if (from !== null) return `rename source: ${from}`
  }
  if (!(e.hash instanceof Uint8Array) || e.hash.length !== HASH_BYTES) return `hash is not ${HASH_BYTES} bytes`
  if (!isCount(e.size) || !isCount(e.mtime)) return 'size or mtime is not a non-negative integer'
  if (!isCount(e.mode) || e.mode > 0xffff_ffff) return 'mode is not a u32'
  return null
}

/** The entries of a batch that can be pushed, and one ERR_PROTOCOL error per dropped entry. */
export function checkBatch(entries: readonly UpdateEntry[]): { entries: UpdateEntry[]; problems: AssetSyncError[] } {
  const ok: UpdateEntry[] = []
  const problems: AssetSyncError[] = []
  for (const e of entries) {
    const why = entryProblem(e)
    if (why === null) ok.push(e)
    else problems.push(new AssetSyncError('ERR_PROTOCOL', `dropped change of "${printable(String(e.path))}" from the feed: ${why}`))
  }
  return { entries: ok, problems }
}
