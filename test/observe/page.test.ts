/**
 * The live page in a real browser (Debian's chromium through playwright-core): it follows a real
 * sequence of server events through /events — a device appears, a batch reaches it, its reload
 * fails with file:line, then recovers — escapes hostile strings, fits a laptop and a narrow
 * window, and leaves screenshots in test-artifacts/ (not committed). Skips loudly without chromium.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { HttpStatusServer } from '../../src/core/server/http-status.js'
import { Metrics } from '../../src/core/server/metrics.js'
import { type ClientProbe, StatusTracker } from '../../src/core/server/status.js'
import { type Browser, artifactPath, launchBrowser, warnIfSkipped } from '../helpers/browser.js'

const skip = warnIfSkipped()
const HOSTILE = '<img src=x onerror=alert(1)>'

describe.skipIf(skip)('the live status page in chromium', () => {
  let browser: Browser
  let http: HttpStatusServer
  let page: Page
  let dialogs = 0
  const tracker = new StatusTracker({
    version: '0.1.0', protocol: 2, key: '5f3a9c0d'.repeat(8), transport: 'udp', address: 'udp://0.0.0.0:7420', files: () => 1284,
  })
  const sent = new Map<string, number>()
  const device = (remote: string, transport: 'udp' | 'tcp', subs: ClientProbe['subscriptions']): ClientProbe => ({
    remote, transport, bytes: () => ({ sent: sent.get(remote) ?? 0, received: 5_300 }), subscriptions: subs,
  })
  const PHONE = '192.168.1.30:51234'
  const PC = '192.168.1.41:50702'

  beforeAll(async () => {
    http = await HttpStatusServer.listen({ port: 0, token: null, provider: tracker, metrics: new Metrics({ version: '0.1.0', processMetrics: false }) })
    browser = await launchBrowser({ width: 1280, height: 860 })
    page = await browser.context.newPage()
    page.on('dialog', (d) => { dialogs++; void d.dismiss() })
    await page.goto(`${http.url}/`)
    await page.locator('#live.on').waitFor()
  }, 90_000)

  afterAll(async () => {
    await browser?.close()
    await http?.close()
  })

  it('starts empty and says what to do', async () => {
    await expect.poll(() => page.locator('#devices').textContent()).toContain('No devices connected')
    expect(await page.locator('#batches').textContent()).toContain('No changes yet')
    expect(await page.locator('#meta').textContent()).toContain('udp://0.0.0.0:7420')
  })

  it('shows a device when it connects, with its subscriptions', async () => {
    tracker.clientConnected(device(PHONE, 'udp', () => [{ pattern: 'scripts/**', instances: [1] }, { pattern: 'levels/*.json', instances: [1, 2] }]))
    const card = page.locator(`.device[data-remote="${PHONE}"]`)
    await card.waitFor()
    expect(await card.textContent()).toContain('scripts/**')
    expect(await card.textContent()).toContain('#1 #2')
    expect(await page.locator('#ndev').textContent()).toBe('1')
    tracker.clientConnected(device(PC, 'tcp', () => [{ pattern: '**', instances: [7] }, { pattern: HOSTILE, instances: [8] }]))
    await page.locator(`.device[data-remote="${PC}"]`).waitFor()
  })

  it('lists change batches and which devices got each, escaping hostile paths', async () => {
    sent.set(PHONE, 2_400_000)
    tracker.batch({ changes: [{ path: 'textures/hero.png', action: 'change' }, { path: 'old/tmp.txt', action: 'delete' }], recipients: [PC], lagMs: 31 })
    tracker.batch({ changes: [{ path: 'scripts/main.lua', action: 'change' }, { path: HOSTILE, action: 'change' }, { path: 'scripts/ui/menu.lua', action: 'rename', from: 'scripts/menu.lua' }], recipients: [PHONE, PC], lagMs: 24 })
    const newest = page.locator('.batch').first()
    await expect.poll(() => newest.getAttribute('data-seq')).toBe('2')
    const text = await newest.textContent()
    expect(text).toContain('scripts/main.lua')
    expect(text).toContain(HOSTILE) // shown as text...
    expect(text).toContain('scripts/menu.lua → scripts/ui/menu.lua')
    expect(await newest.locator('.to .chip').allTextContents()).toEqual([PHONE, PC])
    expect(await page.locator('img').count()).toBe(0) // ...never as markup
    expect(await page.locator('.batch').count()).toBe(2)
  })

  it('shows a reload error prominently with file:line, then its recovery', async () => {
    const message = 'scripts/main.lua:12: attempt to call a nil value (global \'update_hud\')\nstack traceback:\n\t[C]: in function \'update_hud\'\n\tscripts/main.lua:12: in function <scripts/main.lua:9>\n<script>alert(2)</script>'
    tracker.clientReport(PC, { ok: true, paths: ['textures/hero.png'], ms: 6 })
    tracker.clientReport(PHONE, { ok: false, paths: ['scripts/main.lua'], ms: 4, error: message })
    const banner = page.locator('#alert .banner')
    await banner.waitFor()
    expect(await banner.textContent()).toBe(`${PHONE} failed to reload: scripts/main.lua:12`)
    const card = page.locator(`.device[data-remote="${PHONE}"]`)
    expect(await card.getAttribute('class')).toContain('failing')
    expect(await card.locator('.report.bad .where').textContent()).toBe('scripts/main.lua:12')
    expect(await card.locator('.report.bad pre').textContent()).toBe(message)
    // Red, and in a monospace face: the one thing on the page a person must not miss.
    const where = await card.locator('.where').evaluate((el) => {
      // Runs in the page (tsconfig has no DOM lib).
      const style = (globalThis as unknown as { getComputedStyle(e: unknown): { color: string; fontFamily: string } }).getComputedStyle(el)
      return { color: style.color, font: style.fontFamily }
    })
    const [r, g, b] = (where.color.match(/\d+/g) ?? []).map(Number) as [number, number, number]
    expect(r).toBeGreaterThan(150)
    expect(g + b).toBeLessThan(r)
    expect(where.font).toMatch(/mono/i)
    // The failing device is listed first.
    expect(await page.locator('.device').first().getAttribute('data-remote')).toBe(PHONE)
    expect(await page.locator(`.device[data-remote="${PC}"] .report.ok`).textContent()).toMatch(/reloaded 1 file in 6 ms/)
    await page.screenshot({ path: await artifactPath('status-page-error.png'), fullPage: true })

    tracker.clientReport(PHONE, { ok: true, paths: ['scripts/main.lua'], ms: 5 })
    await banner.waitFor({ state: 'detached' })
    expect(await card.locator('.report.ok').textContent()).toMatch(/reloaded 1 file in 5 ms/)
    expect(await card.getAttribute('class')).not.toContain('failing')
    await page.screenshot({ path: await artifactPath('status-page.png'), fullPage: true })
    expect(dialogs).toBe(0)
  })

  it('fits a narrow window without sideways scrolling', async () => {
    for (const width of [1280, 900, 420]) {
      await page.setViewportSize({ width, height: 860 })
      expect([width, await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')]).toEqual([width, true])
    }
    await page.screenshot({ path: await artifactPath('status-page-narrow.png'), fullPage: true })
    await page.setViewportSize({ width: 1280, height: 860 })
  })

  it('drops a device that disconnects', async () => {
    tracker.clientDisconnected(PC)
    await page.locator(`.device[data-remote="${PC}"]`).waitFor({ state: 'detached' })
    expect(await page.locator('#ndev').textContent()).toBe('1')
  })
})
