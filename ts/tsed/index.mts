// monque/tsed: the Ts.ED integration (ESM, like Ts.ED 8).
export type { MonqueSettings } from './config.mjs'
export { currentJob, MONQUE_JOB } from './context.mjs'
export {
  Cron, Every, Job, JobController,
  type CronOptions, type EveryOptions, type JobControllerOptions, type JobOptions,
} from './decorators.mjs'
export { MonqueModule } from './module.mjs'
export { MonqueService } from './service.mjs'
export { MonqueTest, type TestJob } from './testing.mjs'
