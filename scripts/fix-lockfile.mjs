#!/usr/bin/env node
// The npm registry mirror this project is built against serves only the linux-x64/arm64 builds
// of rollup's per-platform packages (vitest -> vite -> rollup), so `npm install` leaves the other
// platforms out of package-lock.json and `npm ci` then refuses the lock ("Missing: ... from lock
// file"). This adds the missing optional entries with their os/cpu/libc, so npm ci skips them on
// other platforms instead of failing. Run it after any `npm install` that rewrites the lock.
import { readFileSync, writeFileSync } from 'node:fs'

const lockPath = new URL('../package-lock.json', import.meta.url)
const lock = JSON.parse(readFileSync(lockPath, 'utf8'))
const rollup = lock.packages['node_modules/rollup']
let added = 0
for (const name of Object.keys(rollup?.optionalDependencies ?? {})) {
  const key = `node_modules/${name}`
  const m = /^@rollup\/rollup-([a-z0-9]+)-([a-z0-9]+)(?:-(.+))?$/.exec(name)
  if (lock.packages[key] || !m) continue
  const [, os, cpu, abi] = m
  const entry = { version: rollup.version, cpu: [cpu], dev: true, license: 'MIT', optional: true, os: [os] }
  if (os === 'linux') entry.libc = [abi?.includes('musl') ? 'musl' : 'glibc']
  lock.packages[key] = entry
  added++
}
const keys = Object.keys(lock.packages).sort((a, b) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0))
lock.packages = Object.fromEntries(keys.map((k) => [k, lock.packages[k]]))
writeFileSync(lockPath, `${JSON.stringify(lock, null, 2)}\n`)
console.log(`fix-lockfile: added ${added} optional platform entries`)
