// The job being handled, for code that runs inside a job's DI context.
import { getContext } from '@tsed/di'
import type { RunningJob } from 'monque'

/** DI token (and DIContext key) of the job being handled. `inject(MONQUE_JOB)` in a job class. */
export const MONQUE_JOB = Symbol.for('monque:job')

/** The job whose handler is running in this async context, if any. */
export function currentJob<T = unknown>(): RunningJob<T> | undefined {
  return getContext()?.get(MONQUE_JOB) as RunningJob<T> | undefined
}
