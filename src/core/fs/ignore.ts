/**
 * What is never served or synced: the default ignores plus the user's `--ignore` globs.
 */
import picomatch from 'picomatch'

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

export type PathMatcher = (wirePath: string) => boolean

/** Matcher for ignored wire paths (files or folders). */
export function ignoreMatcher(extra: readonly string[] = []): PathMatcher {
  return picomatch([...DEFAULT_IGNORES, ...extra], { dot: true })
}

/** Matcher for the user's selection patterns (globs; default everything). */
export function patternMatcher(patterns: readonly string[]): PathMatcher {
  if (patterns.length === 0 || patterns.includes('**')) return () => true
  return picomatch([...patterns], { dot: true })
}
