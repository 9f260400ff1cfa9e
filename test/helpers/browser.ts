/**
 * A real browser for the page tests: Debian's chromium (apt-get install chromium; .ci/run does it
 * when missing) driven by playwright-core through executablePath. No browser download is possible
 * here, so without chromium the tests skip, and say why, loudly.
 */
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type BrowserContext, chromium } from 'playwright-core'
import { PROJECT_ROOT } from './cli.js'

/** The chromium binary: $ASSETSYNC_CHROMIUM, else Debian's /usr/bin/chromium. */
export const CHROMIUM_PATH = process.env.ASSETSYNC_CHROMIUM ?? '/usr/bin/chromium'

/** Where tests keep screenshots (gitignored; CI may upload it). */
export const ARTIFACTS_DIR = join(PROJECT_ROOT, 'test-artifacts')

/** Null when chromium is there; otherwise why the browser tests are skipped. */
export function browserSkipReason(): string | null {
  if (existsSync(CHROMIUM_PATH)) return null
  return `SKIPPED: no chromium at ${CHROMIUM_PATH}. Install it with "apt-get install -y chromium" (.ci/run does this when it can), `
    + 'or point ASSETSYNC_CHROMIUM at a chromium binary. playwright-core cannot download a browser here.'
}

/** Prints the skip reason where a person running the tests sees it. */
export function warnIfSkipped(): boolean {
  const why = browserSkipReason()
  if (why) console.warn(`\n${'!'.repeat(100)}\n  browser test ${why}\n${'!'.repeat(100)}\n`)
  return why !== null
}

export interface Browser {
  context: BrowserContext
  close(): Promise<void>
}

/** Flags for a quiet, sandbox-less headless chromium in a container (no GPU, no phoning home). */
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
]

/** Launches chromium with a fresh profile folder (removed on close). */
export async function launchBrowser(viewport = { width: 1280, height: 860 }): Promise<Browser> {
  const profile = await mkdtemp(join(tmpdir(), 'assetsync-chromium-'))
  // launchPersistentContext is how playwright takes --user-data-dir: a fresh one per test run.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    timeout: 60_000,
  })
  return {
    context,
    async close() {
      await context.close()
      await rm(profile, { recursive: true, force: true })
    },
  }
}

/** A path for a screenshot named `name` under test-artifacts/ (the folder is made). */
export async function artifactPath(name: string): Promise<string> {
  await mkdir(ARTIFACTS_DIR, { recursive: true })
  return join(ARTIFACTS_DIR, name)
}
