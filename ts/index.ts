export { Monque } from './monque'
export type {
  EnqueueManyItem,
  EnqueueOptions,
  Handler,
  MonqueEvents,
  MonqueOptions,
  NotifyMode,
  ScheduleOptions,
  WorkerOptions,
} from './monque'
export type { Job, JobStatus, Repeat, RunningJob } from './job'
export type { Connection, DbLike, MongooseConnectionLike } from './connection'
export { MonqueError, UnrecoverableError } from './errors'
