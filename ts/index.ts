export { Monque } from './monque'
export type {
  EnqueueManyItem,
  EnqueueOptions,
  Handler,
  MonqueEvents,
  MonqueOptions,
  NotifyMode,
  WorkerOptions,
} from './monque'
export type { Job, JobStatus, RunningJob } from './job'
export type { Connection, DbLike, MongooseConnectionLike } from './connection'
export { MonqueError, UnrecoverableError } from './errors'
