// Live updates for the dashboard as Server-Sent Events: a `snapshot` of every name's
// counts at once and whenever they change (read every `intervalMs`, once for all the
// connected clients, and soon after each job event of this process), and a `job` event
// for each job event of this process's workers.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Monque } from '../monque'
import type { JobNameSummary } from '../types'

/** How soon after a job event of this process the counts are read again. */
const SOON_MS = 150

const JOB_EVENTS = ['job:start', 'job:complete', 'job:fail', 'job:retry', 'job:cancelled', 'job:retried', 'job:deleted', 'job:stalled', 'job:rescheduled', 'job:priority'] as const

export class LiveFeed {
  private readonly clients = new Set<ServerResponse>()
  private timer: NodeJS.Timeout | null = null
  /** When the timer fires next (ms since the epoch). */
  private due = 0
  private tick: () => Promise<void> = async () => {}
  private reading = false
  private again = false
  private last = ''
  private readonly onJob = new Map<string, (payload: unknown) => void>()

  constructor(
    private readonly monque: Monque,
    private readonly intervalMs: number,
  ) {}

  /** The queue as a plain emitter: the feed forwards several events with one listener type. */
  private events(): NodeJS.EventEmitter {
    return this.monque as unknown as NodeJS.EventEmitter
  }

  open(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    })
    res.write('retry: 3000\n\n')
    this.clients.add(res)
    req.on('close', () => this.close(res))
    if (this.clients.size === 1) this.start()
    else if (this.last) res.write(`event: snapshot\ndata: ${this.last}\n\n`)
  }

  private close(res: ServerResponse): void {
    this.clients.delete(res)
    if (this.clients.size === 0) this.stopFeed()
  }

  private send(event: string, data: string): void {
    for (const res of this.clients) res.write(`event: ${event}\ndata: ${data}\n\n`)
  }

  private start(): void {
    this.last = ''
    for (const type of JOB_EVENTS) {
      const listener = (payload: unknown) => {
        const p = payload as { job?: { id: string; name: string; status: string }; jobId?: string }
        const job = p.job ? { id: p.job.id, name: p.job.name, status: p.job.status } : { id: p.jobId }
        this.send('job', JSON.stringify({ type, job }))
        this.schedule(SOON_MS)
      }
      this.onJob.set(type, listener)
      this.events().on(type, listener)
    }
    this.tick = async () => {
      this.timer = null
      // One read at a time, so an older read never overwrites a newer snapshot.
      if (this.reading) {
        this.again = true
        return
      }
      this.reading = true
      try {
        const names: JobNameSummary[] = await this.monque.getJobNames()
        const counts = JSON.stringify(names)
        if (counts !== this.last) {
          this.last = counts
          this.send('snapshot', JSON.stringify({ names, at: new Date() }))
        }
      } catch (err) {
        this.send('problem', JSON.stringify({ code: (err as { code?: string }).code ?? 'INTERNAL_ERROR', message: (err as Error).message }))
      } finally {
        this.reading = false
      }
      if (this.clients.size > 0) this.schedule(this.again ? 0 : this.intervalMs)
      this.again = false
    }
    void this.tick()
  }

  /** Reads the counts again within `ms` (sooner than planned, never later). */
  private schedule(ms: number): void {
    const at = Date.now() + ms
    if (this.timer && this.due <= at) return
    if (this.timer) clearTimeout(this.timer)
    this.due = at
    this.timer = setTimeout(() => void this.tick(), ms)
  }

  private stopFeed(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    for (const [type, listener] of this.onJob) this.events().off(type, listener)
    this.onJob.clear()
  }

  /** Ends every stream (the handler's `close()`). */
  closeAll(): void {
    for (const res of this.clients) res.end()
    this.clients.clear()
    this.stopFeed()
  }
}
