/**
 * The jobs service as seen from JupyterLab: every request goes to the user's own server
 * (`<base>/moonhub/api/v1/...`), whose server extension forwards it with the server's hub
 * token. The browser never talks to the service directly.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type { IGpuFigures } from '../format';
import { errorFrom, JobsError } from './errors';
import type {
  EnvImage,
  EnvImageLog,
  IEnvironment,
  INotice,
  IWorkspaceSpace,
  Job,
  JobInput,
  Options,
  Run,
  RunFile,
  RunLog,
  RunResources,
  SchedulePreview,
  Secret,
  SecretInput,
  RunShare,
  RunShareInput,
  Share,
  ShareInput,
  Shares,
  IServerInfo,
  UsageReport
} from './types';

/** A new job: the definition plus the notebook to freeze. */
export type NewJob = JobInput & { name: string; notebook: string; notebook_content: Record<string, unknown> };

export class JobsClient {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  listJobs(): Promise<Job[]> {
    return this.api<{ jobs?: Job[] }>('jobs').then(r => r.jobs ?? []);
  }

  getJob(id: number): Promise<Job> {
    return this.api(`jobs/${id}`);
  }

  createJob(job: NewJob): Promise<Job> {
    return this.api('jobs', { method: 'POST', body: JSON.stringify(job) });
  }

  /** Change a job; with `notebook_content` the service freezes a new version. */
  updateJob(id: number, change: Partial<NewJob>): Promise<Job> {
    return this.api(`jobs/${id}`, { method: 'PATCH', body: JSON.stringify(change) });
  }

  deleteJob(id: number): Promise<void> {
    return this.api(`jobs/${id}`, { method: 'DELETE' });
  }

  /** Your secrets and your teams' (names only: values are write-only). */
  secrets(): Promise<Secret[]> {
    return this.api<{ secrets?: Secret[] }>('secrets').then(r => r.secrets ?? []);
  }

  putSecret(name: string, input: SecretInput): Promise<Secret> {
    return this.api(`secrets/${encodeURIComponent(name)}`, { method: 'PUT', body: JSON.stringify(input) });
  }

  deleteSecret(name: string): Promise<void> {
    return this.api(`secrets/${encodeURIComponent(name)}`, { method: 'DELETE' });
  }

  /** What your server is shared with, and the servers shared with you. */
  shares(): Promise<Shares> {
    return this.api('shares');
  }

  /** Share your server (a share with the same user or team is replaced). */
  share(input: ShareInput): Promise<Share> {
    return this.api('shares', { method: 'POST', body: JSON.stringify(input) });
  }

  /** End a share of your server now. */
  unshare(kind: 'user' | 'group', name: string): Promise<void> {
    return this.api(`shares/${kind}/${encodeURIComponent(name)}`, { method: 'DELETE' });
  }

  /** Share a run's output page with a team of yours; its members open the answer's url. */
  shareOutput(id: number, runId: number, input: RunShareInput): Promise<RunShare> {
    return this.api(`jobs/${id}/runs/${runId}/shares`, { method: 'POST', body: JSON.stringify(input) });
  }

  /** The files a run kept from its run folder. */
  runFiles(id: number, runId: number, task?: string): Promise<RunFile[]> {
    return this.api<{ files?: RunFile[] }>(`jobs/${id}/runs/${runId}/files${taskQuery(task)}`).then(r => r.files ?? []);
  }

  runNow(id: number): Promise<Run> {
    return this.api(`jobs/${id}/run`, { method: 'POST' });
  }

  runs(id: number): Promise<Run[]> {
    return this.api<{ runs?: Run[] }>(`jobs/${id}/runs`).then(r => r.runs ?? []);
  }

  /** Run an ended run again as it was (its version, parameters and the time it stood for). */
  rerun(id: number, runId: number, parameters?: Record<string, unknown>): Promise<Run> {
    return this.api(`jobs/${id}/runs/${runId}/rerun`, { method: 'POST', body: JSON.stringify(parameters ? { parameters } : {}) });
  }

  /** Run a failed pipeline run's failed tasks again, and the tasks after them. */
  repair(id: number, runId: number): Promise<Run> {
    return this.api(`jobs/${id}/runs/${runId}/repair`, { method: 'POST' });
  }

