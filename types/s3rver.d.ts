// Minimal types for s3rver 3.7 (a devDependency: the scale-out tests' S3 API server). Only what is used.
declare module 's3rver' {
  interface S3rverOptions {
    address?: string
    port?: number
    silent?: boolean
    directory?: string
    resetOnClose?: boolean
    allowMismatchedSignatures?: boolean
    vhostBuckets?: boolean
    configureBuckets?: { name: string; configs: (string | Buffer)[] }[]
  }
  class S3rver {
    constructor(options?: S3rverOptions)
    run(): Promise<{ address: string; family: string; port: number }>
    close(): Promise<void>
  }
  export default S3rver
}
