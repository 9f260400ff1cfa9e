/**
 * Real folders for tests: write a tree from a spec, snapshot it, compare two trees, list files,
 * find leftover temp files, and the standard asset tree the mirror tests serve.
 */
import { createHash, randomBytes } from 'node:crypto'
import { chmod, lstat, mkdir, open, readdir, readlink, stat, symlink, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'

/**
 * Temp files the client writes before the verified rename (see src/core/fs/atomic-file.ts),
 * including the resume staging names a large download writes to (src/core/delta/staging.ts).
 */
export const TEMP_NAME = /^\.assetsync-(?:stage-)?[0-9a-f]+(?:-p)?\.tmp$/

// --- trees -----------------------------------------------------------------------------------

/** What writeTree puts at a relative path: content (mode 0644) or a spec. */
export type TreeNode = string | Buffer | { data: string | Buffer; mode?: number } | { symlink: string } | { dir: true }

/** Writes `spec` (relative '/'-separated path → node) under `root`, creating folders. */
export async function writeTree(root: string, spec: Record<string, TreeNode>): Promise<void> {
  for (const [rel, node] of Object.entries(spec)) {
    const full = join(root, ...rel.split('/'))
    await mkdir(dirname(full), { recursive: true })
    if (typeof node === 'string' || Buffer.isBuffer(node)) {
      await writeFile(full, node)
      await chmod(full, 0o644)
    } else if ('symlink' in node) {
      await symlink(node.symlink, full)
    } else if ('dir' in node) {
      await mkdir(full, { recursive: true })
    } else {
      await writeFile(full, node.data)
      await chmod(full, node.mode ?? 0o644)
    }
  }
}

/** Writes `size` random bytes to `file` in 8 MiB pieces (memory stays flat for big files). */
export async function writeRandomFile(file: string, size: number, mode = 0o644): Promise<void> {
  await mkdir(dirname(file), { recursive: true })
  const fh = await open(file, 'w', mode)
  try {
    const piece = 8 * 1024 * 1024
    for (let off = 0; off < size; off += piece) {
      const n = Math.min(piece, size - off)
      await fh.write(randomBytes(n), 0, n, off)
    }
  } finally {
    await fh.close()
  }
  await chmod(file, mode)
}

export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink' | 'other'
  /** mode & 0o7777 (files and folders; 0 for symlinks). */
  mode: number
  size: number
  /** sha256 of a file's content. */
  sha256?: string
  /** A symlink's target. */
  target?: string
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256')
  const fh = await open(file, 'r')
  try {
    const buf = Buffer.allocUnsafe(1024 * 1024)
    for (let pos = 0; ;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos)
      if (bytesRead === 0) break
      h.update(buf.subarray(0, bytesRead))
      pos += bytesRead
    }
  } finally {
    await fh.close()
  }
  return h.digest('hex')
}

/**
 * Everything under `root` (not following symlinks), as relative '/'-paths in sorted order, with
 * type, mode, size and content hash: a listing to compare before/after ("nothing was written").
 */
export async function snapshotTree(root: string, skip: (rel: string) => boolean = () => false): Promise<Record<string, TreeEntry>> {
  const out: Record<string, TreeEntry> = {}
  const walk = async (dir: string, prefix: string): Promise<void> => {
    const names = (await readdir(dir)).sort()
    for (const name of names) {
      const rel = prefix ? `${prefix}/${name}` : name
      if (skip(rel)) continue
      const full = join(dir, name)
      const st = await lstat(full)
      if (st.isSymbolicLink()) out[rel] = { type: 'symlink', mode: 0, size: 0, target: await readlink(full) }
      else if (st.isDirectory()) {
        out[rel] = { type: 'dir', mode: st.mode & 0o7777, size: 0 }
        await walk(full, rel)
      } else if (st.isFile()) out[rel] = { type: 'file', mode: st.mode & 0o7777, size: st.size, sha256: await sha256File(full) }
      else out[rel] = { type: 'other', mode: st.mode & 0o7777, size: st.size }
    }
  }
  await walk(root, '')
  return out
}

/** True if the two files hold the same bytes (streamed, 1 MiB at a time). */
export async function sameBytes(a: string, b: string): Promise<boolean> {
  const [fa, fb] = await Promise.all([open(a, 'r'), open(b, 'r')])
  try {
    const [sa, sb] = await Promise.all([fa.stat(), fb.stat()])
    if (sa.size !== sb.size) return false
    const ba = Buffer.allocUnsafe(1024 * 1024)
    const bb = Buffer.allocUnsafe(1024 * 1024)
    for (let pos = 0; pos < sa.size;) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, ba.length, pos), fb.read(bb, 0, bb.length, pos)])
      if (ra.bytesRead !== rb.bytesRead || ra.bytesRead === 0) return false
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false
      pos += ra.bytesRead
    }
    return true
  } finally {
    await Promise.all([fa.close(), fb.close()])
  }
}

/**
 * Compares two trees: the same relative paths and types, files byte for byte with the same
 * permission bits (mode & 0o7777), symlinks with the same target. Folder modes are not compared
 * (the protocol carries file modes only). Returns the differences; [] means identical.
 */
export interface DiffOptions {
  /** Compare regular files (and symlinks) only: folders are not compared, so an emptied folder on one side is no difference. */
  filesOnly?: boolean
  /** Only relative paths for which this holds are compared. */
  only?: (rel: string) => boolean
}

