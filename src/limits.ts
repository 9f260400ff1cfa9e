/**
 * Every limit, size and timeout of assetsync, in one place. Tests import these; docs/protocol.md
 * lists them. Change a value here and nowhere else.
 */

/** The port `serve` listens on and clients dial when none is given. */
export const DEFAULT_PORT = 7420

const KiB = 1024
const MiB = 1024 * KiB

// --- framing -----------------------------------------------------------------------------
/** File payload per CHUNK frame. */
export const CHUNK_SIZE = 64 * KiB
/**
 * File bytes the server reads at once for one transfer's turn of the round robin, then sends as
 * CHUNK_SIZE frames: 4× fewer threadpool reads than one per chunk, and a small file still waits
 * at most one such turn per other transfer (~3 ms at 80 MiB/s).
 */
export const SERVER_READ_BYTES = 256 * KiB
/** Read buffers shared by all of a server's transfers: its read memory is at most this × SERVER_READ_BYTES. */
export const SERVER_READ_BUFFERS = 16
/** Largest frame either side accepts; larger frames end the connection (ERR_PROTOCOL). */
export const MAX_FRAME_BYTES = 1 * MiB
/** Bytes of manifest entries the server packs into one MANIFEST_REPLY page. */
export const MANIFEST_PAGE_BYTES = 256 * KiB
/** Files a client accepts in one manifest (all pages); a server sending more is refused. */
export const MAX_MANIFEST_FILES = 5_000_000
/**
 * Flow control: CHUNK data bytes a server may send beyond what the client has consumed (written
 * to disk). The client's memory for received file data is bounded by this, on both transports:
 * udx-native ignores pause(), so without it a 2 GiB UDP pull buffered 239 MB (docs/benchmarks.md).
 */
export const FLOW_WINDOW_BYTES = 8 * MiB
/** The client returns consumed bytes as CREDIT once this many have piled up (< window - chunk). */
export const CREDIT_UPDATE_BYTES = 1 * MiB
/** Entries of one UPDATE frame; bigger batches are split over several frames. */
export const MAX_UPDATE_ENTRIES = 1024

// --- names ---------------------------------------------------------------------------------
/** A wire path, in UTF-8 bytes. */
export const MAX_PATH_BYTES = 1024
/** Segments of a wire path. */
export const MAX_PATH_DEPTH = 64
/** Patterns in one SUBSCRIBE or MANIFEST request. */
export const MAX_PATTERNS = 64
/** One glob pattern, in UTF-8 bytes. */
export const MAX_PATTERN_BYTES = 1024
/** The access token, in UTF-8 bytes. */
export const MAX_TOKEN_BYTES = 256
/** Human text in ERROR / RESPONSE frames, in UTF-8 bytes. */
export const MAX_TEXT_BYTES = 1024
/** The code string of an ERROR frame (e.g. "ERR_LIMIT"), in UTF-8 bytes. */
export const MAX_ERROR_CODE_BYTES = 64

// --- connections -----------------------------------------------------------------------------
/** Connections one server holds at once; more get a "server full" refusal. */
export const MAX_CLIENTS = 4096
/** Requests one client may have open at once; more get ERR_LIMIT for that request. */
export const MAX_INFLIGHT_PER_CLIENT = 256
/**
 * (pattern, instance id) pairs one connection may hold subscribed; a SUBSCRIBE that would go past
 * it gets ERR_LIMIT and changes nothing. Each pattern costs the server a compiled matcher (up to
 * ~27 KiB for a 1 KiB pattern): without a cap one client held 1.7 GiB with 1000 SUBSCRIBE frames.
 */
export const MAX_SUBSCRIPTIONS_PER_CLIENT = 256
/**
 * Transfers a client runs at once (pull, watch). Each is a request/response round trip, so with
 * small files this is the window: 8 gave 230–260 files/s over a 20 ms RTT link, 32 gave 390–430
 * (docs/benchmarks.md); on loopback it makes no difference. Bytes in flight stay bounded by the
 * flow-control window, whatever the count.
 */
export const CLIENT_PARALLEL_TRANSFERS = 32
/** Local files a client checks (stat, cached or fresh hash) at once before deciding what to fetch. */
export const CLIENT_PARALLEL_CHECKS = 32
/**
 * A received file up to this size (one CHUNK) is written to its temp file with a synchronous
 * write (microseconds, no thread-pool round trip); larger files use async writes, so a slow disk
 * never blocks the event loop for long.
 */
export const SMALL_FILE_BYTES = 64 * KiB
/**
 * Folders read per event-loop turn when a pull or watch start sweeps its mirror for temp files a
 * killed run left (client/local-writes.ts removeTempFiles; synchronous readdirs of microseconds
 * each): the connection's packets wait at most one slice.
 */
