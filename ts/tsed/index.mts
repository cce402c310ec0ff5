// monque/tsed: the Ts.ED integration (ESM, like Ts.ED 8).
export type { MonqueSettings } from './config.mjs'
export { currentJob, MONQUE_JOB } from './context.mjs'
export { Cron, Job, JobController, type CronOptions, type JobOptions } from './decorators.mjs'
export { MonqueModule } from './module.mjs'
export { MonqueService } from './service.mjs'
