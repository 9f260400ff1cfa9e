/**
 * The keys of the project file (assetsync.json): one table, the source of truth for the loader's
 * validation and for assetsync.schema.json (test/observe/config-schema.test.ts checks that the
 * shipped schema is the one generated here, and that every flag of every command is listed).
 * Keys are named as the flags, without the dashes.
 */
import { MAX_PATTERNS } from '../limits.js'

export type Section = 'serve' | 'client'
export const SECTIONS: readonly Section[] = ['serve', 'client']

/** The JSON type a key takes in the file. Value flags get it as a string, as if typed. */
export type KeyType = 'string' | 'integer' | 'number' | 'boolean' | 'string[]'

export interface KeySpec {
  type: KeyType
  description: string
  enum?: readonly string[]
  minimum?: number
  maximum?: number
  /** Numbers: the value must be greater than this. */
  exclusiveMinimum?: number
  /** Strings: a regular expression the whole value must match, and what it means in words. */
  pattern?: { re: string; means: string }
  maxItems?: number
  /** The environment variable that sits between the flag and the file (flags > env > file). */
  env?: string
  /** A relative path in the file is taken from the file's folder, not the working folder. */
  path?: boolean
  /** A secret: only read from a file that group and others cannot read (mode 0600). */
  secret?: boolean
  /** Not a flag but the command's positional argument of this name. */
  argument?: boolean
}

const HOST_PORT = { re: '^(\\[[0-9A-Fa-f:.]+\\]|[^\\s:/\\[\\]]+):[0-9]{1,5}$', means: 'host:port, e.g. 192.168.1.20:7420' }
const HTTP_LISTEN = { re: '^((\\[[0-9A-Fa-f:.]+\\]|[^\\s:/\\[\\]]+)?:)?[0-9]{1,5}$', means: 'port, :port or host:port, e.g. 7421 or 0.0.0.0:7421' }
const TRANSPORT = { type: 'string', enum: ['udp', 'tcp'], description: 'udp (encrypted reliable UDP, the default) or tcp, for networks that block UDP' } as const
const TOKEN: KeySpec = {
  type: 'string', env: 'ASSETSYNC_TOKEN', secret: true, pattern: { re: '^.{1,256}$', means: '1-256 characters' },
  description: 'access token (env ASSETSYNC_TOKEN wins over the file); read only if the file has mode 0600',
}
const IDLE_TIMEOUT: KeySpec = {
  type: 'number', exclusiveMinimum: 0, maximum: 86_400,
  description: 'seconds of silence after which a peer counts as gone (--idle-timeout)',
}
const S3_ENDPOINT: KeySpec = {
  type: 'string', pattern: { re: '^https?://\\S+$', means: 'http(s)://host[:port]' },
  description: 'S3-compatible endpoint, overriding AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (--s3-endpoint)',
}
const JSON_FLAG: KeySpec = { type: 'boolean', description: 'NDJSON events on stdout (--json)' }