export const TEMP_SWEEP_SLICE = 256

// --- timers (milliseconds) -------------------------------------------------------------------
/** A PING goes out when nothing else was sent for this long. */
export const KEEPALIVE_MS = 1000
/**
 * A peer we have heard nothing from for this long (frames, or over UDP any udx packet, ACKs
 * included) is gone: a vanished peer (cable pulled) is noticed after this plus one tick. It must
 * exceed the longest stall a live peer may have (a game loading a level, a starved box: 10 s,
 * issue 14) plus a keepalive interval; a killed peer is noticed much sooner (SUSPECT_MS).
 * Configurable (`--idle-timeout`, `idleTimeoutMs`) up to MAX_IDLE_TIMEOUT_MS.
 */
export const IDLE_TIMEOUT_MS = 15_000
/** The connection's single timer ticks this often. */
export const TIMER_TICK_MS = 250
/** A request with no reply frame for this long fails with ERR_TIMEOUT (configurable). */
export const REQUEST_TIMEOUT_MS = 30_000
/** Handshake (cookie, Noise, auth) must finish within this (configurable, `--timeout`). */
export const CONNECT_TIMEOUT_MS = 10_000
/** First HELLO retransmit; doubles up to HANDSHAKE_RETRY_MAX_MS. */
export const HANDSHAKE_RETRY_MS = 200
export const HANDSHAKE_RETRY_MAX_MS = 2000
/** A cookie is valid in the time bucket it was made in and the next one. */
export const COOKIE_BUCKET_MS = 10_000
/** Grace for a clean close (FIN exchange) before the stream is destroyed. */
export const CLOSE_GRACE_MS = 2000

// --- UDP handshake -----------------------------------------------------------------------------
/** HELLO datagrams are padded to at least this, so no reply before the cookie is larger. */
export const HELLO_MIN_BYTES = 128
/** Kernel receive/send buffer asked for on every UDP socket. */
export const SOCKET_BUFFER_BYTES = 4 * MiB
/**
 * HELLOs answered per source address per second; more are dropped silently. Each connect takes two,
 * so one host (or NAT) opens up to ~250 connections a second; a TCP connect counts as two as well.
 */
export const HANDSHAKE_RATE_PER_ADDR = 500

// --- connection guard: handshake slots, failed authentication (issue 12) ----------------------
/**
 * Connections in their handshake (Noise, then AUTH) one server holds at once, counted apart from
 * the MAX_CLIENTS authenticated ones. When the pool is full a new connection takes the slot of the
 * stalest one (silent the longest, from the source holding the most slots): idle sockets cannot
 * keep a client out, they only make room for it. A connection costs 21–55 KiB here (TCP, UDP), so
 * the pool holds at most ~55 MiB.
 */
export const MAX_PREAUTH_CONNECTIONS = 1024
/**
 * Handshakes from one source address (an IPv6 /64) at once; past it that source's stalest one
 * gives way. A quarter of the pool: a host (or a NAT) of legitimate clients connecting at once
 * still fits, and one attacking host never holds more than a quarter.
 */
export const MAX_PREAUTH_PER_ADDR = 256
/**
 * A new connection must finish Noise and AUTH within this (ServeEndpointOptions.connectTimeoutMs),
 * or it is closed. Three round trips and an AUTH take well under a second even over lossy Wi-Fi;
 * the client's own budget (CONNECT_TIMEOUT_MS) stays longer.
 */
export const PREAUTH_TIMEOUT_MS = 5000
/**
 * After a wrong token, the next AUTH from the same source address is checked no sooner than this;
 * each further failure doubles the wait, up to AUTH_FAILURE_DELAY_MAX_MS. An AUTH that would wait
 * past its handshake deadline is answered at once, unchecked: "access token rejected" (exit 4).
 */
export const AUTH_FAILURE_DELAY_MS = 500
/** Longest wait between two token checks from one address: one guess a minute, in the long run. */
export const AUTH_FAILURE_DELAY_MAX_MS = 60_000
/** An address's failures are forgotten after this long without a new one (or at its next success). */
export const AUTH_FAILURE_FORGET_MS = 15 * 60_000
/** Addresses whose failures (or recent successes) are remembered; past it the oldest are dropped. */
export const AUTH_FAILURE_ADDRESSES = 4096
/**
 * Wrong tokens the whole server checks per second (a token bucket of this size, refilled at this
 * rate): many source addresses together guess no faster. While the bucket is empty, AUTHs from
 * addresses without a recent success wait (ERR_LIMIT "server busy" past their deadline); a correct
 * token costs nothing from it, so a fleet of clients reconnecting at once is never slowed.
 */
