// Generated test trees. Sizes come from a seeded PRNG (the same seed gives the same shape);
// contents are random bytes (incompressible, so neither side can cheat with compression).
import { randomFillSync } from 'node:crypto'
import { createWriteStream, writeFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { mulberry32 } from './lossy-proxy.mjs'

/** Runs fn over items with at most `limit` at once. */
async function mapLimit(items, limit, fn) {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++])
  }))
}

/** Writes `size` random bytes to `path`, in 8 MiB pieces for big files. */
async function writeRandomFile(path, size) {
  if (size <= 8 * 1024 * 1024) {
    await writeFile(path, randomFillSync(Buffer.allocUnsafe(size)))
    return
  }
  const out = createWriteStream(path)
  const block = Buffer.allocUnsafe(8 * 1024 * 1024)
  for (let left = size; left > 0; left -= block.length) {
    randomFillSync(block)
    const piece = left >= block.length ? block : block.subarray(0, left)
    if (!out.write(Buffer.from(piece))) await new Promise((r) => out.once('drain', r))
  }
  await new Promise((resolve, reject) => out.end((err) => (err ? reject(err) : resolve())))
}

/**
 * A mixed asset tree of about `totalBytes`: 4 large files (70 % of the bytes), medium files of
 * 256 KiB–2 MiB (20 %) and many small files of 512 B–32 KiB (10 %), small ones 100 per folder.
 * Returns {files, bytes, parts: {large, textures, scripts} bytes per top folder}.
 */
export async function mixedTree(root, totalBytes, seed = 1) {
  const rand = mulberry32(seed)
  const plan = []
  const large = Math.floor((totalBytes * 0.7) / 4)
  for (let i = 0; i < 4; i++) plan.push({ path: `large/pack-${i}.bin`, size: large })
  // Whole bytes: a fractional remainder (256 MiB × 0.2 ends in .2) rounded to a 0-byte file forever.
  let medium = Math.floor(totalBytes * 0.2)
  for (let i = 0; medium > 0; i++) {
    const size = Math.min(Math.round(medium), Math.round(256 * 1024 + rand() * (2 * 1024 * 1024 - 256 * 1024)))
    plan.push({ path: `textures/t${String(i).padStart(4, '0')}.tex`, size })
    medium -= size
  }
  let small = totalBytes - plan.reduce((a, f) => a + f.size, 0)
  for (let i = 0; small > 0; i++) {
    const size = Math.min(small, Math.round(512 + rand() * (32 * 1024 - 512)))
    plan.push({ path: `scripts/d${String(Math.floor(i / 100)).padStart(3, '0')}/s${i}.lua`, size })
    small -= size
  }
  await writePlan(root, plan)
  const parts = {}
  for (const f of plan) { const top = f.path.split('/')[0]; parts[top] = (parts[top] ?? 0) + f.size }
  return { files: plan.length, bytes: plan.reduce((a, f) => a + f.size, 0), parts }
}

/** `count` small files of `minBytes`–`maxBytes`, `perDir` per folder. Returns {files, bytes}. */
export async function smallFilesTree(root, count, { minBytes = 100, maxBytes = 4096, perDir = 200, seed = 2 } = {}) {
  const rand = mulberry32(seed)
  const plan = []
  for (let i = 0; i < count; i++) {
    plan.push({ path: `d${String(Math.floor(i / perDir)).padStart(4, '0')}/f${i}.dat`, size: Math.round(minBytes + rand() * (maxBytes - minBytes)) })
  }
  await writePlan(root, plan)
  return { files: plan.length, bytes: plan.reduce((a, f) => a + f.size, 0) }
}

/** One file of `size` random bytes. */
export async function bigFile(path, size) {
  await writeRandomFile(path, size)
  return { files: 1, bytes: size }
}

async function writePlan(root, plan) {
  const dirs = new Set(plan.map((f) => join(root, f.path, '..')))
  for (const d of dirs) await mkdir(d, { recursive: true })
  // Small files synchronously (much faster than one promise each), big ones streamed.
  const small = plan.filter((f) => f.size < 1024 * 1024)
  const pool = randomFillSync(Buffer.allocUnsafe(1024 * 1024 + 4096))
  for (const f of small) {
    const off = Math.floor(Math.random() * 4096)
    randomFillSync(pool, off, Math.min(64, f.size)) // unique content even for tiny files
    writeFileSync(join(root, f.path), pool.subarray(off, off + f.size))
  }
  await mapLimit(plan.filter((f) => f.size >= 1024 * 1024), 4, (f) => writeRandomFile(join(root, f.path), f.size))
}
