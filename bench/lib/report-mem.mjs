// Preload (node --import) for memory figures of a process the bench does not control:
//  - samples process.memoryUsage() every 50 ms and keeps the maximum of each field; also reports
//    process.cpuUsage() (user + system seconds);
//  - writes {hwmKiB, rssKiB (from /proc/self/status), now: memoryUsage(), max: {...}} as JSON to
//    $BENCH_MEM_FILE at exit, and also whenever it gets SIGUSR2 (for long-lived servers);
//  - with $BENCH_HEAP_FILE, runs V8's sampling heap profiler from the start and, on SIGUSR2,
//    writes what is live *then* as a .heapprofile (`node --heap-prof` only writes at exit, after
//    the server has closed and freed its index).
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'

const heapFile = process.env.BENCH_HEAP_FILE
if (heapFile) {
  const session = new Session()
  session.connect()
  session.post('HeapProfiler.startSampling', { samplingInterval: 32768 })
  process.on('SIGUSR2', () => {
    session.post('HeapProfiler.stopSampling', (err, r) => {
      if (!err) writeFileSync(heapFile, JSON.stringify(r.profile))
    })
  })
}

/**
 * CPU seconds (utime + stime) of this process's threads by name (/proc/self/task/<tid>/comm):
 * the main thread ("node"), libuv's thread pool, V8's GC and compiler workers, worker threads ("main" is the main thread). Threads that already exited are not listed.
 */
function threadCpu() {
  const out = {}
  // Unnamed threads ("node") in creation order: V8's platform workers (GC helpers, compiler) are
  // made at start-up, libuv's thread pool on the first file-system call; so node#1-4 are V8's,
  // the later ones the pool's (UV_THREADPOOL_SIZE, default 4).
  let unnamed = 0
  for (const tid of readdirSync('/proc/self/task').sort((x, y) => Number(x) - Number(y))) {
    try {
      const st = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ')
      const comm = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim()
      const name = Number(tid) === process.pid ? 'main' : comm === 'node' ? (++unnamed <= 4 ? 'v8-workers' : 'libuv-pool') : comm
      out[name] = Math.round(((out[name] ?? 0) + (Number(f[11]) + Number(f[12])) / 100) * 100) / 100
    } catch { /* the thread ended */ }
  }
  return out
}

const file = process.env.BENCH_MEM_FILE
if (file) {
  const max = {}
  const sample = () => {
    for (const [k, v] of Object.entries(process.memoryUsage())) if (!(max[k] >= v)) max[k] = v
  }
  setInterval(sample, 50).unref()
  const dump = () => {
    try {
      sample()
      const s = readFileSync('/proc/self/status', 'utf8')
      const kib = (k) => Number((new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s) ?? [])[1] ?? NaN)
      const c = process.cpuUsage()
      writeFileSync(file, JSON.stringify({ hwmKiB: kib('VmHWM'), rssKiB: kib('VmRSS'), cpuS: (c.user + c.system) / 1e6, threads: threadCpu(), now: process.memoryUsage(), max }))
    } catch { /* best effort */ }
  }
  process.on('exit', dump)
  process.on('SIGUSR2', dump)
}