export const AUTH_FAILURES_PER_SEC = 10
/** `serve` warns ('auth-failures' event) when one address reaches this many failures in a row, and at each doubling. */
export const AUTH_FAILURE_WARN_COUNT = 5
/** The server-wide warning (the failure bucket ran dry) is repeated at most this often. */
export const AUTH_FAILURE_WARN_MS = 10_000

// --- pattern work and memory per connection (issue 12) ----------------------------------------
/**
 * Average match work (PatternSet.steps, plus one per path) per path character that a MANIFEST
 * request, or one connection's subscriptions over one change batch, may spend beyond a first
 * MANIFEST_PAGE_MATCH_STEPS (the DFA cache warming up). A warm set costs about 1 a character; a
 * set that keeps missing its DFA cache on this server's paths costs up to 4 × its width and is
 * refused: ERR_LIMIT for that MANIFEST, the connection closed for subscriptions.
 */
export const MATCH_STEPS_PER_CHAR = 16
/**
 * Match work the server does for clients in one event-loop turn (core/server/match-work.ts): a
 * MANIFEST scan, a compile or a batch fan-out goes on in its next turn, after whatever I/O
 * arrived. Steps are not all alike: a warm DFA step costs ~10 ns, a step that builds a DFA state
 * ~250 ns here, so a slice holds the loop for 2–50 ms.
 */
export const MATCH_SLICE_STEPS = 200_000
/** Compiled MANIFEST pattern sets a connection keeps for its next pages (least recently used dropped first). */
export const MANIFEST_CACHED_SETS = 4
/**
 * DFA cache cells (PATTERN_DFA_CACHE_CELLS) of a pattern set the server compiles for a client
 * (MANIFEST, SUBSCRIBE): ~192 KiB at most, a quarter of the default, so a connection's sets fit
 * its memory budget. A set that needs more states than that keeps rebuilding them, costing steps
 * (MATCH_STEPS_PER_CHAR), not memory.
 */
export const SERVER_SET_DFA_CELLS = 16_384
/**
 * Server memory one connection may hold, in bytes: its compiled subscription set and cached
 * MANIFEST sets (charged at what they can grow to), in-flight requests and queued outgoing
 * frames. A request that would go past it gets ERR_LIMIT; queued frames past it (a client that
 * does not read its UPDATEs) close the connection. Room for the largest subscription set
 * (~1.1 MiB) and MANIFEST set (~0.7 MiB), every in-flight request and several MiB of frames.
 */
export const CONNECTION_MEMORY_BYTES = 8 * MiB
/**
 * All connections' charges together (CONNECTION_MEMORY_BYTES each). Past it new pattern sets
 * and requests get ERR_LIMIT, and queued frames close the connection that holds the most. Bounds
 * the server's RSS under MAX_CLIENTS hostile connections (docs/security.md, "Memory").
 */
export const SERVER_MEMORY_BYTES = 512 * MiB

// --- watching and hooks ------------------------------------------------------------------------
/**
 * Default quiet time before a changed file is announced (`serve --settle`), judged by the file's
 * mtime: a writer pausing for less than this between pieces is never announced half-way. 10 ms
 * (20 before issue 15, Watchman's default): twice the 5 ms pause of the hot-reload bench's split
 * writes, which it passes with no torn delivery; it was half of save → mirrored (docs/benchmarks.md).
 */
export const SETTLE_MS = 10
/**
 * Quiet time an *empty* changed file needs before it is announced (unless the settle time is 0):
 * a save that truncates first (writeFile, most in-place writers) leaves the file empty until its
 * first write, and on a busy machine that write came more than SETTLE_MS later (a hook saw an
 * empty file). A file really saved empty is announced this much later; no other file waits.
 */
export const SETTLE_EMPTY_MS = 60
/**
 * At most this much is added to the quiet time on a busy machine: as late as the watcher's own
 * timers fire (halving every second), since a writer is descheduled as long between the pieces
 * of a save. 0 on an idle machine.
 */
export const SETTLE_LAG_MAX_MS = 100
/**
 * Every changed path is looked at once more this long after its last event, in case a write
 * raised no event of its own (inotify merges events; chokidar's per-file watcher, used before,
 * dropped 'change' events within 50 ms of another).
 */
export const WATCH_TRAILING_CHECK_MS = 60
/** A hook still running after this long is killed and reported as timed out. */
export const HOOK_TIMEOUT_MS = 60_000
/**
 * Paths (bytes, newline-joined) a batch may hand to the hook process parked ahead of time; a
 * bigger batch starts a new process. The parked shell's `read` takes a syscall per byte and joins
 * quadratically: 256 B cost 0.3 ms here, 2 KiB 4 ms, 4 KiB 7.5 ms; a new process 10–15 ms.
 */
export const HOOK_WARM_MAX_PATH_BYTES = 2048
/**
 * After a hook exits, how long to wait for the rest of its stderr (kept for its reload report) if
 * the pipe is still open: a background process it started may hold it open for good.
 */
