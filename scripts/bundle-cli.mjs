// `npm run build`, after tsc: bundles the CLI (src/cli.ts and everything it loads) into
// dist/cli.js plus lazily loaded chunks in dist/cli-chunks/, so a command loads a few files
// instead of a few hundred modules (issue 15: module loading was ~140 ms of CPU before `serve`
// listened, ~50 ms bundled; docs/benchmarks.md). bin/assetsync.js still imports dist/cli.js and
// calls run(process.argv); the library (dist/index.js and its .d.ts) is tsc's output, unbundled.
// The commands' dynamic imports stay dynamic (code splitting): `--help` does not load the server.
//
// Left out of the bundle: packages with native addons or WebAssembly that locate files next to
// themselves, and the large optional ones (S3, NATS) that only some commands load.
import { rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const external = [
  'udx-native', 'sodium-native', 'require-addon', 'blake3', '@toondepauw/node-zstd', 'wasmoon', '@aws-sdk/*', 'nats',
]

rmSync(join(root, 'dist', 'cli-chunks'), { recursive: true, force: true })
await build({
  entryPoints: { cli: join(root, 'src', 'cli.ts') },
  outdir: join(root, 'dist'),
  chunkNames: 'cli-chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.19',
  sourcemap: true,
  external,
  logLevel: 'warning',
  // Bundled CommonJS packages call require() for the externals: give ESM chunks one.
  banner: { js: "import { createRequire as __assetsyncRequire } from 'node:module'; const require = __assetsyncRequire(import.meta.url);" },
})