  cancelRun(id: number, runId: number): Promise<Run> {
    return this.api(`jobs/${id}/runs/${runId}`, { method: 'DELETE' });
  }

  /** The run's log, or (in a pipeline run) its task `task`'s. */
  log(id: number, runId: number, task?: string): Promise<RunLog> {
    return this.api(`jobs/${id}/runs/${runId}/log${taskQuery(task)}`);
  }

  /** What the ended run (or its task `task`) used, kept from Prometheus. */
  resources(id: number, runId: number, task?: string): Promise<RunResources> {
    return this.api(`jobs/${id}/runs/${runId}/resources${taskQuery(task)}`);
  }

  preview(schedule: string | null, timezone: string): Promise<SchedulePreview> {
    const query = URLExt.objectToQueryString(schedule ? { schedule, timezone } : { timezone });
    return this.api(`schedule-preview${query}`);
  }

  /** Your usage by day over the last `days` days, and your teams' totals. */
  usage(days: number): Promise<UsageReport> {
    return this.api(`usage?days=${days}`);
  }

  options(): Promise<Options> {
    return this.api('options');
  }

  /** Your images built from environments, newest first. */
  images(): Promise<EnvImage[]> {
    return this.api<{ images?: EnvImage[] }>('images').then(r => r.images ?? []);
  }

  /** A build's output: live while it builds, kept once it ended. */
  imageLog(id: number): Promise<EnvImageLog> {
    return this.api(`images/${id}/log`);
  }

  /** Cancel a build that has not ended, or remove an ended one from your images. */
  removeImage(id: number): Promise<unknown> {
    return this.api(`images/${id}`, { method: 'DELETE' });
  }

  /** Your environments in the workspace, and the catalog environment this server runs. */
  environments(): Promise<{ environments: IEnvironment[]; base: string }> {
    return this.request(URLExt.join(this.settings.baseUrl, 'moonhub/environments'), {});
  }

  /** Build an image of environment `name` (its packages frozen by your server) on `base`. */
  buildImage(name: string, base: string): Promise<EnvImage> {
    const url = URLExt.join(this.settings.baseUrl, 'moonhub/environments', encodeURIComponent(name), 'image');
    return this.request(url, { method: 'POST', body: JSON.stringify({ base }) });
  }

  /** What this server runs: a new job's environment, size and GPUs default to it. */
  serverInfo(): Promise<IServerInfo> {
    return this.request(URLExt.join(this.settings.baseUrl, 'moonhub/server'), {});
  }

  /** Warnings the hub's culling services left for this server's user. */
  notices(): Promise<INotice[]> {
    return this.request<{ notices?: INotice[] }>(URLExt.join(this.settings.baseUrl, 'moonhub/notices'), {}).then(
      r => r.notices ?? []
    );
  }

  /** This server's GPUs, live (none on a server without GPUs). */
  gpus(): Promise<IGpuFigures[]> {
    return this.request<{ gpus?: IGpuFigures[] }>(URLExt.join(this.settings.baseUrl, 'moonhub/gpus'), {}).then(r => r.gpus ?? []);
  }

  /** The workspace's size and use. */
  workspace(): Promise<IWorkspaceSpace> {
    return this.request(URLExt.join(this.settings.baseUrl, 'moonhub/workspace'), {});
  }

  private api<T>(path: string, init: RequestInit = {}): Promise<T> {
    return this.request(URLExt.join(this.settings.baseUrl, 'moonhub/api/v1', path), init);
  }

  private async request<T>(url: string, init: RequestInit): Promise<T> {
    let resp: Response;
    try {
      resp = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (e) {
      throw new JobsError(`Your server did not answer (${(e as Error).message}).`, 0);
    }
    const body = await resp.text();
    if (!resp.ok) {
      throw errorFrom(resp.status, body);
    }
    return (body ? JSON.parse(body) : undefined) as T;
  }
}

/** `?task=<name>` for a pipeline run's task; nothing for a run of one notebook. */
export function taskQuery(task?: string): string {
  return task ? URLExt.objectToQueryString({ task }) : '';
}
