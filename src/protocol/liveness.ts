/**
 * What the transport under a connection tells its liveness timer (docs/protocol.md §6): whether
 * anything at all arrived from the peer, and, over UDP, whether a silent peer's port is still
 * open. The frame channel decides; this module only observes.
 *
 * Why the port: a killed process's UDP port is closed, and the kernel answers a datagram to it
 * with ICMP port-unreachable; a stopped or busy process still holds its port, so it draws no ICMP.
 * That tells "killed" (end the connection now) from "stalled" (wait for the idle timeout). udx
 * sends from one unconnected socket, where Linux never reports ICMP errors, so the probe uses a
 * connected socket of its own (node:dgram), only while the peer is suspect.
 */
import { type Socket as DgramSocket, createSocket } from 'node:dgram'
import { Socket } from 'node:net'
import { isIP } from 'node:net'
import { MAX_PORT_PROBES } from '../limits.js'
import type { RawStream } from './transport.js'

/** A port probe while it runs: `send()` one probe datagram; `stop()` closes its socket. */
export interface PortProbe {
  send(): void
  stop(): void
}

/** Liveness signals of one raw stream. */
export interface TransportLiveness {
  /** A number that changes whenever anything arrives from the peer (udx: any packet, ACKs included; TCP: bytes). */
  activity(): number
  /**
   * Starts probing a silent peer; `closed(why)` is called (once) if its port is found closed.
   * Null when no probe can run (not UDP, or MAX_PORT_PROBES already running).
   */
  probe?(closed: (why: string) => void): PortProbe | null
}

/**
 * The probe datagram: one zero byte. Every receiver ignores it: it is neither a handshake packet
 * ('A' 'S' …) nor a udx packet (0xff 0x01 …), and a protocol-2 peer drops it the same way.
 */
export const PROBE_DATAGRAM = Buffer.from([0])

let probesOpen = 0

/** Probes currently running in this process (tests, status). */
export function openPortProbes(): number { return probesOpen }

/**
 * Sends probe datagrams to host:port from a connected UDP socket; an ICMP port-unreachable comes
 * back as ECONNREFUSED, on the socket or on a later send. Returns null at MAX_PORT_PROBES, or if
 * no socket can be made (EMFILE): the idle timeout then decides alone.
 */
export function probePort(host: string, port: number, closed: (why: string) => void): PortProbe | null {
  if (probesOpen >= MAX_PORT_PROBES || !(port > 0 && port < 65536) || isIP(host) === 0) return null
  let sock: DgramSocket
  try {
    sock = createSocket(isIP(host) === 6 ? 'udp6' : 'udp4')
  } catch {
    return null
  }
  probesOpen++
  let connected = false
  let stopped = false
  const stop = (): void => {
    if (stopped) return
    stopped = true
    probesOpen--
    try { sock.close() } catch { /* already closed */ }
  }
  const refused = (err: NodeJS.ErrnoException | null | undefined): void => {
    if (stopped || err?.code !== 'ECONNREFUSED') return
    stop()
    closed(`port ${port} of ${host} is closed (ICMP port unreachable: the peer process is gone)`)
  }
  sock.on('error', refused)
  sock.unref()
  const send = (): void => {
    if (stopped || !connected) return
    try {
      sock.send(PROBE_DATAGRAM, refused)
    } catch { /* closing */ }
  }
  try {
    sock.connect(port, host, () => {
      connected = true
      send()
    })
  } catch {
    stop()
    return null
  }
  return { send, stop }
}

/** The udx-native stream members liveness reads (see types/udx-native.d.ts). */
interface UdxLike {
  packetsReceived: number
  remoteHost: string | null
  remotePort: number
}

function isUdx(raw: RawStream): raw is RawStream & UdxLike {
  return typeof (raw as Partial<UdxLike>).packetsReceived === 'number' && 'remotePort' in raw
}

/** The liveness signals of a raw stream: udx (packets, port probe), TCP (bytes read), or none. */
export function livenessOf(raw: RawStream): TransportLiveness | undefined {
  if (isUdx(raw)) {
    return {
      activity: () => raw.packetsReceived,
      probe: (closed) => (raw.remoteHost ? probePort(raw.remoteHost, raw.remotePort, closed) : null),
    }
  }
  if (raw instanceof Socket) return { activity: () => raw.bytesRead }
  return undefined
}
