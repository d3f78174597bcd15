/**
 * Words and numbers as the panel and the dialog show them. Pure: no JupyterLab imports.
 */

/** 42 -> "42 s", 125 -> "2 min 05 s", 3725 -> "1 h 02 min". */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) {
    return '';
  }
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) {
    return `${s} s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  }
  const h = Math.floor(s / 3600);
  return `${h} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** A time relative to `now`: "in 5 min", "3 h ago", "just now". */
export function relative(iso: string | null | undefined, now: Date = new Date()): string {
  if (!iso) {
    return '';
  }
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) {
    return '';
  }
  const diff = Math.round((t - now.getTime()) / 1000);
  const abs = Math.abs(diff);
  if (abs < 45) {
    return 'just now';
  }
  const [n, unit] =
    abs < 3600
      ? [Math.round(abs / 60), 'min']
      : abs < 86400
        ? [Math.round(abs / 3600), 'h']
        : [Math.round(abs / 86400), abs < 2 * 86400 ? 'day' : 'days'];
  return diff > 0 ? `in ${n} ${unit}` : `${n} ${unit} ago`;
}

/** A date-time for people, in the given IANA zone (the job's), e.g. "Tue 24 Nov, 06:00". */
export function when(iso: string, timeZone?: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) {
    return iso;
  }
  return d.toLocaleString(undefined, {
    weekday: 'short',
    day: 'numeric',
    month: 'short',
    hour: '2-digit',
    minute: '2-digit',
    hour12: false,
    timeZone
  });
}

export type RunStatus = 'waiting' | 'queued' | 'running' | 'succeeded' | 'failed' | 'timed_out' | 'cancelled';

export const STATUS_LABELS: Record<RunStatus, string> = {
  waiting: 'Waiting',
  queued: 'Queued',
  running: 'Running',
  succeeded: 'Succeeded',
  failed: 'Failed',
  timed_out: 'Timed out',
  cancelled: 'Cancelled'
};

export function statusLabel(status: string | undefined): string {
  return (status && STATUS_LABELS[status as RunStatus]) || 'Never run';
}

/** Whether a run may still change (the panel keeps polling while one does). */
export function isLive(status: string | undefined): boolean {
  return status === 'waiting' || status === 'queued' || status === 'running';
}

/** How a run came to be, after its number: "by hand", "re-run of #3", "back-fill for 2026-11-30". */
export function triggerLabel(run: {
  trigger?: string;
  rerun_of?: number | null;
  upstream_run?: number | null;
  scheduled_for?: string | null;
}): string {
  const day = run.scheduled_for ? run.scheduled_for.slice(0, 10) : '';
  switch (run.trigger) {
    case 'manual':
      return 'by hand';
    case 'rerun':
      return run.rerun_of ? `re-run of #${run.rerun_of}` : 're-run';
    case 'backfill':
      return day ? `back-fill for ${day}` : 'back-fill';
    case 'upstream':
      return run.upstream_run ? `after run #${run.upstream_run}` : 'after another job';
    default:
      return '';
  }
}

export const CONCURRENCY_LABELS: Record<'skip' | 'replace' | 'allow', string> = {
  skip: 'Skip the new run if the previous one is still running',
  replace: 'Replace the previous run (stop it, start the new one)',
  allow: 'Allow overlapping runs'
};

/** A job name the service accepts, made from a notebook path: "Train Model v2.ipynb" -> "train-model-v2". */
export function jobName(path: string, maxLength = 30): string {
  const base = path.split('/').pop() ?? path;
  const stem = base.replace(/\.ipynb$/i, '');
  const slug = stem
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, maxLength)
    .replace(/^-+|-+$/g, '');
  return slug || 'notebook-job';
}

/** Percent done from the runner's progress (cells executed of all), or null. */
export function percent(progress: { cell?: number; of?: number } | null | undefined): number | null {
  if (!progress || !progress.of) {
    return null;
  }
  return Math.min(100, Math.round((100 * (progress.cell ?? 0)) / progress.of));
}

/** Bytes as people read them: `1.5 GiB`. */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** The status bar's words for the workspace: `Workspace 2.1 GiB / 10 GiB`. */
export function workspaceLabel(space: { used: number; total: number; level: string }): string {
  const label = `Workspace ${bytes(space.used)} / ${bytes(space.total)}`;
  return space.level === 'full' ? `${label} (full)` : label;
}

/**
 * What a job's runs run with, in a line: "python · small · 1 × a100 · kernel: workspace
 * environment proj" (a workspace environment's kernel is ``env-<name>``; pure).
 */
export function runsWith(job: {
  environment?: string | null;
  size?: string | null;
  gpu_type?: string | null;
  gpu_count?: number | null;
  kernel?: string | null;
}): string {
  const parts = [job.environment ?? 'default environment', job.size ?? 'default size'];
  if (job.gpu_type && job.gpu_count) {
    parts.push(`${job.gpu_count} × ${job.gpu_type}`);
  }
  if (job.kernel) {
    parts.push(`kernel: ${job.kernel.startsWith('env-') ? `workspace environment ${job.kernel.slice(4)}` : job.kernel}`);
  }
  return parts.join(' · ');
}

/** One GPU of the server, as its server extension reads it (nvidia-smi, or the simulated GPUs). */
export interface IGpuFigures {
  index: number;
  utilization: number;
  memory_used?: number | null;
  memory_total?: number | null;
}

/**
 * The status bar's GPU figures: "GPU 97%" (one GPU), "GPUs 97% 3%", with their memory when
 * known ("GPU 97% · 12 GiB / 80 GiB"), and the level: 'warn' when a GPU's memory is 90% used.
 * Empty text: no GPUs (pure).
 */
export function gpuLabel(gpus: IGpuFigures[]): { text: string; level: 'ok' | 'warn' } {
  if (!gpus.length) {
    return { text: '', level: 'ok' };
  }
  const busy = gpus.map(g => `${Math.round(g.utilization)}%`).join(' ');
  const known = gpus.filter(g => typeof g.memory_used === 'number' && typeof g.memory_total === 'number' && g.memory_total > 0);
  const used = known.reduce((n, g) => n + (g.memory_used as number), 0);
  const total = known.reduce((n, g) => n + (g.memory_total as number), 0);
  const memory = known.length ? ` · ${bytes(used)} / ${bytes(total)}` : '';
  const full = known.some(g => (g.memory_used as number) >= 0.9 * (g.memory_total as number));
  return { text: `${gpus.length > 1 ? 'GPUs' : 'GPU'} ${busy}${memory}`, level: full ? 'warn' : 'ok' };
}

/** How a secret is delivered, in words ("env DB_PASSWORD", "file key.json"). */
export function deliveryLabel(d: { env?: string; file?: string } | null | undefined): string {
  if (!d) {
    return '';
  }
  return d.env ? `env ${d.env}` : d.file ? `file ${d.file}` : '';
}

/** A default variable name for a secret: "db-password" -> "DB_PASSWORD". */
export function envName(secret: string): string {
  return secret.toUpperCase().replace(/[^A-Z0-9_]/g, '_').replace(/^([0-9])/, '_$1');
}
