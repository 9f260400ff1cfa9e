// The pattern language (src/core/fs/glob, docs/patterns.md): syntax and set semantics as tables
// of pattern list / path / expected, in both modes (selection and ignore).
import { describe, expect, it } from 'vitest'
import { DEFAULT_IGNORES, ignoreMatcher, patternMatcher } from '../../src/core/fs/ignore.js'
import { PatternSet } from '../../src/core/fs/patterns.js'
import { AssetSyncError } from '../../src/errors.js'
import { MAX_PATTERN_BYTES } from '../../src/limits.js'

type Row = [patterns: string | string[], path: string, expected: boolean]

function check(rows: Row[], mode: 'select' | 'ignore', folder = false): void {
  const wrong = rows
    .map(([p, path, expected]) => ({ p, path, expected, got: new PatternSet(Array.isArray(p) ? p : [p], mode).matches(path, folder) }))
    .filter((r) => r.got !== r.expected)
  expect(wrong).toEqual([])
}

describe('syntax (one pattern, selection)', () => {
  it('* is any run within one segment, dot files included; patterns are anchored at the root', () => check([
    ['*.psd', 'a.psd', true], ['*.psd', 'x/a.psd', false], ['*.psd', '.psd', true], ['*.psd', 'a.psdx', false],
    ['*', '.env', true], ['*', 'a/b', false], ['a*b', 'ab', true], ['a*b', 'axyb', true], ['a*b', 'ax/yb', false],
    ['x/*', 'x/a', true], ['x/*', 'x/a/b', false], ['*/*', 'a/b', true], ['*/*', 'a', false],
  ], 'select'))

  it('** is any number of whole segments, including zero', () => check([
    ['**', '.env', true], ['**', 'a/.b/c', true],
    ['tex/**', 'tex/a', true], ['tex/**', 'tex/a/b', true], ['tex/**', 'tex', true], ['tex/**', 'texa', false], ['tex/**', 'x/tex/a', false],
    ['**/x', 'x', true], ['**/x', 'a/b/x', true], ['**/x', 'ax', false], ['**/x', 'a/x/y', false],
    ['a/**/b', 'a/b', true], ['a/**/b', 'a/x/y/b', true], ['a/**/b', 'a/xb', false], ['a/**/b', 'a/x/bb', false],
    ['a/**/**/b', 'a/b', true], ['**/.git/**', 'a/.git/x', true], ['**/.git/**', '.gitignore', false],
    // ** inside a segment is a plain *
    ['a**b', 'axyb', true], ['a**b', 'ax/yb', false], ['**.psd', 'b.psd', true], ['**.psd', 'a/b.psd', false],
    ['x/**b', 'x/ab', true], ['x/**b', 'x/a/b', false],
  ], 'select'))

  it('? is one character (a code point) other than /', () => check([
    ['?', 'a', true], ['?', 'ab', false], ['a?c', 'abc', true], ['a?c', 'a/c', false],
    ['?', '😀', true], ['??', '😀', false], ['?', 'é', true],
  ], 'select'))

  it('character classes: sets, ranges, ! and ^ negation, POSIX names; never /', () => check([
    ['[abc]', 'b', true], ['[abc]', 'd', false], ['[a-c]', 'b', true], ['[a-c]', 'd', false],
    ['[!a]', 'b', true], ['[!a]', 'a', false], ['[^a]', 'b', true], ['[^a]', 'a', false],
    ['x[!a]y', 'x/y', false], ['x[/]y', 'x/y', false],
    ['[]a]', ']', true], ['[a-]', '-', true], ['[\\]]', ']', true], ['[z-a]', 'b', false],
    ['[[:digit:]]', '1', true], ['[[:digit:]]', 'a', false], ['[[:alpha:]_]', '_', true],
    ['[😀é]', '😀', true], ['[😀é]', 'é', true],
    ['[a', '[a', true], ['a]', 'a]', true],
  ], 'select'))

  it('braces: alternatives (nestable), ranges; literal when not an alternation', () => check([
    ['{a,b}', 'a', true], ['{a,b}', 'b', true], ['{a,b}', 'c', false],
    ['*.{png,jpg}', 'x.jpg', true], ['*.{png,jpg}', 'd/x.jpg', false], ['{a,{b,c}}', 'c', true],
    ['a{,x}', 'a', true], ['a{,x}', 'ax', true],
    ['{a}', '{a}', true], ['{a}', 'a', false], ['{a,b', '{a,b', true], ['\\{a,b}', '{a,b}', true], ['\\{a,b}', 'a', false],
    ['{1..3}', '2', true], ['{1..3}', '4', false], ['{1..10}', '10', true], ['{01..03}', '02', true], ['{01..03}', '2', false],
    ['{3..1}', '2', true], ['{a..c}', 'b', true], ['{a..c}', 'd', false], ['{*..+}', '+', true], ['{*..+}', 'x', false],
    ['{**,x}/c', 'a/b/c', true], ['{a/**,b}/c', 'a/z/c', true], ['{a/**,b}/c', 'b/c', true],
    ['{[ab],c}', 'b', true],
  ], 'select'))

  it('escapes, anchoring, trailing slash, case, NFC; everything else is literal', () => check([
    ['\\*', '*', true], ['\\*', 'a', false], ['\\?', '?', true], ['\\[a]', '[a]', true], ['\\!a', '!a', true],
    ['/a', 'a', true], ['/a', 'x/a', false], ['./a', 'a', true],
    ['tex/', 'tex/a', true], ['tex/', 'tex/a/b', true], ['tex/', 'texa', false],
    ['A', 'a', false], ['e\u0301', '\u00e9', true],
    ['+(a)', '+(a)', true], ['@(a|b)', 'a', false], ['a|b', 'a|b', true], ['(a)', '(a)', true], ['$^.', '$^.', true],
    ['a//b', 'a/b', false],
  ], 'select'))

  it('refuses an empty pattern, a bare "!", an unknown class name and an oversized pattern', () => {
    const code = (p: string): string | null => {
      try { new PatternSet([p]); return null } catch (e) { return e instanceof AssetSyncError ? e.code : 'other' }
    }
    expect(code('')).toBe('ERR_USAGE')
    expect(code('!')).toBe('ERR_USAGE')
    expect(code('[[:bogus:]]')).toBe('ERR_USAGE')
    expect(code('a'.repeat(MAX_PATTERN_BYTES + 1))).toBe('ERR_LIMIT')
  })
})

