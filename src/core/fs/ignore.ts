/**
 * What is never served or synced: the default ignores plus the user's `--ignore` globs, and the
 * user's selection patterns, both as PatternSets (./patterns.ts, docs/patterns.md).
 */
import { PatternSet } from './patterns.js'

/** Prefix and suffix of assetsync's own temp files (client writes, key files). */
export const TEMP_PREFIX = '.assetsync-'
export const TEMP_SUFFIX = '.tmp'

export const DEFAULT_IGNORES: readonly string[] = [
  '**/.git/**', '**/.hg/**', '**/.svn/**', '**/node_modules/**',
  // editor temp/swap files: vim, emacs, JetBrains, macOS/Windows litter
  '**/*.swp', '**/*.swo', '**/*.swx', '**/*~', '**/.#*', '**/#*#', '**/*___jb_tmp___', '**/*___jb_old___',
  '**/.DS_Store', '**/Thumbs.db', '**/4913',
  // our own temp files
  `**/${TEMP_PREFIX}*${TEMP_SUFFIX}`,
]

/**
 * Answers for a wire path: ignored (ignoreMatcher) or selected (patternMatcher). `folder`: the
 * path is a folder a walk may skip whole (ignore sets only; selections ignore it).
 */
export type PathMatcher = (wirePath: string, folder?: boolean) => boolean

/**
 * Ignore set: DEFAULT_IGNORES, then `extra` (serve --ignore). Read as .gitignore: last match
 * wins, so `!tex/keep.psd` after `**\/*.psd` serves that file again; a folder that is ignored
 * hides everything in it; `x/**` ignores what is inside x (so `!x/keep` works), and a walk skips
 * x only when nothing inside can be re-included. ERR_USAGE / ERR_LIMIT for a bad list.
 */
export function ignoreSet(extra: readonly string[] = []): PatternSet {
  return new PatternSet([...DEFAULT_IGNORES, ...extra], 'ignore')
}

/** Matcher for ignored wire paths (files, or folders with `folder`). */
export function ignoreMatcher(extra: readonly string[] = []): PathMatcher {
  const set = ignoreSet(extra)
  return (wirePath, folder = false) => set.matches(wirePath, folder)
}

/**
 * Selection set for the user's patterns (pull, watch, MANIFEST, SUBSCRIBE): last match wins, `!`
 * excludes, no patterns (or only exclusions) start from everything. ERR_USAGE / ERR_LIMIT for a
 * bad list.
 */
export function selectionSet(patterns: readonly string[]): PatternSet {
  return new PatternSet(patterns, 'select')
}

/** Matcher for the user's selection patterns (default everything). */
export function patternMatcher(patterns: readonly string[]): PathMatcher {
  if (patterns.length === 0) return () => true
  const set = selectionSet(patterns)
  return (wirePath) => set.matches(wirePath)
}
