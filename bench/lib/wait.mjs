// Polling with a deadline: the one implementation, used by the bench and (through
// test/helpers/common.ts) by the tests. Plain JS so the bench runs it without a build step; the
// types are in wait.d.mts.

/**
 * Polls `cond` (sync or async) every `everyMs` (a number, or in `options`; default 10) until it
 * returns something truthy, and resolves with that; rejects naming `what` (and `detail()`, when
 * given) after `ms`.
 */
export async function waitFor(cond, ms, what, options = {}) {
  const opts = typeof options === 'number' ? { everyMs: options } : options
  const end = Date.now() + ms
  for (;;) {
    const v = await cond()
    if (v) return v
    if (Date.now() > end) {
      let detail = ''
      if (opts.detail) {
        try {
          detail = `\n${String(await opts.detail())}`
        } catch (err) {
          detail = `\n(detail failed: ${String(err)})`
        }
      }
      throw new Error(`timed out after ${ms} ms waiting for ${what}${detail}`)
    }
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 10))
  }
}
