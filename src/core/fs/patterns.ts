/**
 * The pattern language of assetsync, one matcher for every use: pull/watch selections, MANIFEST
 * and SUBSCRIBE patterns on the server, and `serve --ignore`. Syntax and semantics:
 * docs/patterns.md. Implementation: ./glob (braces → Thompson NFA → lazily built DFA; no
 * backtracking, every cost capped by src/limits.ts, section "patterns").
 */
export { DEFAULT_BUDGET, PatternSet, scanSelected, type PatternBudget, type PatternMode } from './glob/pattern-set.js'