export const HOOK_STDERR_GRACE_MS = 100
/** Reconnect backoff of watch, run and LiveMirror (one policy, core/client/retry.ts): full jitter between 0 and min(cap, base * 2^attempt). */
export const RECONNECT_BASE_MS = 250
export const RECONNECT_MAX_MS = 5000

// --- liveness (issue 14: never lose a device) ---------------------------------------------------
/** The largest idle timeout `--idle-timeout` accepts: the seed's 30 s, the upper bound for noticing a vanished peer. */
export const MAX_IDLE_TIMEOUT_MS = 30_000
/**
 * A tick that comes this much later than scheduled means our own event loop was stalled (a GC
 * pause, a long synchronous job, a starved CPU, SIGSTOP). The stall does not count as the peer's
 * silence, and nothing is judged on that tick: libuv runs timers before it polls the sockets, so
 * what the peer sent meanwhile is still unread (issue 14's reset under load).
 */
export const LATE_TICK_MS = 500
/**
 * Over UDP, a peer silent for this long is suspect: the connection sends PORT_PROBE_INTERVAL_MS
 * probes to its address from a connected socket, and an ICMP port-unreachable (the peer's
 * process is gone, its port closed) ends the connection at once. A stopped or busy process still
 * has its port, so it draws no ICMP and is waited for until IDLE_TIMEOUT_MS.
 */
export const SUSPECT_MS = 2000
/** How often a suspect UDP peer's port is probed. */
export const PORT_PROBE_INTERVAL_MS = 500
/** Port probes (one connected UDP socket each) a process runs at once; more suspects wait for the idle timeout. */
export const MAX_PORT_PROBES = 256

// --- pull ----------------------------------------------------------------------------------------
/** Connections a pull tries when one is lost mid-way (e.g. a reset stream); it resumes by hash. */
export const PULL_ATTEMPTS = 3

// --- observability (serve --http, /status, project file) -------------------------------------
/** Change batches /status (and the page) keeps, newest first. */
export const STATUS_BATCHES = 50
/** Paths one batch keeps in /status; the rest are only counted (`changeCount`). */
export const STATUS_BATCH_PATHS = 100
/** Device names (remotes) one batch keeps as recipients in /status; the rest are only counted. */
export const STATUS_BATCH_RECIPIENTS = 64
/** Live-page (`/events`) connections one HTTP listener serves at once; more get 503. */
export const HTTP_SSE_MAX_CLIENTS = 32
/**
 * Shortest gap between two snapshots pushed to the live page: a burst of changes (a git checkout)
 * becomes one push, not hundreds of full snapshots per client.
 */
export const HTTP_SSE_THROTTLE_MS = 200
/** A comment line goes to each live page this often, so proxies and browsers keep the stream. */
export const HTTP_SSE_KEEPALIVE_MS = 15_000
/** An HTTP request must send its headers within this, or the socket is closed (slowloris). */
export const HTTP_HEADERS_TIMEOUT_MS = 10_000
/** Request header bytes the HTTP listener accepts (Node's own default, stated). */
export const HTTP_MAX_HEADER_BYTES = 16 * KiB
/** Largest project file (assetsync.json) read; a bigger one is a usage error. */
export const CONFIG_MAX_BYTES = 1 * MiB

// --- client sinks and retries (rooms and seams) ------------------------------------------------
/** Attempts of one download on one connection when the file changed mid-transfer or failed its hash. */
export const DOWNLOAD_ATTEMPTS = 3
/**
 * Largest file `AssetClient.read` takes into memory (a bigger announced size is refused with
 * ERR_LIMIT before any byte arrives); callers may pass a lower or higher cap.
 */
export const MAX_READ_BYTES = 64 * MiB
// --- runtime (the Lua host, `assetsync run`) ----------------------------------------------------
/** `update(dt)` calls per second when `--tick` is not given. */
export const DEFAULT_TICK_HZ = 60
/** Highest `--tick` accepted: above it the timer, not the script, sets the pace. */
export const MAX_TICK_HZ = 1000
/**
 * Fetches a local asset provider runs at once; the rest wait in two lanes, `blocking` (a script
 * stopped on `require`/`load_asset`) served before `background` (the `_async` calls), so a
 * blocking require never queues behind a bulk of `load_asset_async` downloads.
 */
