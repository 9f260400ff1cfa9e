/**
 * How commands talk to people and programs: NDJSON events with --json, plain lines otherwise,
 * and an ora spinner only when stderr is a TTY (CI logs stay clean).
 */
import type { Ora } from 'ora'

export interface OutputStreams {
  stdout: NodeJS.WritableStream & { isTTY?: boolean }
  stderr: NodeJS.WritableStream & { isTTY?: boolean }
}

export const processStreams: OutputStreams = { stdout: process.stdout, stderr: process.stderr }

/** Buffered stdout is written once this much has piled up, or FLUSH_MS after the first line. */
const FLUSH_BYTES = 64 * 1024
const FLUSH_MS = 50

export interface OutputOptions {
  /**
   * Collect stdout lines and write them together (at FLUSH_BYTES, after FLUSH_MS, and on
   * `flush()`, `note()`, `stopSpin()`). For per-file output: a pull of 6,470 small files spent
   * 7 % of its CPU in one synchronous stdout write per file (docs/benchmarks.md).
   */
  batch?: boolean
}

export class Output {
  readonly json: boolean
  readonly #io: OutputStreams
  readonly #batch: boolean
  #pending = ''
  #timer: NodeJS.Timeout | null = null
  #spinner: Ora | null = null
  #spinning = false
  #text = ''

  constructor(json: boolean, io: OutputStreams = processStreams, opts: OutputOptions = {}) {
    this.json = json
    this.#io = io
    this.#batch = !!opts.batch
  }

  /** One NDJSON line (only with --json). */
  event(ev: { event: string } & Record<string, unknown>): void {
    if (this.json) this.#out(`${JSON.stringify(ev)}\n`)
  }

  /** One human line on stdout (only without --json). */
  line(text: string): void {
    if (this.json) return
    if (!this.#spinner) {
      this.#out(`${text}\n`)
      return
    }
    this.#spinner.clear()
    this.#io.stdout.write(`${text}\n`)
    this.#spinner.render()
  }

  #out(s: string): void {
    if (!this.#batch) {
      this.#io.stdout.write(s)
      return
    }
    this.#pending += s
    if (this.#pending.length >= FLUSH_BYTES) this.flush()
    else this.#timer ??= setTimeout(() => this.flush(), FLUSH_MS)
  }

  /** Writes what batched output is pending. */
  flush(): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    if (this.#pending.length === 0) return
    const s = this.#pending
    this.#pending = ''
    this.#io.stdout.write(s)
  }

  /** A human note on stderr (warnings, progress when piped). */
  note(text: string): void {
    this.flush()
    if (this.#spinner) this.#spinner.clear()
    this.#io.stderr.write(`${text}\n`)
    if (this.#spinner) this.#spinner.render()
  }

  /** Starts a spinner on an interactive stderr; a no-op when piped or with --json. */
  spin(text: string): void {
    if (this.json || !this.#io.stderr.isTTY) return
    this.#spinning = true
    this.#text = text
    // ora is loaded only for an interactive terminal (it costs ~80 ms of startup).
    void import('ora').then(({ default: ora }) => {
      if (!this.#spinning) return
      this.#spinner = ora({ text: this.#text, stream: this.#io.stderr as NodeJS.WriteStream }).start()
    }, () => { /* no spinner then */ })
  }

  progress(text: string): void {
    this.#text = text
    if (this.#spinner) this.#spinner.text = text
  }

  stopSpin(ok: boolean, text: string): void {
    this.flush()
    this.#spinning = false
    const spinner = this.#spinner
    this.#spinner = null
    if (!spinner) {
      if (ok) this.line(text) // a failure is reported once, as the error line on stderr
      this.flush()
      return
    }
    if (ok) spinner.succeed(text)
    else spinner.fail(text)
  }

  /** True while a spinner is (being) shown: per-file lines are then left out. */
  get interactive(): boolean { return this.#spinning }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++ }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`
}
