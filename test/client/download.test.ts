/**
 * AssetClient's downloads through the FileSink seam (src/core/client/receive.ts and the sinks):
 * to a path (temp file, hash check, rename), staged, into memory (`read`), and into a custom sink,
 * against a real AssetServer on 127.0.0.1:0 over real UDP. A lying server (real protocol pieces)
 * shows that nothing unverified is returned and that retries follow ERROR_RECOVERY.
 */
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import SecretStream from '@hyperswarm/secret-stream'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { AssetClient } from '../../src/core/client/client.js'
import type { FileSink, SinkFactory } from '../../src/core/client/file-sink.js'
import { MemorySink } from '../../src/core/client/memory-sink.js'
import { aheadTemp, dropAhead, fileSink } from '../../src/core/client/temp-file-sink.js'
import { isTempName } from '../../src/core/fs/atomic-write.js'
import { hashBytes } from '../../src/core/fs/hash.js'
import { AssetSyncError } from '../../src/errors.js'
import { CHUNK_SIZE, DOWNLOAD_ATTEMPTS, FLOW_WINDOW_BYTES, MAX_READ_BYTES } from '../../src/limits.js'
import type { ServerConnection } from '../../src/protocol/connection.js'
import type { ClientMessage, FileMeta } from '../../src/protocol/messages.js'
import { Cleanup, MiB, tempDir } from '../helpers/common.js'
import { listen } from '../helpers/endpoints.js'
import { type LocalServer, startLocalServer } from '../helpers/raw-peers.js'
import { writeTree } from '../helpers/trees.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())
const suite = new Cleanup()
afterAll(() => suite.run())

let work: string
let srv: LocalServer
const files: Record<string, Buffer> = {
  'small.txt': Buffer.from('hello, sinks\n'),
  'empty.bin': Buffer.alloc(0),
  'big.bin': randomBytes(3 * MiB + 17),
  'huge.bin': randomBytes(20 * MiB),
}

beforeAll(async () => {
  const t = await tempDir('download')
  suite.add(t.remove)
  work = t.dir
  await writeTree(join(work, 'src'), files)
  srv = await startLocalServer(join(work, 'src'), join(work, 'server-config'))
  suite.add(() => srv.server.close())
})

async function connect(server = srv.addr, key = srv.key): Promise<AssetClient> {
  const c = await AssetClient.connect({ server, key, transport: 'udp', configDir: join(work, 'config'), connectTimeoutMs: 5000 })
  cleanup.add(() => c.conn.destroy())
  return c
}

let seq = 0
const outPath = (): string => join(work, `out-${++seq}`)
const rejection = (p: Promise<unknown>): Promise<unknown> => p.then(() => new Error('expected a rejection'), (e: unknown) => e)

describe('download to a path', () => {
  it('writes the verified file atomically and reports it; with the current hash, up-to-date and nothing written', async () => {
    const c = await connect()
    for (const name of ['small.txt', 'empty.bin', 'big.bin']) {
      const dest = outPath()
      const r = await c.download(name, dest)
      expect(r.status).toBe('downloaded')
      if (r.status !== 'downloaded') continue
      expect(r.result).toEqual({ finalPath: dest, tempPath: expect.stringContaining('.assetsync-'), installed: true })
      expect(r.bytes).toBe(files[name]?.length)
      expect(Buffer.from(r.meta.hash).equals(hashBytes(files[name] as Buffer))).toBe(true)
      expect((await readFile(dest)).equals(files[name] as Buffer), name).toBe(true)
    }
    const dest = outPath()
    const r = await c.download('big.bin', dest, hashBytes(files['big.bin'] as Buffer))
    expect(r).toEqual({ status: 'up-to-date', meta: null, bytes: 0, reused: 0 })
    expect(existsSync(dest)).toBe(false)
    // Each missing file had a temp file made while its request was on the wire: the small ones
    // were written to it, the big one's was removed; none is left.
    expect((await readdir(work)).filter(isTempName)).toEqual([])
  })

  it('a temp file made ahead (aheadTemp): a small file is written to it; for a large one it is removed at once', async () => {
    const meta = (data: Buffer): FileMeta => ({ hash: hashBytes(data), size: data.length, mode: 0o644, mtime: Date.now() })
    const small = files['small.txt'] as Buffer
    const dest = outPath()
    const ahead = aheadTemp(dest)
    const made = await ahead.made
    expect(made && isTempName(made.tempPath.slice(work.length + 1))).toBe(true)
    const sink = await fileSink(dest, { ahead })(meta(small), 'small.txt')
    expect(ahead.taken).toBe(true)
    await sink.write(small, 0)
    const saved = await sink.commit()
    expect(saved.tempPath).toBe(made?.tempPath)
    expect((await readFile(dest)).equals(small)).toBe(true)

    const big = files['big.bin'] as Buffer
    const dest2 = outPath()
    const ahead2 = aheadTemp(dest2)
    const made2 = await ahead2.made
    const sink2 = await fileSink(dest2, { ahead: ahead2 })(meta(big), 'big.bin')
    expect(ahead2.taken).toBe(false)
    expect(existsSync(made2?.tempPath ?? '')).toBe(false)
    expect(ahead2.dropped).toBe(true)
    await sink2.discard()
    await dropAhead(ahead2) // a second drop is harmless
    expect((await readdir(work)).filter(isTempName)).toEqual([])
  })

  it('staged: the verified temp file waits beside the final path for the caller', async () => {
    const c = await connect()
    const dest = outPath()
    const r = await c.download('small.txt', fileSink(dest, { stage: true }))
    if (r.status !== 'downloaded') throw new Error('expected downloaded')
    expect(r.result.installed).toBe(false)
    expect(existsSync(dest)).toBe(false)
    expect(isTempName(r.result.tempPath.slice(work.length + 1))).toBe(true)
    expect((await readFile(r.result.tempPath)).equals(files['small.txt'] as Buffer)).toBe(true)
    await rm(r.result.tempPath) // the caller's to install or remove
  })

  it('not found: ERR_NOT_FOUND, and no temp file is left', async () => {
    const c = await connect()
    const e = await rejection(c.download('nope.txt', outPath()))
    expect(e).toMatchObject({ code: 'ERR_NOT_FOUND' })
    expect((await readdir(work)).filter(isTempName)).toEqual([])
  })
})