describe('sets: include globs, ! exclusions, last match wins', () => {
  it('issue 11: tex/** !**/*.psd selects tex minus .psd, nothing else', () => check([
    [['tex/**', '!**/*.psd'], 'tex/a.png', true], [['tex/**', '!**/*.psd'], 'tex/b/x.png', true],
    [['tex/**', '!**/*.psd'], 'tex/c.psd', false], [['tex/**', '!**/*.psd'], '.env', false],
    [['tex/**', '!**/*.psd'], 'other/o.bin', false], [['tex/**', '!**/*.psd'], 'c.psd', false],
  ], 'select'))

  it('only exclusions (or a first exclusion) start from everything', () => check([
    [['!**/*.psd'], 'a.png', true], [['!**/*.psd'], 'a/b.psd', false], [['!**/*.psd'], '.env', true],
    [['!**/*.psd', 'tex/c.psd'], 'tex/c.psd', true], [['!**/*.psd', 'tex/c.psd'], 'tex/d.psd', false], [['!**/*.psd', 'tex/c.psd'], 'x.png', true],
    [['!tex/**', 'tex/**'], 'tex/a', true], [['!tex/**', 'tex/**'], 'x', true],
  ], 'select'))

  it('the last pattern that matches decides', () => check([
    [['**/*.psd', '!tex/**', 'tex/keep.psd'], 'a/b.psd', true], [['**/*.psd', '!tex/**', 'tex/keep.psd'], 'tex/b.psd', false],
    [['**/*.psd', '!tex/**', 'tex/keep.psd'], 'tex/keep.psd', true], [['**/*.psd', '!tex/**', 'tex/keep.psd'], 'a/b.png', false],
    [['tex/**', '!tex/**'], 'tex/a', false], [['**', '!*.psd'], 'a.psd', false], [['**', '!*.psd'], 'd/a.psd', true],
    [['a/**', 'b/**'], 'b/x', true], [['a/**', 'b/**'], 'c/x', false],
    [['!!a'], '!a', false], [['!!a'], 'b', true],
  ], 'select'))

  it('patternMatcher: no patterns select everything; ** with an exclusion is not "everything"', () => {
    expect(patternMatcher([])('any/thing')).toBe(true)
    const m = patternMatcher(['**', '!**/*.psd'])
    expect([m('a/b.png'), m('a/b.psd')]).toEqual([true, false])
  })
})

