// A TCP proxy between worker processes and the server, for injecting network faults:
// dropped connections, added latency, a blackhole (everything swallowed, connections
// left open) and half-open connections (requests arrive, replies never come back).
import net from 'node:net'

export async function startProxy(targetPort) {
  const pairs = new Set()
  let mode = 'pass'
  let latencyMs = 0
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1')
    const pair = { client, upstream }
    pairs.add(pair)
    const forward = (from, to) =>
      from.on('data', (chunk) => {
        if (mode === 'blackhole') return
        if (mode === 'half-open' && from === upstream) return
        const send = () => to.destroyed || to.write(chunk)
        if (latencyMs > 0) setTimeout(send, latencyMs)
        else send()
      })
    forward(client, upstream)
    forward(upstream, client)
    const close = () => {
      client.destroy()
      upstream.destroy()
      pairs.delete(pair)
    }
    for (const socket of [client, upstream]) {
      socket.on('error', close)
      socket.on('close', close)
    }
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: server.address().port,
    pass() {
      mode = 'pass'
      latencyMs = 0
    },
    latency(ms) {
      mode = 'pass'
      latencyMs = ms
    },
    blackhole() {
      mode = 'blackhole'
    },
    halfOpen() {
      mode = 'half-open'
    },
    /** Resets every open connection at once, as a router restart would. */
    dropAll() {
      for (const { client, upstream } of pairs) {
        client.destroy()
        upstream.destroy()
      }
      pairs.clear()
    },
    close() {
      this.dropAll()
      server.close()
    },
  }
}
