// Live updates for the dashboard as Server-Sent Events: a `snapshot` of every name's
// counts at once and whenever they change (read every `intervalMs`, once for all the
// connected clients), and a `job` event for each job event of this process's workers.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Monque } from '../monque'
import type { JobNameSummary } from '../types'

const JOB_EVENTS = ['job:start', 'job:complete', 'job:fail', 'job:retry', 'job:cancelled', 'job:retried', 'job:deleted', 'job:stalled', 'job:rescheduled', 'job:priority'] as const

export class LiveFeed {
  private readonly clients = new Set<ServerResponse>()
  private timer: NodeJS.Timeout | null = null
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
      }
      this.onJob.set(type, listener)
      this.events().on(type, listener)
    }
    const tick = async () => {
      try {
        const names: JobNameSummary[] = await this.monque.getJobNames()
        const counts = JSON.stringify(names)
        if (counts !== this.last) {
          this.last = counts
          this.send('snapshot', JSON.stringify({ names, at: new Date() }))
        }
      } catch (err) {
        this.send('problem', JSON.stringify({ code: (err as { code?: string }).code ?? 'INTERNAL_ERROR', message: (err as Error).message }))
      }
      if (this.clients.size > 0) this.timer = setTimeout(tick, this.intervalMs)
    }
    void tick()
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