/** Every key of the two sections. Flags not listed here cannot be set from the file. */
export const CONFIG_KEYS: Readonly<Record<Section, Readonly<Record<string, KeySpec>>>> = {
  serve: {
    dir: { type: 'string', path: true, argument: true, description: 'folder to serve (the [dir] argument), relative to this file' },
    host: { type: 'string', description: 'address to listen on (--host, default 0.0.0.0)' },
    port: { type: 'integer', minimum: 0, maximum: 65535, description: 'port to listen on; 0 picks a free port (--port, default 7420)' },
    transport: { ...TRANSPORT },
    token: TOKEN,
    ignore: { type: 'string[]', maxItems: MAX_PATTERNS, description: 'more globs to ignore, on top of .git/**, node_modules/** and editor temp files (--ignore)' },
    settle: { type: 'number', minimum: 0, maximum: 86_400_000, description: 'milliseconds of quiet before a changed file is announced (--settle)' },
    json: JSON_FLAG,
    http: { type: 'string', pattern: HTTP_LISTEN, description: 'serve /metrics, /status and the live page on this address (--http); off-loopback it requires the token' },
    publish: { type: 'string', pattern: { re: '^s3://[^/\\s]+(/\\S*)?$', means: 's3://bucket/prefix' }, description: 'also publish the content to this S3 bucket and prefix (--publish)' },
    origin: { type: 'string', pattern: { re: '^s3://[^/\\s]+(/\\S*)?$', means: 's3://bucket/prefix' }, description: 'serve from this S3 origin instead of a folder: an edge (--origin)' },
    feed: { type: 'string', pattern: { re: '^nats://\\S+$', means: 'nats://host:port' }, description: 'change feed shared by several servers (--feed)' },
    'cache-size': { type: 'integer', minimum: 0, description: 'bytes of chunk cache an edge keeps (--cache-size)' },
    's3-endpoint': S3_ENDPOINT,
    'idle-timeout': IDLE_TIMEOUT,
  },
  client: {
    server: { type: 'string', pattern: HOST_PORT, description: 'the assetsync server (--server host:port)' },
    token: TOKEN,
    key: { type: 'string', pattern: { re: '^[0-9a-fA-F]{64}$', means: '64 hex digits' }, description: "the server's public key; without it the key is pinned on first use (--key)" },
    transport: { ...TRANSPORT },
    timeout: { type: 'number', exclusiveMinimum: 0, maximum: 86_400, description: 'seconds to wait for a connection, and for an answer to a request (--timeout)' },
    'idle-timeout': IDLE_TIMEOUT,
    out: { type: 'string', path: true, description: 'local folder to mirror into, relative to this file (--out)' },
    prune: { type: 'boolean', description: 'pull: delete local files the server no longer has (--prune)' },
    'dry-run': { type: 'boolean', description: 'pull: report what would change, change nothing (--dry-run)' },
    exec: { type: 'string', description: 'watch: shell command run after each applied batch (--exec)' },
    'hook-timeout': { type: 'number', exclusiveMinimum: 0, maximum: 86_400, description: 'watch: seconds a hook may run before it is killed (--hook-timeout)' },
    'lua-path': { type: 'string', description: 'run: LUA_PATH templates, default "?.lua;?/init.lua" (--lua-path)' },
    tick: { type: 'number', exclusiveMinimum: 0, maximum: 1000, description: 'run: ticks per second of the Lua program (--tick)' },
    once: { type: 'boolean', description: 'run: run the script once and exit (--once)' },
    direct: { type: 'boolean', description: 'pull: fetch chunks straight from the S3 origin (--direct)' },
    's3-endpoint': S3_ENDPOINT,
    json: JSON_FLAG,
  },
}

/** The section each command reads. Commands not listed take nothing from the file. */
export const COMMAND_SECTION: Readonly<Record<string, Section>> = {
  serve: 'serve', pull: 'client', get: 'client', watch: 'client', run: 'client', status: 'client',
}

/** Flags that are never keys: per-invocation ones, and --config itself. */
export const NOT_KEYS: readonly string[] = ['config', 'help', 'version', 'output']

/** JSON Schema (draft-07, what editors support best) of the project file, generated from CONFIG_KEYS; ships as assetsync.schema.json. */
export function configSchema(): Record<string, unknown> {
  const section = (s: Section): Record<string, unknown> => ({
    type: 'object',
    description: s === 'serve' ? 'options of `assetsync serve`' : 'options of the client commands: pull, get, watch, run, status',
    additionalProperties: false,
    properties: Object.fromEntries(Object.entries(CONFIG_KEYS[s]).map(([k, spec]) => [k, keySchema(spec)])),
  })
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'assetsync project file (assetsync.json)',
    description: 'Options for assetsync, keys named as the flags. Precedence: flags, then environment, then this file, then defaults.',
    type: 'object',
    additionalProperties: false,
    properties: {
      $schema: { type: 'string', description: 'where editors find this schema, e.g. ./node_modules/assetsync/assetsync.schema.json' },
      serve: section('serve'),
      client: section('client'),
    },
  }
}

function keySchema(spec: KeySpec): Record<string, unknown> {
  const s: Record<string, unknown> = { description: spec.description }
  if (spec.type === 'string[]') {
    s.type = 'array'
    s.items = { type: 'string', minLength: 1 }
    if (spec.maxItems !== undefined) s.maxItems = spec.maxItems
    return s
  }
  s.type = spec.type
  if (spec.enum) s.enum = [...spec.enum]
  if (spec.minimum !== undefined) s.minimum = spec.minimum
  if (spec.exclusiveMinimum !== undefined) s.exclusiveMinimum = spec.exclusiveMinimum
  if (spec.maximum !== undefined) s.maximum = spec.maximum
  if (spec.pattern) s.pattern = spec.pattern.re
  if (spec.type === 'string' && !spec.pattern && !spec.enum) s.minLength = 1
  return s
}
