// FolderSource and names on disk (issue 11, case 5), below the CLI: which of two names with one NFC
// form is served, that the other takes over when the first goes, that two non-NFC names for one
// wire path are refused when neither is known, and how names are shown. Real files.
import { mkdir, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { displayName } from '../../src/core/fs/disk-names.js'
import { findOnDisk } from '../../src/core/fs/paths.js'
import { FolderSource } from '../../src/core/server/folder-source.js'

const ANGSTROM = '\u212b.txt' // ANGSTROM SIGN: NFC turns it into U+00C5
const A_RING = 'A\u030a.txt' // A + COMBINING RING ABOVE (NFD)
const WIRE = '\u00c5.txt' // what both are on the wire

let work: string
let root: string
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'assetsync-folder-names-'))
  root = join(work, 'root')
  await mkdir(root)
})
afterEach(() => rm(work, { recursive: true, force: true }))

async function read(s: FolderSource, path: string): Promise<string | null> {
  const r = await s.open(path)
  if (!r) return null
  try {
    const buf = Buffer.alloc(r.entry.size)
    await r.read(buf, 0, buf.length)
    return buf.toString()
  } finally {
    await r.close()
  }
}

describe('names with one NFC form', () => {
  it('one is served under the NFC wire path, the other reported; when the served one goes, the other is found', async () => {
    await writeFile(join(root, ANGSTROM), 'angstrom sign\n')
    await writeFile(join(root, A_RING), 'a with ring\n')
    const s = await FolderSource.open({ root })
    const scan = await s.scan()
    expect(scan.files).toBe(1)
    expect(scan.skipped).toHaveLength(1)
    expect(scan.skipped?.[0]?.reason).toMatch(/once Unicode-normalized \(NFC\)/)
    const served = await read(s, WIRE)
    // The first by bytes wins when neither is stored as NFC: "A\u030a" sorts before "\u212b".
    expect(served).toBe('a with ring\n')
    await unlink(join(root, A_RING))
    expect((await s.get(WIRE))?.size).toBe('angstrom sign\n'.length)
    expect(await read(s, WIRE)).toBe('angstrom sign\n')
    await s.close()
  })

  it('the name stored as NFC wins over a decomposed one', async () => {
    await writeFile(join(root, A_RING), 'decomposed\n')
    await writeFile(join(root, WIRE), 'composed\n')
    const s = await FolderSource.open({ root })
    const scan = await s.scan()
    expect(scan.skipped?.map((k) => k.path)).toEqual([A_RING])
    expect(await read(s, WIRE)).toBe('composed\n')
    await s.close()
  })

  it('findOnDisk: its own name first, else the one other form; two other forms are refused', async () => {
    await writeFile(join(root, A_RING), 'x')
    expect(await findOnDisk(root, WIRE)).toBe(A_RING)
    expect(await findOnDisk(root, 'missing.txt')).toBeNull()
    await writeFile(join(root, ANGSTROM), 'y')
    await expect(findOnDisk(root, WIRE)).rejects.toMatchObject({ code: 'ERR_PATH_REFUSED' })
    await writeFile(join(root, WIRE), 'z')
    expect(await findOnDisk(root, WIRE)).toBe(WIRE)
  })
})

describe('paths no file can have', () => {
  it('a segment longer than the file system allows is not found; a loop of links is refused; neither is an internal error', async () => {
    await symlink('loop', join(root, 'loop'))
    const s = await FolderSource.open({ root })
    await s.scan()
    expect(await s.open(`${'n'.repeat(300)}.txt`)).toBeNull()
    expect(await s.get(`${'n'.repeat(300)}é.txt`)).toBeNull()
    await expect(s.open('loop/x.txt')).rejects.toMatchObject({ code: 'ERR_PATH_REFUSED' })
    expect(await s.get('loop/x.txt')).toBeNull()
    await s.close()
  })
})

describe('what the scan reports', () => {
  it('a symlink out of the root is reported, an ignored name never is; names are shown printable', async () => {
    await writeFile(join(work, 'outside.txt'), 'outside\n')
    await symlink(join(work, 'outside.txt'), join(root, 'out-link.txt'))
    await writeFile(join(root, 'ctl\x01.swp'), 'ignored editor file with a control character\n')
    await writeFile(join(root, 'ok.txt'), 'ok\n')
    const s = await FolderSource.open({ root })
    const scan = await s.scan()
    expect(scan.files).toBe(1)
    expect(scan.skipped).toEqual([{ path: 'out-link.txt', reason: 'symlink to a place outside the served folder', folder: false }])
    await s.close()
  })

  it('displayName: valid UTF-8 as is, other bytes and control characters as \\xNN', () => {
    expect(displayName(Buffer.from('caf\xc3\xa9 \xff\x01.txt', 'latin1'))).toBe('café \\xff\\x01.txt')
    expect(displayName(Buffer.from([0xe2, 0x82]))).toBe('\\xe2\\x82') // a truncated sequence
    expect(displayName('tab\there')).toBe('tab\\x09here')
  })
})
