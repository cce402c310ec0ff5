// MonqueService: inject it in controllers and services to enqueue, schedule and manage.
import { Injectable } from '@tsed/di'
import { Monque, MonqueError } from 'monque'
import type { EnqueueOptions, Job, JobId, ScheduleOptions } from 'monque'

@Injectable()
export class MonqueService {
  #queue?: Monque

  /** The queue (every method of `Monque`). Throws until MonqueModule has started. */
  get queue(): Monque {
    if (!this.#queue) throw new MonqueError('NOT_INITIALIZED', 'monque is not initialized: is MonqueModule loaded and `monque` configured?')
    return this.#queue
  }

  /** @internal Set by MonqueModule. */
  attach(queue: Monque | undefined): void {
    this.#queue = queue
  }

  enqueue<T>(name: string, data: T, options?: EnqueueOptions): Promise<Job<T>> {
    return this.queue.enqueue(name, data, options)
  }

  now<T>(name: string, data: T): Promise<Job<T>> {
    return this.queue.now(name, data)
  }

  schedule<T>(cron: string, name: string, data?: T, options?: ScheduleOptions): Promise<Job<T>> {
    return this.queue.schedule(cron, name, data, options)
  }

  every<T>(interval: number | string, name: string, data?: T, options?: ScheduleOptions): Promise<Job<T>> {
    return this.queue.every(interval, name, data, options)
  }

  unschedule(name: string, uniqueKey?: string): Promise<boolean> {
    return this.queue.unschedule(name, uniqueKey)
  }

  getJob<T = unknown>(id: JobId): Promise<Job<T> | null> {
    return this.queue.getJob<T>(id)
  }

  cancelJob(id: JobId): Promise<Job> {
    return this.queue.cancelJob(id)
  }

  metrics(): Promise<string> {
    return this.queue.metrics()
  }
}
