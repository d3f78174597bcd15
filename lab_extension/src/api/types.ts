/** Names for the jobs service's schemas; all generated from jobs_service/openapi.yaml. */
import type { components, paths } from './schema';

type Schemas = components['schemas'];

export type Job = Schemas['Job'];
export type JobInput = Schemas['JobInput'];
export type Run = Schemas['Run'];
export type Notify = Schemas['Notify'];
export type SchedulePreview = Schemas['SchedulePreview'];
export type Options = Schemas['Options'];
export type Choice = Schemas['Choice'];
export type GpuChoice = Schemas['GpuChoice'];
export type Concurrency = NonNullable<JobInput['concurrency']>;
export type Secret = Schemas['Secret'];
export type SecretInput = Schemas['SecretInput'];
export type SecretUse = Schemas['SecretUse'];
export type Delivery = Schemas['Delivery'];
export type RunFile = Schemas['RunFile'];
export type Task = Schemas['Task'];
export type TaskRun = Schemas['TaskRun'];
export type RunResources = Schemas['RunResources'];
export type UsageFigures = Schemas['UsageFigures'];
export type UsageReport = Schemas['UsageReport'];
export type Share = Schemas['Share'];
export type ShareInput = Schemas['ShareInput'];
export type Shares = Schemas['Shares'];
export type RunShare = Schemas['RunShare'];
export type RunShareInput = Schemas['RunShareInput'];
export type EnvImage = Schemas['EnvImage'];
export type EnvImageLog = Schemas['EnvImageLog'];

/** The log route's answer: the log so far and the progress (cells executed of all). */
export type RunLog =
  paths['/jobs/{job_id}/runs/{run_id}/log']['get']['responses']['200']['content']['application/json'];

/** What the user's own server runs (answered by the server extension, not the service). */
export interface IServerInfo {
  environment: string | null;
  size: string | null;
  gpu_type: string | null;
  gpu_count: number;
  jobs_service: boolean;
}

/** A warning for the user from the hub's culling services (server extension route). */
export interface INotice {
  id: string;
  kind: 'idle' | 'gpu-idle' | string;
  message: string;
  /** when the server will be stopped (ISO date-time) */
  at: string;
}

/** The workspace's size and use (server extension route; on MoonHub's storage, its quota). */
export interface IWorkspaceSpace {
  total: number;
  used: number;
  free: number;
  level: 'ok' | 'warn' | 'full';
}

/** An environment in the user's workspace (`moonhub-env`; answered by the server extension). */
export interface IEnvironment {
  name: string;
  kernel: string;
  path: string;
  /** `ready`, or `broken: ...` with why */
  state: string;
}