export const RUNTIME_PARALLEL_FETCHES = 8
/** Read buffer of one file a Lua script opened with `io.open` (one bridge call per this much). */
export const LUA_READ_BUFFER_BYTES = 64 * KiB
/** A numeral `file:read("n")` reads at most (Lua's own L_MAXLENNUM). */
export const LUA_MAX_NUMERAL_CHARS = 200
// --- patterns ------------------------------------------------------------------------------------
// Globs (pull/watch selections, MANIFEST/SUBSCRIBE, serve --ignore) compile to one automaton per
// pattern set (src/core/fs/glob, docs/patterns.md). Matching never backtracks: a path costs at
// most (states × path length) steps. These caps bound compile time, memory and match work; a set
// over a cap is refused with ERR_LIMIT. MAX_PATTERNS and MAX_PATTERN_BYTES (above) cap the input.
/**
 * Alternatives one pattern's braces may expand to (`{a,b}{c,d}` is 4, `{1..300}` is 300). Counted
 * before anything is built: `{f,g}` 73 times (2^73) is refused at once.
 */
export const PATTERN_MAX_EXPANSIONS = 256
/**
 * Automaton states of one pattern set: about one per pattern character after brace expansion
 * ('a'.repeat(1023) is 1024; a `*` is 2, a `**\/` 4, a trailing `/**` 5). Bounds compile time
 * and memory (~22 bytes a state): room for a connection's 256 subscriptions of 60-character paths.
 */
export const PATTERN_SET_MAX_STATES = 16_384
/**
 * Width of one pattern set: how many automaton states can be active at once, which bounds the
 * work per path character. Each brace alternative counts 2, plus all its states from its first
 * `*` or `**\/` on (text before that is matched one state at a time). `**\/*.psd` is 13,
 * `textures/**` 2. Worst case per path: width × path length steps.
 */
export const PATTERN_SET_MAX_WIDTH = 2048
/**
 * Cells (4 bytes each) of one pattern set's DFA cache: cached states × alphabet width + the NFA
 * states each holds. When full the cache is dropped and rebuilt as paths need it: memory stays
 * bounded, matching stays linear.
 */
export const PATTERN_DFA_CACHE_CELLS = 65_536
/**
 * Match work (steps, as PatternSet.steps counts them) one MANIFEST page may spend filtering the
 * index; the page is cut there, done = false. About 10 ms here.
 */
export const MANIFEST_PAGE_MATCH_STEPS = 2_000_000

// --- delta (content-defined chunks, dedup, resume, compression; src/core/delta) ---------------
/**
 * FastCDC chunk sizes. A cut is never made before DELTA_MIN_CHUNK_BYTES (bytes before it are not
 * even hashed: much of the speed), is likelier past the normal point DELTA_AVG_CHUNK_BYTES, and
 * is forced at DELTA_MAX_CHUNK_BYTES. Chunks average ~76 KiB (docs/delta.md has the
 * measurements): a 64 MiB file has ~860 chunks, a 30 KiB chunk list; a 1-byte edit costs one
 * chunk, rarely two.
 * Changing any of these changes every boundary: it needs a new chunker id (chunk-list.ts).
 */
export const DELTA_MIN_CHUNK_BYTES = 16 * KiB
/** The normal point of normalized chunking (a power of two): the strict mask before it, the loose one after. */
export const DELTA_AVG_CHUNK_BYTES = 64 * KiB
/**
 * The forced cut. 192 KiB rather than 256: the chunk an edit lands in is size-biased, and at 256
 * its 99th percentile plus the list was 260 KiB for a 64 MiB file (192: 222 KiB), with no change
 * in how boundaries re-synchronize (forced cuts are ~1 % of chunks).
 */
export const DELTA_MAX_CHUNK_BYTES = 192 * KiB
/**
 * Chunks one chunk list may have (a decoder refuses more). 2^20 chunks cover any file up to
 * 16 GiB whatever its content (every chunk but the last is ≥ 16 KiB) and ~64 GiB typically; a
 * list this long is 36 MiB encoded and ~44 MiB in memory. Larger files are sent whole.
 */
export const DELTA_MAX_LIST_CHUNKS = 1_048_576
/** The persistent chunk-list cache file keeps at most this many bytes of lists (least recently used go first). */
export const DELTA_LIST_CACHE_BYTES = 64 * MiB
/** Bytes read at once while chunking a file or copying local chunks into a new version. */
export const DELTA_READ_BYTES = 1 * MiB
/**
 * zstd: the largest window a received frame may declare. Decoding allocates the window, so a
 * 20-byte frame declaring 128 MiB would cost 128 MiB. Level 1 declares 512 KiB, level 3 2 MiB,
 * levels up to 19 at most 8 MiB (the stream encoder does not know the chunk's size).
 */
export const DELTA_ZSTD_MAX_WINDOW_BYTES = 8 * MiB
/** zstd: bytes compressed as a sample to decide whether a chunk is worth compressing at all. */
export const DELTA_ZSTD_SAMPLE_BYTES = 4 * KiB
/**
 * zstd: after a REQUEST's piece that did not compress, that file is tried again only once this
 * many of its bytes (the tried piece included) have gone, the rest raw untried: an incompressible
 * file costs one sample per MiB, whatever its piece size (CHUNK_SIZE, or BACKGROUND_FRAME_BYTES
 * for background transfers). A file that changes kind mid-way is tried again a MiB later.
 */
