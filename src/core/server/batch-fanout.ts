/**
 * The fan-out of one change batch with its matching work bounded (issue 12): the same plan as
 * `fanOut` (changes.ts), computed entry by entry in slices of the server's MatchScheduler (the
 * first slice at once, so a small batch is pushed without delay), with each client's share of
 * the work held to the average-cost rule (MATCH_STEPS_PER_CHAR). A client whose subscriptions
 * break it is handed to `overspent` (the server closes it) and left out of the rest.
 */
import type { UpdateEntry } from '../../protocol/messages.js'
import { type ChangeSummary, type FanOut, fanOut } from './changes.js'
import { type MatchScheduler, MatchWork } from './match-work.js'
import type { Subscriptions } from './subscriptions.js'

export async function fanOutInSlices<C>(
  entries: readonly UpdateEntry[], subs: Subscriptions<C>, scheduler: MatchScheduler, overspent: (client: C) => void,
): Promise<FanOut<C>> {
  const perClient = new Map<C, UpdateEntry[]>()
  const changes: ChangeSummary[] = []
  const works = new Map<C, MatchWork>()
  const workOf = (c: C): MatchWork => {
    let w = works.get(c)
    if (!w) works.set(c, (w = new MatchWork(() => subs.workOf(c))))
    return w
  }
  for (const c of subs.clients()) workOf(c)
  const all = new MatchWork(() => subs.work, scheduler.stats)
  const dropped = new Set<C>()
  for (const e of entries) {
    const one = fanOut([e], (p) => subs.subscribers(p))
    changes.push(...one.changes)
    for (const [c, list] of one.perClient) {
      if (dropped.has(c)) continue
      let mine = perClient.get(c)
      if (!mine) perClient.set(c, (mine = []))
      mine.push(...list)
    }
    for (const c of subs.clients()) {
      const w = workOf(c)
      w.examined(e.path)
      if (e.kind === 'rename') w.examined(e.from)
      if (w.overspent) {
        dropped.add(c)
        perClient.delete(c)
        scheduler.stats.subscribersClosed++
        overspent(c) // closes it: it leaves `subs`
      }
    }
    if (all.examined(e.path)) {
      await scheduler.turn(true)
      all.nextSlice()
    }
  }
  all.end()
  return { changes, perClient }
}
