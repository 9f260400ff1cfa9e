/**
 * The scale-out flags refuse what makes no sense with a one-line usage error (exit 2), before
 * anything connects: an edge with a folder, an edge that also publishes, a feed or a cache size
 * with neither, a malformed bucket URL, --s3-endpoint with credentials in it or without --direct.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureBuilt, Sandbox } from '../helpers/cli.js'

describe('scale-out flags: usage errors', () => {
  let sb: Sandbox
  beforeAll(async () => {
    ensureBuilt()
    sb = await Sandbox.create('scale-usage')
  })
  afterAll(async () => { await sb?.cleanup() })

  const cases: [string[], RegExp][] = [
    [['serve', 'assets', '--origin', 's3://bucket/p'], /leave out \[dir\]/],
    [['serve', '--origin', 's3://bucket/p', '--publish', 's3://bucket/q'], /exclude each other/],
    [['serve', '--feed', 'nats://127.0.0.1:4222'], /--feed needs --publish/],
    [['serve', '--cache-size', '1000'], /--cache-size is for an edge/],
    [['serve', '--origin', 'bucket/p'], /--origin must be s3:\/\/bucket\/prefix/],
    [['serve', '--origin', 's3://bucket/a/../b'], /prefix/],
    [['serve', '--origin', 's3://bucket/p', '--feed', 'http://x:1'], /--feed must be nats:\/\//],
    [['serve', '--origin', 's3://bucket/p', '--cache-size', 'lots'], /--cache-size must be a number/],
    [['serve', '--origin', 's3://bucket/p', '--s3-endpoint', 'http://key:secret@127.0.0.1:9'], /must not carry credentials/],
    [['pull', '--server', '127.0.0.1:9', '--s3-endpoint', 'http://127.0.0.1:9'], /--s3-endpoint is for --direct/],
  ]
  for (const [args, message] of cases) {
    it(args.join(' '), async () => {
      const r = await sb.run(args, { timeoutMs: 20_000 })
      expect(r.code, r.stderr).toBe(2)
      expect(r.stderr).toMatch(message)
      expect(r.stderr).not.toMatch(/secret/)
      expect(r.stderr.trim().split('\n')).toHaveLength(1)
    })
  }
})