export const ZSTD_RETRY_BYTES = 1 * MiB
/** Resume: an interrupted download is kept for the next attempt only from this size on. */
export const DELTA_STAGE_MIN_BYTES = 4 * MiB
/** Resume: staged partial downloads kept per mirror folder (the oldest go first). */
export const DELTA_STAGE_MAX_FILES = 16
/** Resume: bytes of staged partial downloads kept per mirror folder (the oldest go first). */
export const DELTA_STAGE_MAX_BYTES = 4 * 1024 * MiB
/** Resume: a staged partial download older than this is removed, not offered. */
export const DELTA_STAGE_MAX_AGE_MS = 7 * 24 * 3600 * 1000

// --- scale-out (S3-compatible chunk store, NATS feed, edges; src/core/scale, docs/scale-out.md) ---
/** Object-store requests one origin (uploads) or one edge (downloads) runs at once. */
export const SCALE_S3_PARALLEL = 16
/**
 * One object-store request gives up after this long (per attempt): a stalled connection to the
 * bucket must not hold a transfer forever.
 */
export const SCALE_S3_REQUEST_TIMEOUT_MS = 15_000
/**
 * An object-store operation is retried with jittered exponential backoff (SCALE_S3_RETRY_BASE_MS
 * doubling, at most SCALE_S3_RETRY_MAX_MS apart) until this much time has passed since its first
 * attempt: a bucket that is away for a few seconds costs a pause, not a failed pull. Stays well
 * under REQUEST_TIMEOUT_MS, so a client waiting on an edge sees an answer first.
 */
export const SCALE_S3_RETRY_BUDGET_MS = 20_000
/** First backoff of an object-store retry (then doubling, with ±50 % jitter). */
export const SCALE_S3_RETRY_BASE_MS = 100
/** Longest backoff between two object-store attempts. */
export const SCALE_S3_RETRY_MAX_MS = 2_000
/** Largest manifest object read from a bucket (~100 bytes an entry: room for MAX_MANIFEST_FILES of short paths). */
export const SCALE_MAX_MANIFEST_BYTES = 512 * MiB
/** Largest HEAD object read from a bucket (a few hundred bytes of JSON). */
export const SCALE_MAX_HEAD_BYTES = 4 * KiB
/**
 * Largest change message put on NATS (its default max_payload is 1 MiB). A batch whose UPDATE
 * frames do not fit goes without entries: edges then diff the two manifests themselves.
 */
export const SCALE_FEED_MESSAGE_BYTES = 512 * KiB
/** How long JetStream keeps change messages; an edge away for longer catches up from HEAD. */
export const SCALE_FEED_MAX_AGE_MS = 7 * 24 * 3600 * 1000
/** Change messages JetStream keeps at most (the oldest go first); older history comes from HEAD. */
export const SCALE_FEED_MAX_MSGS = 100_000
/**
 * How long JetStream waits for an edge to acknowledge a change message before it delivers it
 * again (the edge keeps a message it is still installing alive at half this). It bounds how long
 * the feed stalls when a NATS server that crashed lost the edge's last acknowledgement: with one
 * message in flight, nothing after it is delivered until it is redelivered (and skipped as old).
 */
export const SCALE_FEED_ACK_WAIT_MS = 5_000
/** How long a publish to JetStream, and the first connect to NATS, may take before it fails (and is retried). */
export const SCALE_FEED_TIMEOUT_MS = 5_000
/** JetStream drops a change message published again with the same id within this window (a retried publish). */
export const SCALE_FEED_DUPLICATE_WINDOW_MS = 120_000
/** Wait between reconnect attempts to NATS (plus up to SCALE_FEED_RECONNECT_JITTER_MS). */
export const SCALE_FEED_RECONNECT_MS = 250
/** Random extra wait per NATS reconnect attempt, so many edges do not reconnect in step. */
export const SCALE_FEED_RECONNECT_JITTER_MS = 100
/** NATS ping interval; two unanswered pings in a row end the connection (and start reconnecting). */
export const SCALE_FEED_PING_MS = 2_000
/** A change message an edge failed to install is delivered again after this. */
export const SCALE_FEED_RETRY_MS = 1_000
/** How long closing waits for NATS to flush what is queued before it closes anyway. */
export const SCALE_FEED_DRAIN_MS = 2_000
/**
 * An edge reads HEAD this often as a safety net; when HEAD stays ahead of what the feed delivered
 * for two reads in a row (the feed is down, or lost messages), it catches up from HEAD.
 */