describe('read (memory sink)', () => {
  it('returns the verified bytes; with the current hash, null', async () => {
    const c = await connect()
    for (const name of ['small.txt', 'empty.bin', 'big.bin']) {
      const buf = await c.read(name)
      expect(buf.equals(files[name] as Buffer), name).toBe(true)
    }
    expect(await c.read('small.txt', hashBytes(files['small.txt'] as Buffer))).toBeNull()
    expect((await c.read('small.txt', hashBytes(Buffer.from('stale'))))?.equals(files['small.txt'] as Buffer)).toBe(true)
    expect((await readdir(work)).filter(isTempName)).toEqual([])
  })

  it('a file over the cap is ERR_LIMIT before any byte is held; the request is cancelled and the connection goes on', async () => {
    expect(MAX_READ_BYTES).toBeGreaterThan(files['big.bin']?.length ?? 0)
    const c = await connect()
    const e = await rejection(c.read('big.bin', null, { maxBytes: MiB }))
    expect(e).toBeInstanceOf(AssetSyncError)
    expect(e).toMatchObject({ code: 'ERR_LIMIT' })
    expect(c.conn.inflight).toBe(0)
    expect(c.conn.isOpen).toBe(true)
    // The server was told to stop: the next request on the connection is answered as usual.
    expect((await c.read('small.txt')).equals(files['small.txt'] as Buffer)).toBe(true)
  })

  it('MemorySink alone: refuses out-of-order and excess bytes, and a wrong hash at commit', async () => {
    const data = Buffer.from('0123456789')
    const meta: FileMeta = { hash: hashBytes(data), size: data.length, mode: 0o644, mtime: 0 }
    const a = new MemorySink(meta, 'a.txt')
    expect(() => a.write(data.subarray(2), 2)).toThrow(expect.objectContaining({ code: 'ERR_PROTOCOL' }))
    a.write(data.subarray(0, 8), 0)
    expect(() => a.write(data, 8)).toThrow(expect.objectContaining({ code: 'ERR_INTEGRITY' }))
    await expect(a.commit()).rejects.toMatchObject({ code: 'ERR_INTEGRITY' }) // 8 of 10 bytes
    const b = new MemorySink({ ...meta, hash: hashBytes(Buffer.from('other')) }, 'b.txt')
    b.write(data, 0)
    await expect(b.commit()).rejects.toMatchObject({ code: 'ERR_INTEGRITY' })
    const ok = new MemorySink(meta, 'ok.txt')
    ok.write(data, 0)
    expect((await ok.commit()).equals(data)).toBe(true)
    expect(() => new MemorySink(meta, 'x', 9)).toThrow(expect.objectContaining({ code: 'ERR_LIMIT' }))
  })
})

/** A sink that records what it is given, optionally slow or failing at some offset. */
function recordingSink(opts: { delayMs?: number; failAt?: number; onWrite?: (consumed: number) => void } = {}) {
  const log = { opened: [] as FileMeta[], offsets: [] as number[], commits: 0, discards: 0, consumed: 0, data: [] as Buffer[] }
  const open: SinkFactory<number> = (meta) => {
    log.opened.push(meta)
    const sink: FileSink<number> = {
      async write(data, offset) {
        log.offsets.push(offset)
        if (opts.failAt !== undefined && offset >= opts.failAt) throw new AssetSyncError('ERR_WRITE', 'disk full (test)')
        if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs)) // a slow disk
        log.data.push(Buffer.from(data))
        log.consumed += data.byteLength
        opts.onWrite?.(log.consumed)
      },
      async commit() {
        log.commits++
        const all = Buffer.concat(log.data)
        if (!hashBytes(all).equals(log.opened.at(-1)?.hash as Buffer)) throw new AssetSyncError('ERR_INTEGRITY', 'bad')
        return all.length
      },
      async discard() { log.discards++ },
    }
    return sink
  }
  return { open, log }
}

