// CPU seconds the local test server has used so far (utime + stime from /proc), read
// from the pid scripts/test-server.sh records; null when the server is not a local
// process of ours (MONGODB_URI elsewhere) or not on Linux.
import { existsSync, readFileSync } from 'node:fs'
import os from 'node:os'

const pidFile = `${process.env.MONQUE_SERVER_STATE ?? `${process.env.TMPDIR ?? '/tmp'}/monque-server-${process.getuid?.()}`}/pid`

export function serverCpuSeconds() {
  if (os.platform() !== 'linux' || !existsSync(pidFile)) return null
  try {
    const stat = readFileSync(`/proc/${readFileSync(pidFile, 'utf8').trim()}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // utime and stime, in clock ticks: 100 per second on Linux.
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return null
  }
}
