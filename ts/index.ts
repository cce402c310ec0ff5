export { Monque } from './monque'
export type {
  EnqueueManyItem,
  CursorOptions,
  EnqueueOptions,
  GetJobsOptions,
  InstanceInfo,
  JobNameSummary,
  Handler,
  JobId,
  JobPage,
  JobSelector,
  Logger,
  MonqueOptions,
  NotifyMode,
  QueueStats,
  GroupSummary,
  ScheduleOptions,
  SortField,
  TelemetryOptions,
  TraceContext,
  WorkerOptions,
} from './types'
export type { MonqueEvents } from './events'
export type { Attempt, Job, JobStatus, Repeat, RunningJob } from './job'
export type { Connection, DbLike, MongooseConnectionLike } from './connection'
export { MonqueError, UnrecoverableError } from './errors'
