// A TCP relay between measured workers and the server that counts the commands the
// workers send, by name: round trips per job, the same way for every system, without
// touching any of them. It reads the MongoDB wire protocol's message headers on the
// client-to-server side only (OP_MSG: the command is the first key of its body;
// OP_QUERY: a legacy handshake). Connection handshakes and server monitoring (`hello`,
// `isMaster`) are not the queue's work and are left out of the total.
import net from 'node:net'

const OP_QUERY = 2004
const OP_MSG = 2013
const NOT_WORK = new Set(['hello', 'isMaster', 'ismaster', 'endSessions', 'saslStart', 'saslContinue'])

/** The command named by one client message (`buf` holds exactly that message). */
function commandOf(buf) {
  const opCode = buf.readInt32LE(12)
  if (opCode === OP_MSG) {
    // flagBits (4), then section kind 0 (1) and its BSON document: size (4), type (1), key.
    let at = 16 + 4
    if (buf[at] !== 0) return 'unknown'
    at += 1 + 4 + 1
    const end = buf.indexOf(0, at)
    return buf.toString('utf8', at, end)
  }
  if (opCode === OP_QUERY) return 'isMaster'
  return `op${opCode}`
}

/** Starts a relay to the server of `uri`; returns the URI to use instead and its counts. */
export async function startWireCounter(uri) {
  const target = new URL(uri.replace(/^mongodb:/, 'http:'))
  const counts = new Map()
  const sockets = new Set()
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 27017), target.hostname)
    sockets.add(client).add(upstream)
    let pending = Buffer.alloc(0)
    client.on('data', (chunk) => {
      upstream.write(chunk)
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk
      while (pending.length >= 16) {
        const size = pending.readInt32LE(0)
        if (pending.length < size) break
        const name = commandOf(pending.subarray(0, size))
        counts.set(name, (counts.get(name) ?? 0) + 1)
        pending = pending.subarray(size)
      }
    })
    upstream.on('data', (chunk) => client.write(chunk))
    const close = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('close', close).on('error', close)
    upstream.on('close', close).on('error', close)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const relayed = new URL(uri.replace(/^mongodb:/, 'http:'))
  relayed.host = `127.0.0.1:${server.address().port}`
  // One server, through the relay: no discovery of other members behind its back.
  relayed.searchParams.set('directConnection', 'true')
  return {
    uri: relayed.toString().replace(/^http:/, 'mongodb:'),
    reset: () => counts.clear(),
    /** Commands sent since the last reset, by name, monitoring left out; and their sum. */
    counts: () => {
      const work = Object.fromEntries([...counts].filter(([name]) => !NOT_WORK.has(name)))
      return { byCommand: work, total: Object.values(work).reduce((a, b) => a + b, 0) }
    },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}
