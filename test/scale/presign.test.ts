/**
 * The SigV4 presigner against the worked example of the AWS S3 API reference ("Authenticating
 * Requests: Using Query Parameters"): the same inputs must give the same signature. (s3rver does
 * not check V4 signatures, so the end-to-end tests cannot catch a wrong one.)
 */
import { describe, expect, it } from 'vitest'
import { presignGet, signedUrl } from '../../src/core/scale/presign.js'

const creds = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' }

describe('presigned GET URLs (SigV4 query authentication)', () => {
  it('reproduces the AWS reference example', () => {
    const url = signedUrl({
      protocol: 'https:', host: 'examplebucket.s3.amazonaws.com', path: '/test.txt', region: 'us-east-1',
      expiresS: 86_400, credentials: creds, now: new Date('2013-05-24T00:00:00Z'),
    })
    expect(url).toBe('https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256'
      + '&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z'
      + '&X-Amz-Expires=86400&X-Amz-SignedHeaders=host'
      + '&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404')
  })

  it('is path-style, encodes the key per segment, keeps the port, and adds a session token', () => {
    const url = new URL(presignGet({
      endpoint: 'http://127.0.0.1:9000/', bucket: 'assets', key: 'studio/chunks/a b+c', region: 'eu-west-1',
      expiresS: 60, credentials: { ...creds, sessionToken: 'tok/en' }, now: new Date('2026-01-02T03:04:05Z'),
    }))
    expect(url.host).toBe('127.0.0.1:9000')
    expect(url.pathname).toBe('/assets/studio/chunks/a%20b%2Bc')
    expect(url.searchParams.get('X-Amz-Security-Token')).toBe('tok/en')
    expect(url.searchParams.get('X-Amz-Expires')).toBe('60')
    expect(url.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/)
  })
})
