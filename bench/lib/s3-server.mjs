// An S3 API server (s3rver, a devDependency) in its own process, so the bench can read its CPU
// time apart: `node s3-server.mjs <dir> <bucket>` prints {"event":"ready","port":N}.
import S3rver from 's3rver'

const [dir, bucket] = process.argv.slice(2)
const srv = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir, configureBuckets: [{ name: bucket, configs: [] }] })
const { port } = await srv.run()
console.log(JSON.stringify({ event: 'ready', port }))
process.on('SIGTERM', () => { void srv.close().then(() => process.exit(0)) })