describe('ignore sets (serve --ignore): gitignore reading', () => {
  it('the defaults ignore VCS folders, node_modules, editor litter and our temp files, not look-alikes', () => {
    const ig = ignoreMatcher()
    for (const p of ['.git/HEAD', 'a/.git/x', 'node_modules/x.js', 'a/node_modules/b/c', 'a.swp', 'x/.#y', 'x/#y#', 'x~', 'a/.DS_Store', 'x/.assetsync-1f.tmp', 'b/4913']) {
      expect(ig(p), p).toBe(true)
    }
    for (const p of ['.gitignore', 'src/a.ts', 'git/x', 'node_modules.txt', '.assetsync-1f.tmpx']) expect(ig(p), p).toBe(false)
    for (const f of ['.git', 'a/.git', 'node_modules', 'x/node_modules']) expect(ig(f, true), f).toBe(true)
    expect(DEFAULT_IGNORES.length).toBeGreaterThan(10)
  })

  it('files: last match wins, and anything inside an ignored folder is ignored', () => check([
    [['**/*.psd', '!tex/c.psd'], 'tex/c.psd', false], [['**/*.psd', '!tex/c.psd'], 'tex/d.psd', true],
    [['**/*.psd', '!tex/c.psd'], 'art.psd/x.png', true],
    [['build/**', '!build/keep.txt'], 'build/x', true], [['build/**', '!build/keep.txt'], 'build/keep.txt', false],
    [['build/**', '!build/keep.txt'], 'build/sub/keep.txt', true],
    [['secret'], 'secret/x', true], [['secret'], 'secretx', false], [['secret', '!secret/ok'], 'secret/ok', true],
    [['node_modules/**', '!node_modules/keep/**'], 'node_modules/keep/x.js', false], [['node_modules/**', '!node_modules/keep/**'], 'node_modules/a/x.js', true],
  ], 'ignore'))

  it('folders: skipped whole only when nothing inside can be re-included', () => check([
    [['**/*.psd', '!tex/c.psd'], 'art.psd', true], [['**/*.psd', '!tex/c.psd'], 'tex', false],
    [['build/**', '!build/keep.txt'], 'build', false], [['build/**', '!build/keep.txt'], 'build/sub', true],
    [['build/**'], 'build', true], [['secret'], 'secret', true],
    [['node_modules/**', '!node_modules/keep/**'], 'node_modules', false], [['node_modules/**', '!node_modules/keep/**'], 'node_modules/a', true],
    [['node_modules/**', '!node_modules/keep/**'], 'node_modules/keep', false], [['**/node_modules/**'], 'a/node_modules', true],
    [['**/*.psd', '!**/keep.psd'], 'art.psd', true], [['x/**', '!**/*.keep'], 'x', false],
  ], 'ignore', true))
})

describe('what a caller can learn from a set', () => {
  it('unmatched(): patterns that matched none of the paths tested (include / exclude / all)', () => {
    const set = new PatternSet(['tex/**', 'nothing/**', '!**/*.psd', '!**/*.tmp'])
    for (const p of ['tex/a.png', 'tex/c.psd', 'x.bin']) set.matches(p)
    expect(set.unmatched()).toEqual(['nothing/**', '!**/*.tmp'])
    expect(set.unmatched('include')).toEqual(['nothing/**'])
    expect(set.unmatched('exclude')).toEqual(['!**/*.tmp'])
    expect([set.isExclusion(0), set.isExclusion(2)]).toEqual([false, true])
  })

  it('matching(): every pattern whose glob matches, whatever its !', () => {
    const set = new PatternSet(['tex/**', '!**/*.psd', '**', 'x/**'])
    expect([...set.matching('tex/c.psd')]).toEqual([0, 1, 2])
    expect([...set.matching('y')]).toEqual([2])
  })
})
