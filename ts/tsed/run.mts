// Runs one job's handler the Ts.ED way: in its own DI context, with the job in it.
import { DIContext, inject, injector, localsContainer, logger, runInContext } from '@tsed/di'
import type { RunningJob } from 'monque'

import { MONQUE_JOB } from './context.mjs'
import { CONTROLLER_PROVIDER, JOB_PROVIDER, jobEntries, type JobEntry } from './decorators.mjs'
import { rememberThrown } from './logger.mjs'

/** Every `@Job` / `@JobController` entry of the loaded providers. */
export function handlerEntries(): JobEntry[] {
  const providers = [...injector().getProviders(JOB_PROVIDER), ...injector().getProviders(CONTROLLER_PROVIDER)]
  return providers.flatMap((provider) => jobEntries(provider.useClass))
}

/**
 * Runs one job in its own DI context: `currentJob()` and `inject(MONQUE_JOB)` give the
 * job; a request-scoped handler class (and the request-scoped providers it injects)
 * is built for this job and destroyed after it; a singleton is the one instance.
 */
export async function runJob(entry: JobEntry, job: RunningJob): Promise<unknown> {
  const $ctx = new DIContext({ id: `monque:${job.id}`, injector: injector(), logger: logger() })
  $ctx.set(MONQUE_JOB, job)
  // A new locals container for this job: request-scoped providers are built in it,
  // once per job, and destroyed with it. Field `inject()`s read the current container,
  // so it is made current right before the (synchronous) construction, after
  // runInContext's own awaits.
  let locals: ReturnType<typeof localsContainer> | undefined
  try {
    return await runInContext($ctx, () => {
      locals = localsContainer({ providers: [{ token: MONQUE_JOB, use: job }] })
      const instance = inject<any>(entry.target, { locals })
      return instance[entry.method](job)
    })
  } catch (err) {
    rememberThrown(job.id, err)
    throw err
  } finally {
    await locals?.destroy()
    locals?.clear()
    await $ctx.destroy()
  }
}
