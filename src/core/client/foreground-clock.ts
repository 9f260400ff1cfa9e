/**
 * The default clock of the client's own timers (watch's reconnect backoff, the hook timeout):
 * real time, like `systemClock`, but its timers keep the process alive. `systemClock`'s are
 * unref()'d, which is right for background timers (keepalives); a reconnect delay, though, may be
 * the only thing a `watch` waits for between two connections, and Node would exit in the middle
 * of it. Tests inject a `ManualClock` instead (src/protocol/clock.ts).
 */
import type { Clock } from '../../protocol/clock.js'

export const foregroundClock: Clock = {
  now: () => Date.now(),
  every(ms, fn) {
    const t = setInterval(fn, ms)
    return () => clearInterval(t)
  },
  after(ms, fn) {
    const t = setTimeout(fn, ms)
    return () => clearTimeout(t)
  },
}
