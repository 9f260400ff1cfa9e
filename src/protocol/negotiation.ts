/**
 * Version and feature negotiation (docs/protocol.md §5). Pure: what a peer offers, and what two
 * offers agree on. The UDP listener uses it to refuse a HELLO early (REJECT version); the server
 * connection uses it on AUTH, which is authoritative (it travels inside Noise, the datagrams do
 * not).
 */
import {
  FEATURES_SINCE_VERSION, IMPLEMENTED_FEATURES, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, type AuthMsg,
} from './messages.js'

/** What one side speaks: an inclusive range of protocol versions and a feature set (u32 bitset). */
export interface ProtocolOffer {
  readonly minVersion: number
  readonly maxVersion: number
  readonly features: number
}

/** What a connection settled on. */
export interface Agreement {
  readonly version: number
  /** The features both offered; always 0 below FEATURES_SINCE_VERSION. */
  readonly features: number
}

/** This build's offer: versions MIN_PROTOCOL_VERSION..PROTOCOL_VERSION, the implemented features. */
export const LOCAL_OFFER: ProtocolOffer = Object.freeze({
  minVersion: MIN_PROTOCOL_VERSION, maxVersion: PROTOCOL_VERSION, features: IMPLEMENTED_FEATURES,
})

/** `LOCAL_OFFER` with `override`'s fields (tests, or a server that turns features off). */
export function offerOf(override: Partial<ProtocolOffer> = {}): ProtocolOffer {
  const o = { ...LOCAL_OFFER, ...override }
  if (!Number.isInteger(o.minVersion) || o.minVersion < 1 || o.maxVersion < o.minVersion || o.maxVersion > 0xff) {
    throw new RangeError(`bad protocol offer: versions ${o.minVersion}–${o.maxVersion}`)
  }
  return { ...o, features: o.features >>> 0 }
}

/** A peer that sent no range (protocol 2: a bare version byte or a bare AUTH) speaks `version` only. */
export function singleVersion(version: number): ProtocolOffer {
  return { minVersion: version, maxVersion: version, features: 0 }
}

/** The client's offer as its AUTH frame states it. */
export function offerOfAuth(msg: AuthMsg): ProtocolOffer {
  if (msg.minVersion === undefined) return singleVersion(msg.version)
  return { minVersion: msg.minVersion, maxVersion: msg.version, features: (msg.features ?? 0) >>> 0 }
}

/**
 * The highest version both speak and the features both offer, or null when the ranges do not
 * overlap. Features exist from FEATURES_SINCE_VERSION on; below it they are always 0.
 */
export function negotiate(a: ProtocolOffer, b: ProtocolOffer): Agreement | null {
  const version = Math.min(a.maxVersion, b.maxVersion)
  if (version < Math.max(a.minVersion, b.minVersion)) return null
  const features = version >= FEATURES_SINCE_VERSION ? (a.features & b.features) >>> 0 : 0
  return { version, features }
}

/** "version 2" or "versions 2–3", for messages. */
export function describeVersions(o: ProtocolOffer): string {
  return o.minVersion === o.maxVersion ? `version ${o.minVersion}` : `versions ${o.minVersion}–${o.maxVersion}`
}
