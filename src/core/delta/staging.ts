/**
 * Resume staging: the written part of an interrupted large download is kept beside its target as
 * `.assetsync-stage-<id>.tmp` (a temp name: ignored by walks and watchers, never served), so the
 * next attempt fetches only the rest.
 *
 * Nothing about a staged file is trusted. It holds no metadata: on the next attempt it is chunked
 * afresh (`stagedSource`) and offered to the planner as one more local source, so each chunk of
 * it is used only if its BLAKE3 matches a chunk of the new target's list, and verified again by
 * the assembler. The target may even have changed in between: whatever chunks still match are
 * reused. Chunking is deterministic from offset 0, so every chunk of the prefix but its cut-off
 * last one is found again.
 *
 * Bounded and cleaned: only downloads of at least DELTA_STAGE_MIN_BYTES are staged; one staged
 * file per target (the id is BLAKE3 of the wire path); `sweepStaging` keeps at most
 * DELTA_STAGE_MAX_FILES files and DELTA_STAGE_MAX_BYTES bytes per mirror folder, none older than
 * DELTA_STAGE_MAX_AGE_MS; the integration removes a target's staged file once the target is
 * installed (`discardStaged`). Phase 2 must make the mirror's temp cleaner spare staged names
 * (`isStagingName`) and run `sweepStaging` in its place.
 */
import { lstat, readdir, rename, truncate, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { DELTA_STAGE_MAX_AGE_MS, DELTA_STAGE_MAX_BYTES, DELTA_STAGE_MAX_FILES, DELTA_STAGE_MIN_BYTES } from '../../limits.js'
import { hashBytes } from '../fs/hash.js'
import { TEMP_PREFIX, TEMP_SUFFIX } from '../fs/ignore.js'
import { chunkFile } from './chunk-list.js'
import type { ChunkSource } from './plan.js'

/** Staged names: a temp name (`.assetsync-*.tmp`) with this prefix. */
export const STAGE_PREFIX = `${TEMP_PREFIX}stage-`
const STAGE_NAME = new RegExp(`^${STAGE_PREFIX.replace(/[.]/g, '\\.')}[0-9a-f]{16}(?:-p)?${TEMP_SUFFIX.replace('.', '\\.')}$`)

/**
 * The staged file of `wirePath`, in the folder of its final path. A download in progress writes
 * to it (so even a killed process leaves its bytes there); `previous` names the slot an earlier
 * attempt's staged file moves to while the next attempt reads from it (`-p`).
 */
export function stagingPathFor(finalPath: string, wirePath: string, previous = false): string {
  const id = hashBytes(Buffer.from(wirePath, 'utf8')).toString('hex', 0, 8)
  return join(dirname(finalPath), `${STAGE_PREFIX}${id}${previous ? '-p' : ''}${TEMP_SUFFIX}`)
}

/** True for a staged file's name (also a temp name: see `isTempName`). */
export function isStagingName(name: string): boolean {
  return STAGE_NAME.test(name)
}

/**
 * Keeps the first `keepBytes` of an interrupted download's temp file (closed by the caller) as
 * the target's staged file, replacing an older one. A download shorter than
 * DELTA_STAGE_MIN_BYTES is not worth it: its temp file is removed. Returns whether it was staged;
 * failures only lose the staging (the temp file is then removed too).
 */
export async function stashPartial(tempPath: string, keepBytes: number, stagingPath: string): Promise<boolean> {
  if (!isStagingName(basename(stagingPath)) || dirname(stagingPath) !== dirname(tempPath)) {
    throw new Error(`not a staging path beside ${tempPath}: ${stagingPath}`)
  }
  if (keepBytes >= DELTA_STAGE_MIN_BYTES) {
    try {
      const st = await lstat(tempPath)
      if (st.isFile() && st.size >= keepBytes) {
        await truncate(tempPath, keepBytes)
        await rename(tempPath, stagingPath)
        return true
      }
    } catch { /* fall through: drop it */ }
  }
  await unlink(tempPath).catch(() => {})
  return false
}

/**
 * The staged prefix of a target as a chunk source (chunked now, in one read pass), or null if
 * there is none, it is not a regular file, or it is too old (then it is removed).
 */
export async function stagedSource(stagingPath: string, now = Date.now()): Promise<ChunkSource | null> {
  let st
  try {
    st = await lstat(stagingPath)
  } catch {
    return null
  }
  if (!st.isFile()) return null
  if (now - st.mtimeMs > DELTA_STAGE_MAX_AGE_MS || st.size === 0) {
    await unlink(stagingPath).catch(() => {})
    return null
  }
  try {
    return { path: stagingPath, list: await chunkFile(stagingPath) }
  } catch {
    return null
  }
}

/** Removes a target's staged file (after the target is installed). */
export async function discardStaged(stagingPath: string): Promise<void> {
  if (isStagingName(basename(stagingPath))) await unlink(stagingPath).catch(() => {})
}

export interface SweepResult { kept: number; keptBytes: number; removed: number }

/**
 * Applies the caps to every staged file under `root` (real folders only, symlinks not followed):
 * older than DELTA_STAGE_MAX_AGE_MS goes, then the oldest beyond DELTA_STAGE_MAX_FILES files or
 * DELTA_STAGE_MAX_BYTES bytes.
 */
export async function sweepStaging(root: string, now = Date.now()): Promise<SweepResult> {
  const paths: string[] = []
  for (const stack = [root]; stack.length > 0;) {
    const dir = stack.pop()!
    let entries
    try {
      entries = await readdir(dir, { withFileTypes: true })
    } catch {
      continue
    }
    for (const d of entries) {
      const path = join(dir, d.name)
      if (d.isDirectory()) stack.push(path)
      else if (d.isFile() && isStagingName(d.name)) paths.push(path)
    }
  }
  return capStaging(paths, now)
}

/**
 * The caps of `sweepStaging` applied to staged files already found (a walk that looks for temp
 * files anyway: the mirror's `cleanTemp`).
 */
export async function capStaging(paths: readonly string[], now = Date.now()): Promise<SweepResult> {
  const found: { path: string; size: number; mtimeMs: number }[] = []
  const result: SweepResult = { kept: 0, keptBytes: 0, removed: 0 }
  const remove = async (path: string): Promise<void> => {
    await unlink(path).catch(() => {})
    result.removed++
  }
  for (const path of paths) {
    if (!isStagingName(basename(path))) continue
    const st = await lstat(path).catch(() => null)
    if (!st?.isFile()) continue
    if (now - st.mtimeMs > DELTA_STAGE_MAX_AGE_MS) await remove(path)
    else found.push({ path, size: st.size, mtimeMs: st.mtimeMs })
  }
  found.sort((a, b) => b.mtimeMs - a.mtimeMs) // newest first
  for (const f of found) {
    if (result.kept < DELTA_STAGE_MAX_FILES && result.keptBytes + f.size <= DELTA_STAGE_MAX_BYTES) {
      result.kept++
      result.keptBytes += f.size
    } else {
      await remove(f.path)
    }
  }
  return result
}
