/**
 * The live page end to end, in a real browser (Debian's chromium through playwright-core): a real
 * `assetsync serve --http 127.0.0.1:0`, a real device (`assetsync watch`) that appears on the page
 * with its subscription, a save that reaches it, a reload error the device reports (file:line, in
 * red, first), and its recovery after a good save. Screenshots go to test-artifacts/ (ignored).
 * Skips loudly without chromium.
 *
 * The device's reload is a `watch --exec` hook that fails while the script holds BAD (the report
 * comes over the protocol, as from any device). Once `assetsync run` reports its own reloads,
 * this can use `run` instead: the page cannot tell the difference.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Sandbox, type ServerHandle, ensureBuilt } from '../helpers/cli.js'
import { LOOPBACK, waitFor } from '../helpers/common.js'
import { writeTree } from '../helpers/trees.js'
import { type Browser, artifactPath, launchBrowser, warnIfSkipped } from '../helpers/browser.js'
import { fetchStatus } from '../helpers/http.js'
import { type WatchHandle, startWatch } from '../helpers/watch.js'

const skip = warnIfSkipped()
const WAIT_MS = 20_000
const GOOD = 'return { hp = 10 }\n'
const BAD = 'return { hp = BAD }\n'
const HOOK = `if grep -q BAD scripts/main.lua; then echo "scripts/main.lua:1: unexpected symbol near 'BAD'" >&2; exit 3; fi`

describe.skipIf(skip)('the live page of a real server, in chromium', () => {
  let sb: Sandbox
  let src: string
  let s: ServerHandle
  let w: WatchHandle
  let browser: Browser
  let page: Page
  let remote = ''
  let dialogs = 0

  beforeAll(async () => {
    ensureBuilt()
    sb = await Sandbox.create('live-page')
    src = await sb.mkdir('src')
    await writeTree(src, { 'scripts/main.lua': GOOD, 'textures/hero.png': 'png\n' })
    s = await sb.serve(src, ['--http', `${LOOPBACK}:0`])
    browser = await launchBrowser({ width: 1280, height: 860 })
    page = await browser.context.newPage()
    page.on('dialog', (d) => { dialogs++; void d.dismiss() })
    await page.goto(`${String(s.listening.http)}/`)
    await page.locator('#live.on').waitFor()
  }, 90_000)

  afterAll(async () => {
    w?.cli.proc.kill('SIGTERM')
    await w?.exited
    await browser?.close()
    await s?.stop()
    await sb?.cleanup()
  })

  it('shows the server, and no device yet', async () => {
    await expect.poll(() => page.locator('#devices').textContent()).toContain('No devices connected')
    expect(await page.locator('#meta').textContent()).toContain(`udp://${LOOPBACK}:${s.port}`)
  })

  it('a device appears when a real watch connects, with its subscription', async () => {
    w = await startWatch(sb, s.addr, { out: sb.path('device'), patterns: ['scripts/**'], exec: HOOK, args: ['--key', s.key] })
    const device = await waitFor(async () => (await fetchStatus(String(s.listening.http))).clients.find((c) => c.subscriptions.length > 0),
      WAIT_MS, 'the watcher in /status')
    remote = device.remote
    const card = page.locator(`.device[data-remote="${remote}"]`)
    await card.waitFor({ timeout: WAIT_MS })
    // The card may first show the device as connected, before its SUBSCRIBE (pushes are throttled).
    await expect.poll(() => card.textContent(), { timeout: WAIT_MS }).toContain('scripts/**')
    expect(await page.locator('#ndev').textContent()).toBe('1')
  })

  it('a reload error from the device shows first, in red, with file:line; a good save clears it', async () => {
    await writeFile(join(src, 'scripts', 'main.lua'), BAD)
    const banner = page.locator('#alert .banner')
    await banner.waitFor({ timeout: WAIT_MS })
    expect(await banner.textContent()).toBe(`${remote} failed to reload: scripts/main.lua:1`)
    const card = page.locator(`.device[data-remote="${remote}"]`)
    expect(await card.getAttribute('class')).toContain('failing')
    expect(await card.locator('.report.bad .where').textContent()).toBe('scripts/main.lua:1')
    expect(await card.locator('.report.bad pre').textContent()).toBe("hook exited 3\nscripts/main.lua:1: unexpected symbol near 'BAD'")
    const color = await card.locator('.where').evaluate((el) =>
      (globalThis as unknown as { getComputedStyle(e: unknown): { color: string } }).getComputedStyle(el).color)
    const [r, g, b] = (color.match(/\d+/g) ?? []).map(Number) as [number, number, number]
    expect(r).toBeGreaterThan(150)
    expect(g + b).toBeLessThan(r)
    // The batch that caused it is listed, sent to this device.
    const newest = page.locator('.batch').first()
    expect(await newest.textContent()).toContain('scripts/main.lua')
    expect(await newest.locator('.to .chip').allTextContents()).toEqual([remote])
    await page.screenshot({ path: await artifactPath('live-page-e2e-error.png'), fullPage: true })

    await writeFile(join(src, 'scripts', 'main.lua'), GOOD)
    await banner.waitFor({ state: 'detached', timeout: WAIT_MS })
    await expect.poll(() => card.locator('.report.ok').textContent(), { timeout: WAIT_MS }).toMatch(/reloaded 1 file in \d+ ms/)
    expect(await card.getAttribute('class')).not.toContain('failing')
    await page.screenshot({ path: await artifactPath('live-page-e2e.png'), fullPage: true })
    expect(dialogs).toBe(0)
  }, 60_000)

  it('the device leaves the page when it disconnects', async () => {
    w.cli.proc.kill('SIGTERM')
    await w.exited
    await page.locator(`.device[data-remote="${remote}"]`).waitFor({ state: 'detached', timeout: WAIT_MS })
    expect(await page.locator('#ndev').textContent()).toBe('0')
  })
})
