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

export class Output {
  readonly json: boolean
  readonly #io: OutputStreams
  #spinner: Ora | null = null
  #spinning = false
  #text = ''

  constructor(json: boolean, io: OutputStreams = processStreams) {
    this.json = json
    this.#io = io
  }

  /** One NDJSON line (only with --json). */
  event(ev: { event: string } & Record<string, unknown>): void {
    if (this.json) this.#io.stdout.write(`${JSON.stringify(ev)}\n`)
  }

  /** One human line on stdout (only without --json). */
  line(text: string): void {
    if (this.json) return
    if (this.#spinner) this.#spinner.clear()
    this.#io.stdout.write(`${text}\n`)
    if (this.#spinner) this.#spinner.render()
  }

  /** A human note on stderr (warnings, progress when piped). */
  note(text: string): void {
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
    this.#spinning = false
    const spinner = this.#spinner
    this.#spinner = null
    if (!spinner) {
      if (ok) this.line(text) // a failure is reported once, as the error line on stderr
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
