#!/usr/bin/env node
// Thin entry: everything lives in dist/cli.js (built by `npm ci` via the prepare script).
import { run } from '../dist/cli.js'

process.exitCode = await run(process.argv)