export const SCALE_HEAD_POLL_MS = 30_000
/** Default size of an edge's disk chunk cache (--cache-size). */
export const SCALE_CACHE_BYTES = 10 * 1024 * MiB
/**
 * Verified chunks an edge keeps in memory, so 20 clients pulling the same files read each chunk
 * from disk once, not 20 times (a disk read allocates a buffer per client: garbage collection
 * was a quarter of an edge's CPU with 64 MiB for a 96 MiB tree).
 */
export const SCALE_MEMORY_CACHE_BYTES = 256 * MiB
/** Chunks an edge reader fetches ahead of the one being sent (one file's transfer). */
export const SCALE_READAHEAD_CHUNKS = 8
/** Chunk or list objects one DIRECT frame may ask URLs for. */
export const DIRECT_MAX_KEYS = 1024
/** Longest URL a DIRECT_REPLY may carry. */
export const DIRECT_MAX_URL_BYTES = 4 * KiB
/** How long a presigned URL handed out for `pull --direct` stays valid. */
export const DIRECT_URL_EXPIRES_S = 3600
/** Chunks a `pull --direct` client downloads at once from the bucket (over all files). */
export const DIRECT_PARALLEL_FETCHES = 16
// --- reload reports and the status query (features `report` and `status`) -----------------------
/** Paths one REPORT frame carries; a client sends the first ones, the server refuses more. */
export const REPORT_MAX_PATHS = 256
/**
 * The error text of one REPORT (a Lua message with its traceback, a hook's last stderr lines),
 * in UTF-8 bytes; a client cuts a longer one.
 */
export const REPORT_MAX_ERROR_BYTES = 8 * KiB
/**
 * The StatusJson one STATUS_REPLY carries, in UTF-8 bytes: the server cuts the document to fit
 * (fitStatus, `truncated: true`), the client refuses a longer one.
 */
export const STATUS_MAX_JSON_BYTES = 512 * KiB
/**
 * A batch whose newest file was saved (mtime) longer ago than this did not come from a save just
 * now (cp -p, tar, rsync -t keep old mtimes): its watcher lag is unknown rather than days long.
 */
export const WATCHER_LAG_MAX_MS = 60_000

// --- network assets (NetworkAssets, `assetsync run` over the network) ----------------------------
/**
 * Fetches NetworkAssets runs at once on top of RUNTIME_PARALLEL_FETCHES that only `blocking` ones
 * may use: a `require` never waits for a slot held by a long `load_asset_async` download (with the
 * `priority` feature the server then sends it first, too). Together ≤ MAX_INFLIGHT_PER_CLIENT.
 */
export const RUNTIME_BLOCKING_FETCHES = 16
/**
 * Paths NetworkAssets subscribes one by one (exact patterns). Past this it subscribes `**` once
 * and filters the pushed changes itself, so a program that reloads many files stays well under
 * the server's MAX_SUBSCRIPTIONS_PER_CLIENT.
 */
export const RUNTIME_MAX_PATH_SUBSCRIPTIONS = 128
/**
 * Feature `priority`: CHUNK data of `background` transfers the server keeps outstanding (sent, not
 * yet credited back) at most. Everything sent sits in the one ordered stream ahead of a later
 * blocking file; the full FLOW_WINDOW_BYTES of bulk would make a `require` wait for megabytes.
 * Must exceed CHUNK_SIZE (a background turn) + PRIORITY_CREDIT_STEP_BYTES, or background transfers
 * stall (credit held back below one step is never granted).
 */
export const BACKGROUND_WINDOW_BYTES = 256 * KiB
/**
 * Feature `priority`: CHUNK payload of `background` transfers (others use CHUNK_SIZE). The client
 * consumes and credits a frame at a time, so a small frame keeps the small window flowing.
 */
export const BACKGROUND_FRAME_BYTES = 16 * KiB
/**
 * Feature `priority`: a client that agreed to it grants credit back every this many consumed
 * bytes (instead of CREDIT_UPDATE_BYTES), so background transfers flow in their small window.
 */
export const PRIORITY_CREDIT_STEP_BYTES = 64 * KiB
// --- server correctness (issue 11: every file converges) ---------------------------------------
/**
 * How often a watching server checks that its served folder is still the folder it indexed (one
 * stat of the root). Deleting or moving the root itself raises an event on most systems; moving
 * one of its parents raises none, so this check is what notices it.
 */
export const ROOT_CHECK_MS = 1000
/**
 * How long a served folder may be missing (deleted, moved away, replaced by a file) before the
 * server gives up and stops (serve exits 5). A folder back at the path within this time is
 * re-indexed; requests wait meanwhile rather than see a stale or empty list.
 */