describe('a custom sink', () => {
  it('gets the meta, then every chunk in order at contiguous offsets, then one commit whose result is returned', async () => {
    const c = await connect()
    const { open, log } = recordingSink()
    const r = await c.download('big.bin', open)
    expect(r).toMatchObject({ status: 'downloaded', bytes: files['big.bin']?.length, result: files['big.bin']?.length })
    expect(log.opened).toHaveLength(1)
    expect(log.opened[0]?.size).toBe(files['big.bin']?.length)
    expect(log.offsets).toEqual(log.offsets.map((_, i) => i * CHUNK_SIZE))
    expect(log.commits).toBe(1)
    expect(log.discards).toBe(0)
  })

  it('flow-control credit follows consumption: a slow sink holds the server to FLOW_WINDOW_BYTES ahead', async () => {
    const c = await connect()
    const before = c.conn.bytesReceived
    let ahead = 0
    const { open } = recordingSink({
      delayMs: 2,
      // Frame bytes received minus payload bytes the sink has consumed: what the server ran ahead.
      onWrite: (consumed) => { ahead = Math.max(ahead, c.conn.bytesReceived - before - consumed) },
    })
    const r = await c.download('huge.bin', open)
    expect(r.status).toBe('downloaded')
    expect(files['huge.bin']?.length).toBeGreaterThan(2 * FLOW_WINDOW_BYTES)
    // Frame headers and pings on top of the window: far below the file's size.
    expect(ahead).toBeLessThanOrEqual(FLOW_WINDOW_BYTES + 256 * 1024)
    expect(ahead).toBeGreaterThan(CHUNK_SIZE)
  })

  it('a sink that fails mid-transfer: the error reaches the caller, the sink is discarded, the server stops, the connection goes on', async () => {
    const c = await connect()
    const { open, log } = recordingSink({ failAt: 4 * CHUNK_SIZE })
    const e = await rejection(c.download('big.bin', open))
    expect(e).toMatchObject({ code: 'ERR_WRITE' })
    expect(log.discards).toBe(1)
    expect(log.commits).toBe(0)
    expect(log.opened).toHaveLength(1) // ERR_WRITE is final: no retry
    expect(c.conn.inflight).toBe(0)
    expect((await c.read('small.txt')).equals(files['small.txt'] as Buffer)).toBe(true)
  })

  it('a factory that refuses the file (at once, or later) cancels the request; the connection goes on', async () => {
    const c = await connect()
    const refuse = (): never => { throw new AssetSyncError('ERR_LIMIT', 'not today') }
    expect(await rejection(c.download('big.bin', refuse))).toMatchObject({ code: 'ERR_LIMIT' })
    expect(await rejection(c.download('big.bin', async () => refuse()))).toMatchObject({ code: 'ERR_LIMIT' })
    expect(c.conn.inflight).toBe(0)
    expect((await c.read('small.txt')).equals(files['small.txt'] as Buffer)).toBe(true)
  })
})

describe('a server that lies about the hash', () => {
  it('read() never returns the bytes: ERR_INTEGRITY after DOWNLOAD_ATTEMPTS requests on one connection; download leaves no file', async () => {
    const keyPair = SecretStream.keyPair()
    const ep = await listen('udp', { keyPair })
    cleanup.add(() => ep.close())
    const body = Buffer.from('not what was announced\n')
    let requests = 0
    ep.on('connection', (conn: ServerConnection) => {
      conn.on('message', (msg: ClientMessage) => {
        if (msg.type !== 'request') return
        requests++
        conn.send({ type: 'response', id: msg.id, status: 'file', hash: hashBytes(Buffer.from('the truth')), size: body.length, mode: 0o644, mtime: 0 })
        void conn.sendChunk({ type: 'chunk', id: msg.id, offset: 0, final: true, data: body }).catch(() => {})
      })
    })
    const c = await connect(`127.0.0.1:${ep.address().port}`, keyPair.publicKey.toString('hex'))
    expect(await rejection(c.read('x.txt'))).toMatchObject({ code: 'ERR_INTEGRITY' })
    expect(requests).toBe(DOWNLOAD_ATTEMPTS)
    const dest = outPath()
    await writeFile(dest, 'old\n')
    expect(await rejection(c.download('x.txt', dest))).toMatchObject({ code: 'ERR_INTEGRITY' })
    expect(requests).toBe(2 * DOWNLOAD_ATTEMPTS)
    expect(await readFile(dest, 'utf8')).toBe('old\n')
    expect((await readdir(work)).filter(isTempName)).toEqual([])
  })
})
