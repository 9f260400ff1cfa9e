/**
 * The local asset folder of NetworkAssets: where a wire path lives on disk, what its copy hashes
 * to (the persistent hash cache first: size, mtime, ctime and inode; BLAKE3 only for files it
 * cannot vouch for), and where a download goes. Every path goes through core/fs/paths.ts, so a
 * hostile name can neither read nor write outside the folder.
 */
import { lstatSync } from 'node:fs'
import { mkdir, realpath } from 'node:fs/promises'
import { dirname } from 'node:path'
import { writeError } from '../../errors.js'
import { HashCache, cacheFileFor } from '../fs/hash-cache.js'
import { hashFile } from '../fs/hash.js'
import { configDir } from '../fs/keys.js'
import { resolveForWrite } from '../fs/paths.js'

/** A local copy: where it is and what it holds. */
export interface LocalCopy {
  /** Absolute path inside the folder. */
  localPath: string
  hash: Buffer
  size: number
}

export class LocalCopies {
  readonly #dir: string
  readonly #configDir: string
  #ready: Promise<{ root: string; cache: HashCache }> | null = null

  constructor(dir: string, configDirectory?: string) {
    this.#dir = dir
    this.#configDir = configDirectory ?? configDir()
  }

  /** The folder's real path (created if missing) and its hash cache. */
  #open(): Promise<{ root: string; cache: HashCache }> {
    this.#ready ??= (async () => {
      let root: string
      try {
        await mkdir(this.#dir, { recursive: true })
        root = await realpath(this.#dir)
      } catch (err) {
        throw writeError(this.#dir, err)
      }
      return { root, cache: await HashCache.load(cacheFileFor(this.#configDir, 'mirror', root)) }
    })()
    return this.#ready
  }

  async root(): Promise<string> { return (await this.#open()).root }

  /** The local copy of `wire`, or null when there is no regular file there. */
  async look(wire: string): Promise<LocalCopy | null> {
    const { root, cache } = await this.#open()
    const localPath = await resolveForWrite(root, wire)
    let st
    try {
      st = lstatSync(localPath, { throwIfNoEntry: false })
    } catch {
      return null
    }
    if (!st?.isFile()) return null
    let hash = cache.lookup(wire, st)
    if (!hash) {
      try {
        hash = (await hashFile(localPath, st.size)).hash
      } catch {
        return null // removed or unreadable meanwhile: as good as absent
      }
      cache.set(wire, st, hash)
    }
    return { localPath, hash, size: st.size }
  }

  /** Where a download of `wire` goes: its path, with the parent folders created (and checked again after). */
  async target(wire: string): Promise<string> {
    const { root } = await this.#open()
    const first = await resolveForWrite(root, wire)
    try {
      await mkdir(dirname(first), { recursive: true })
    } catch (err) {
      throw writeError(wire, err)
    }
    // Again, now that the parents exist: a planted symlink must not have redirected them.
    return resolveForWrite(root, wire)
  }

  /** A verified file with `hash` was just written at `localPath`: remember its stamp. */
  async record(wire: string, localPath: string, hash: Uint8Array): Promise<void> {
    const { cache } = await this.#open()
    const st = lstatSync(localPath, { throwIfNoEntry: false })
    if (st?.isFile()) cache.set(wire, st, Buffer.from(hash))
  }

  /** Writes the hash cache (if it changed). */
  async save(): Promise<void> {
    if (!this.#ready) return
    const { cache } = await this.#ready.catch(() => ({ cache: null }))
    await cache?.save()
  }
}
