/** Shared by the delta tests: seeded bytes and small buffer helpers. */
import { mulberry32 } from '../helpers/lossy-proxy.js'

/** `n` bytes from mulberry32(seed), one draw a byte. */
export function seededBytes(n: number, seed: number): Uint8Array {
  const r = mulberry32(seed)
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256)
  return b
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** JSON-like text (an asset table), `n` bytes or a little more, from a seed. */
export function jsonText(n: number, seed: number): Buffer {
  const r = mulberry32(seed)
  const words = ['sprite', 'atlas', 'level', 'enemy', 'spawn', 'speed', 'health', 'texture', 'sound', 'trigger', 'door', 'key']
  const parts: string[] = ['[\n']
  let size = 2
  for (let id = 0; size < n; id++) {
    const w = words[Math.floor(r() * words.length)]!
    const line = `  {"id": ${id}, "name": "${w}_${Math.floor(r() * 1000)}", "x": ${(r() * 4096).toFixed(2)}, "y": ${(r() * 4096).toFixed(2)}, "tags": ["${w}", "${words[Math.floor(r() * words.length)]}"], "enabled": ${r() < 0.5}},\n`
    parts.push(line)
    size += line.length
  }
  parts.push(']\n')
  return Buffer.from(parts.join(''))
}
