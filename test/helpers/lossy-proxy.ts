/**
 * A userspace UDP fault injector for tests (the kernel here has no netem): a proxy on
 * 127.0.0.1:<ephemeral> that forwards datagrams between its clients and one target, and can drop,
 * delay, jitter, reorder and duplicate them in both directions. The implementation is
 * bench/lib/lossy-proxy.mjs (plain JS, so the bench runs the same proxy without a build step);
 * its types are in bench/lib/lossy-proxy.d.mts. See there for how it works.
 *
 * Usage:
 *   const proxy = await startLossyProxy({ target: { host: '127.0.0.1', port }, loss: 0.1, seed: 7 })
 *   dial({ host: proxy.host, port: proxy.port, ... })
 *   ...
 *   console.log(proxy.counters)
 *   await proxy.close()
 */
export { mulberry32, startLossyProxy } from '../../bench/lib/lossy-proxy.mjs'
export type { DatagramFilter, Direction, Impairments, LossyProxy, LossyProxyCounters, LossyProxyOptions } from '../../bench/lib/lossy-proxy.mjs'
