// Unit-testing job handlers: run a @Job handler under DITest / PlatformTest with a
// job you give, as a worker would run it (same DI context), without a queue.
import { MonqueError } from 'monque'
import type { RunningJob } from 'monque'

import { handlerEntries, runJob } from './run.mjs'

/** What `MonqueTest.runJob` passes: any job fields; the rest gets test defaults. */
export type TestJob<T> = Partial<Omit<RunningJob<T>, 'name'>>

export class MonqueTest {
  /**
   * Runs the handler of `name` (a `@Job` class or a `@JobController` method) in a job
   * DI context and resolves with what it returns (rejects with what it throws).
   * Needs a loaded injector (`DITest.create()` / `PlatformTest.create()`); the
   * `monque` configuration may be absent or `enabled: false`: no database is used.
   * `job.updateProgress` records into `job.progress`; `job.snooze` is a no-op.
   */
  static runJob<T = unknown>(name: string, job: TestJob<T> = {}): Promise<unknown> {
    const entry = handlerEntries().find((e) => e.name === name)
    if (!entry) return Promise.reject(new MonqueError('INVALID_JOB_NAME', `no @Job handler for "${name}" is loaded`))
    const now = new Date()
    const running = {
      id: randomId(),
      data: {} as T,
      status: 'processing',
      priority: 0,
      nextRunAt: now,
      failCount: 0,
      createdAt: now,
      updatedAt: now,
      signal: new AbortController().signal,
      snooze: () => {},
      ...job,
      name,
    } as RunningJob<T>
    running.updateProgress ??= async (value: unknown) => {
      running.progress = value
      return true
    }
    return runJob(entry, running as RunningJob)
  }
}

function randomId(): string {
  let id = ''
  for (let i = 0; i < 24; i++) id += Math.floor(Math.random() * 16).toString(16)
  return id
}
