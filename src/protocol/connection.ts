/**
 * One encrypted, authenticated assetsync connection, in three parts: the shared frame channel
 * (frame-channel.ts), its client half (client-connection.ts) and its server half
 * (server-connection.ts). This module gathers them so callers import from one place.
 */
import type { FrameChannel } from './frame-channel.js'

export { FrameChannel, type ConnectionOptions } from './frame-channel.js'
export { ClientConnection, type AuthStyle, type ReplyHandler, type RequestOptions } from './client-connection.js'
export { ServerConnection, tokenMatches } from './server-connection.js'

/** Either end of a connection, as far as both ends agree: the shared frame channel. */
export type Connection = FrameChannel