export async function diffTrees(a: string, b: string, opts: DiffOptions = {}): Promise<string[]> {
  const keep = (rel: string, type: string): boolean => (!opts.filesOnly || type !== 'dir') && (opts.only?.(rel) ?? true)
  const list = async (root: string): Promise<Map<string, { type: string; mode: number; target?: string }>> => {
    const m = new Map<string, { type: string; mode: number; target?: string }>()
    const walk = async (dir: string, prefix: string): Promise<void> => {
      for (const name of (await readdir(dir)).sort()) {
        const rel = prefix ? `${prefix}/${name}` : name
        const full = join(dir, name)
        const st = await lstat(full)
        if (st.isSymbolicLink()) m.set(rel, { type: 'symlink', mode: 0, target: await readlink(full) })
        else if (st.isDirectory()) {
          m.set(rel, { type: 'dir', mode: 0 })
          await walk(full, rel)
        } else m.set(rel, { type: st.isFile() ? 'file' : 'other', mode: st.mode & 0o7777 })
      }
    }
    await walk(root, '')
    return m
  }
  const filtered = async (root: string): Promise<Map<string, { type: string; mode: number; target?: string }>> =>
    new Map([...await list(root)].filter(([rel, e]) => keep(rel, e.type)))
  const [la, lb] = await Promise.all([filtered(a), filtered(b)])
  const diffs: string[] = []
  for (const [rel, ea] of la) {
    const eb = lb.get(rel)
    if (!eb) { diffs.push(`only in ${a}: ${rel}`); continue }
    if (ea.type !== eb.type) { diffs.push(`${rel}: ${ea.type} vs ${eb.type}`); continue }
    if (ea.type === 'symlink' && ea.target !== eb.target) diffs.push(`${rel}: symlink to ${ea.target} vs ${eb.target}`)
    if (ea.type === 'file') {
      if (ea.mode !== eb.mode) diffs.push(`${rel}: mode ${ea.mode.toString(8)} vs ${eb.mode.toString(8)}`)
      if (!(await sameBytes(join(a, ...rel.split('/')), join(b, ...rel.split('/'))))) diffs.push(`${rel}: content differs`)
    }
  }
  for (const rel of lb.keys()) if (!la.has(rel)) diffs.push(`only in ${b}: ${rel}`)
  return diffs
}

/** Every regular file under `dir`, relative path → size; empty if `dir` does not exist (yet). */
export async function filesUnder(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  const walk = async (d: string, prefix: string): Promise<void> => {
    let ents
    try {
      ents = await readdir(d, { withFileTypes: true })
    } catch {
      return // not created yet, or removed under us
    }
    for (const e of ents) {
      const rel = prefix ? `${prefix}/${e.name}` : e.name
      if (e.isDirectory()) await walk(join(d, e.name), rel)
      else if (e.isFile()) {
        try {
          out.set(rel, (await stat(join(d, e.name))).size)
        } catch { /* renamed meanwhile */ }
      }
    }
  }
  await walk(dir, '')
  return out
}

/** Whether a relative path names one of our temp files. */
export const isTemp = (rel: string): boolean => TEMP_NAME.test(rel.split('/').at(-1) as string)

/** Relative paths of the regular files under `root` (sorted). */
export async function listFiles(root: string): Promise<string[]> {
  const snap = await snapshotTree(root)
  return Object.entries(snap).filter(([, e]) => e.type === 'file').map(([p]) => p).sort()
}

/**
 * The tree the mirror tests serve: an empty file, a 20-level deep folder chain, names with spaces
 * and non-ASCII (NFC) characters, dot files, an executable, a read-only and a private file, a
 * big random file and `small` small files of random sizes. Returns the relative file paths.
 */
export async function writeAssetTree(root: string, opts: { small?: number; bigBytes?: number } = {}): Promise<string[]> {
  const deep = Array.from({ length: 20 }, (_, i) => `d${String(i + 1).padStart(2, '0')}`).join('/')
  const spec: Record<string, TreeNode> = {
    'empty': '',
    [`${deep}/leaf.txt`]: 'twenty folders down\n',
    [`${deep.split('/').slice(0, 10).join('/')}/mid.cfg`]: 'depth=10\n',
    'ü/日本.lua': 'print("こんにちは")\n',
    'with space/file name with spaces.txt': 'spaces\n',
    'Ünïcödé – ñames/émoji 🎮.json': '{"ok":true}\n',
    '.hidden/.dotfile': 'dot\n',
    'scripts/main.lua': 'require("lib.util")\n',
    'scripts/lib/util.lua': 'return {}\n',
    'bin/run.sh': { data: '#!/bin/sh\necho run\n', mode: 0o755 },
    'config/readonly.ini': { data: '[ro]\n', mode: 0o444 },
    'config/private.key': { data: randomBytes(64), mode: 0o600 },
  }
  const n = opts.small ?? 200
  for (let i = 0; i < n; i++) {
    spec[`many/${String(Math.floor(i / 50))}/f${String(i).padStart(4, '0')}.dat`] = randomBytes(1 + Math.floor(Math.random() * 4096))
  }
  await writeTree(root, spec)
  const big = join(root, 'textures', 'big texture.bin')
  await writeRandomFile(big, opts.bigBytes ?? 5 * 1024 * 1024)
  return [...Object.keys(spec), 'textures/big texture.bin'].sort()
}