export const ROOT_GONE_MS = 5000
/**
 * Completed transfers a server remembers per connection (path and hash sent). A new REQUEST for
 * one of them without that hash as have-hash is the client retrying after the bytes failed their
 * hash: the server re-hashes the file before it answers (docs/protocol.md §4.5).
 */
export const SENT_MEMORY_PER_CLIENT = 256
// --- speed: serve start-up (issue 15) -----------------------------------------------------------
/**
 * How long `serve` waits for its folder's index before it says it is listening. A folder indexed
 * within this time is announced complete, exactly as before; a larger one (100,000 files: seconds
 * warm, tens of seconds cold) goes on indexing in the background while clients are served: a
 * REQUEST looks at its one path itself, a MANIFEST pages over what is complete (INDEX_PAGE_WAIT_MS).
 */
export const SERVE_LISTEN_WAIT_MS = 500
/**
 * While the background index runs, how long a MANIFEST page waits for the index to fill it before
 * it is sent with what is complete (at least one entry; a page that would be empty waits on, since
 * an empty page ends a protocol-2 client's listing).
 */
export const INDEX_PAGE_WAIT_MS = 250
// --- client correctness (issue 11) and the write path (issue 12) -------------------------------
/**
 * Folders a mirror's write session keeps open while no transfer uses them (Linux: each held by a
 * descriptor that creates and renames go through, see src/core/fs/write-root.ts); the least
 * recently used beyond this are closed and opened again when needed.
 */
export const WRITE_DIR_HANDLES = 256
/**
 * Largest ASSETSYNC_PATHS a hook gets, in bytes (newline-joined). A bigger batch gets an empty
 * ASSETSYNC_PATHS and ASSETSYNC_PATHS_TRUNCATED=1 (ASSETSYNC_PATH_COUNT and the JSON on stdin
 * are always complete): one environment string may not exceed 128 KiB on Linux
 * (MAX_ARG_STRLEN: exec fails with E2BIG) and 32,767 characters on Windows.
 */
export const HOOK_ENV_PATHS_MAX_BYTES = 32_000

// --- delta on the wire (issue 16 phase 2: the chunks and zstd features) ------------------------
/**
 * Chunks one CHUNK_FETCH may ask for (a longer list is refused by the decoder). 1024 chunks are at
 * most 192 MiB of data and a 37 KiB frame; a client splits larger fetches.
 */
export const DELTA_FETCH_MAX_CHUNKS = 1024
/**
 * The smallest file a client fetches through a chunk list when it has a local version of it;
 * smaller files are sent whole (compressed): the list's extra round trip buys little below this.
 * Local.
 */
export const DELTA_MIN_FILE_BYTES = 256 * KiB
/**
 * Chunks of other local files' cached chunk lists a client offers the planner as sources in one
 * sync (beyond each target's old version and staged part): ~20 GiB of files, an index of ~20 MiB
 * built in ~50 ms. Local.
 */
export const DELTA_LIST_SOURCE_CHUNKS = 262_144
/**
 * Chunk bytes a client asks for (CHUNK_FETCH) beyond what its assembler has written: the memory
 * one delta transfer holds for prefetched chunks. They leave the flow-control window on arrival,
 * so a chunk fetched again after a failed local read never waits behind them. Local.
 */
export const DELTA_FETCH_AHEAD_BYTES = 4 * MiB

// --- small files and the no-op pull (issue 15: features batch-request, manifest-digest) ---------
/**
 * Feature `batch-request`: items (paths) one BATCH may name. The server holds a batch's paths
 * until it has answered them all, so this and BATCH_MAX_OPEN bound that memory per connection.
 */
export const BATCH_MAX_FILES = 1024
/**
 * Feature `batch-request`: the largest file sent whole inside a BATCH_DATA answer. A larger one
 * (by the manifest, or grown since) goes by REQUEST and CHUNKs; its answer in a batch is `alone`.
 */
export const BATCH_FILE_BYTES = 64 * KiB
/**
 * Feature `batch-request`: the server packs answers into a BATCH_DATA frame up to this size (a
 * file larger than what is left starts the next frame). One frame is one turn of the batch.
 */
export const BATCH_FRAME_BYTES = 256 * KiB
/**
 * Feature `batch-request`: BATCH requests one connection may have open at once (they count among
 * MAX_INFLIGHT_PER_CLIENT too); one more gets ERROR ERR_LIMIT.
 */
export const BATCH_MAX_OPEN = 4
/**
 * Files a client puts in one BATCH (pull, watch's initial sync); local. A batch is streamed back
 * to back, so two of them in flight keep the server busy while the client prepares the next.
 */
export const CLIENT_BATCH_FILES = 256
/** BATCH requests a client keeps open at once (≤ BATCH_MAX_OPEN); local. */
export const CLIENT_BATCHES_IN_FLIGHT = 2
