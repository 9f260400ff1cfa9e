/**
 * The local asset folder of NetworkAssets: where a wire path lives on disk, what its copy hashes
 * to (the persistent hash cache first: size, mtime, ctime and inode; BLAKE3 only for files it
 * cannot vouch for), and where a download goes. Every path goes through core/fs/paths.ts, so a
 * hostile name can neither read nor write outside the folder.
 */
import { lstatSync } from 'node:fs'
import { mkdir, realpath } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { writeError } from '../../errors.js'
import { HashCache, cacheFileFor } from '../fs/hash-cache.js'
import { hashFile } from '../fs/hash.js'
import { configDir } from '../fs/keys.js'
import { assertWirePath, resolveForWrite } from '../fs/paths.js'

/** Checked parent folders remembered at most (then forgotten and checked again). */
const MAX_CHECKED_DIRS = 4096

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
  /**
   * Parent folders already resolved inside the root, with their inode. A folder is trusted again
   * only while it is still a folder with that inode: a folder (or any folder above it) replaced
   * by a symlink to elsewhere resolves to another inode, and is checked from scratch. Saves the
   * realpath walks that were a fifth of a network require's CPU.
   */
  readonly #dirs = new Map<string, number>()

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

  /** The local path of `wire`: checked (paths.ts) unless its parent folder was checked and is unchanged. */
  async #resolve(root: string, wire: string): Promise<string> {
    assertWirePath(wire)
    const target = join(root, ...wire.split('/'))
    const parent = dirname(target)
    const ino = this.#dirs.get(parent)
    if (ino !== undefined) {
      const st = lstatSync(parent, { throwIfNoEntry: false })
      if (st?.isDirectory() && st.ino === ino) return target
      this.#dirs.delete(parent)
    }
    const checked = await resolveForWrite(root, wire)
    const st = lstatSync(parent, { throwIfNoEntry: false })
    if (st?.isDirectory()) {
      if (this.#dirs.size >= MAX_CHECKED_DIRS) this.#dirs.clear()
      this.#dirs.set(parent, st.ino)
    }
    return checked
  }

  /** The local copy of `wire`, or null when there is no regular file there. */
  async look(wire: string): Promise<LocalCopy | null> {
    const { root, cache } = await this.#open()
    const localPath = await this.#resolve(root, wire)
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
    const first = await this.#resolve(root, wire)
    if (this.#dirs.has(dirname(first))) return first
    try {
      await mkdir(dirname(first), { recursive: true })
    } catch (err) {
      throw writeError(wire, err)
    }
    // Again, now that the parents exist: a planted symlink must not have redirected them.
    return this.#resolve(root, wire)
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
