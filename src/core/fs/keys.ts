/**
 * Identity and trust on first use. The server's Noise keypair lives in the user's config
 * directory (never inside the served folder); clients pin each server's key per host:port in a
 * known-servers file there, or take an explicit `--key`. A mismatch is refused (exit 4).
 */
import { mkdir, readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import SecretStream, { type KeyPair } from '@hyperswarm/secret-stream'
import { AssetSyncError } from '../../errors.js'
import { writeFileAtomic } from './atomic-write.js'

/** `$ASSETSYNC_CONFIG_DIR`, else `$XDG_CONFIG_HOME/assetsync`, else `~/.config/assetsync` (`%APPDATA%` on Windows). */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.ASSETSYNC_CONFIG_DIR) return env.ASSETSYNC_CONFIG_DIR
  if (process.platform === 'win32' && env.APPDATA) return join(env.APPDATA, 'assetsync')
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'assetsync')
}

const KEY_HEX = /^[0-9a-f]{64}$/

/** Parses a `--key` value: 64 hex characters. */
export function parseKeyHex(hex: string): Buffer {
  const h = hex.trim().toLowerCase()
  if (!KEY_HEX.test(h)) throw new AssetSyncError('ERR_USAGE', `--key must be 64 hex characters (the server's public key), got "${hex}"`)
  return Buffer.from(h, 'hex')
}

/** Loads the server identity from `dir/identity.json`, creating it (0600) on first use. */
export async function loadIdentity(dir: string = configDir()): Promise<KeyPair> {
  const file = join(dir, 'identity.json')
  try {
    const j = JSON.parse(await readFile(file, 'utf8')) as { publicKey?: string; secretKey?: string }
    if (typeof j.publicKey === 'string' && typeof j.secretKey === 'string' && KEY_HEX.test(j.publicKey) && /^[0-9a-f]{128}$/.test(j.secretKey)) {
      return { publicKey: Buffer.from(j.publicKey, 'hex'), secretKey: Buffer.from(j.secretKey, 'hex') }
    }
    throw new AssetSyncError('ERR_INTERNAL', `${file} is not a valid identity file; move it away to create a new one`)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (err instanceof AssetSyncError) throw err
      throw new AssetSyncError('ERR_INTERNAL', `cannot read ${file}: ${(err as Error).message}`, { cause: err })
    }
  }
  const kp = SecretStream.keyPair()
  await mkdir(dir, { recursive: true, mode: 0o700 })
  await writeFileAtomic(file, JSON.stringify({ publicKey: kp.publicKey.toString('hex'), secretKey: kp.secretKey.toString('hex') }) + '\n')
  return kp
}

/** The known-servers file: one "host:port hexkey" per line. */
export class KnownServers {
  readonly file: string
  constructor(dir: string = configDir()) {
    this.file = join(dir, 'known-servers')
  }

  async #read(): Promise<Map<string, string>> {
    const map = new Map<string, string>()
    let text = ''
    try {
      text = await readFile(this.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    for (const line of text.split('\n')) {
      const [addr, key] = line.trim().split(/\s+/)
      if (addr && key && KEY_HEX.test(key)) map.set(addr, key)
    }
    return map
  }

  async get(addr: string): Promise<string | undefined> {
    return (await this.#read()).get(addr)
  }

  async pin(addr: string, keyHex: string): Promise<void> {
    const map = await this.#read()
    map.set(addr, keyHex)
    await mkdir(join(this.file, '..'), { recursive: true, mode: 0o700 })
    await writeFileAtomic(this.file, [...map].map(([a, k]) => `${a} ${k}`).join('\n') + '\n')
  }

  /**
   * Returns a checker for `dial`'s verifyServerKey plus a `commit` to call once the connection
   * is up: an explicit key must match; else a pinned key must match; else the key is pinned.
   */
  async verifier(addr: string, explicit: Buffer | null): Promise<{ verify: (key: Buffer) => void; commit: () => Promise<void> }> {
    const pinned = explicit ? null : await this.get(addr)
    let seen: string | null = null
    const verify = (key: Buffer): void => {
      const got = key.toString('hex')
      if (explicit && !explicit.equals(key)) {
        throw new AssetSyncError('ERR_KEY_MISMATCH', `server ${addr} presented key ${got}, not the --key given`)
      }
      if (pinned && pinned !== got) {
        throw new AssetSyncError('ERR_KEY_MISMATCH',
          `server ${addr} presented key ${got}, but ${pinned} is pinned in ${this.file}; if the server was re-keyed, delete that line`)
      }
      seen = got
    }
    const commit = async (): Promise<void> => {
      if (!explicit && !pinned && seen) await this.pin(addr, seen)
    }
    return { verify, commit }
  }
}
