/**
 * A run's live log in the main area: polls the service while the run goes on, shows the
 * progress (cells executed of all) and stops when the run has ended.
 */
import { Widget } from '@lumino/widgets';

import type { JobsClient } from './api/client';
import type { Job, Run, TaskRun } from './api/types';
import { h } from './dom';
import { duration, isLive, percent, statusLabel } from './format';
import { chart, resourceLines } from './resources';
import { taskLabel } from './rungraph';

const POLL_MS = 2000;

/** A chart with its caption (the dashed line is the limit). */
function figure(caption: string, chart: SVGSVGElement): HTMLElement {
  return h('figure', { className: 'moonhub-ResourceFigure' }, chart, h('figcaption', { text: `${caption} (dashed: the limit)` }));
}

export class RunLogView extends Widget {
  private readonly pre = h('pre', { className: 'moonhub-Log', tabindex: 0, 'aria-label': 'Run log' });
  private readonly status = h('div', { className: 'moonhub-LogStatus', 'aria-live': 'polite' });
  private readonly bar = h('progress', { max: 100, className: 'moonhub-Progress' });
  /** what the run used, once it ended (kept from Prometheus) */
  private readonly used = h('div', { className: 'moonhub-Resources', hidden: true });
  private usedAsked = false;
  private timer = 0;

  constructor(
    private readonly client: JobsClient,
    readonly job: Job,
    private run: Run,
    private readonly task?: string
  ) {
    super();
    this.id = `moonhub-log-${job.id}-${run.id}${task ? `-${task}` : ''}`;
    this.addClass('moonhub-LogView');
    this.title.label = `Log: ${job.name} #${run.id}${task ? ` ${task}` : ''}`;
    this.title.closable = true;
    this.node.append(this.status, this.bar, this.used, this.pre);
    void this.poll();
  }

  private async poll(): Promise<void> {
    if (this.isDisposed) {
      return;
    }
    try {
      const runs = await this.client.runs(this.job.id!);
      this.run = runs.find(r => r.id === this.run.id) ?? this.run;
      const log = await this.client.log(this.job.id!, this.run.id!, this.task);
      const atBottom = this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 4;
      this.pre.textContent = log.log || '(no output yet)';
      if (atBottom) {
        this.pre.scrollTop = this.pre.scrollHeight;
      }
      const progress = this.run.progress ?? log.progress;
      const pct = percent(progress);
      this.bar.hidden = pct === null;
      if (pct !== null) {
        this.bar.value = pct;
        this.bar.textContent = `${pct}%`;
      }
      const cells = progress?.of ? ` — cell ${progress.cell ?? 0} of ${progress.of}` : '';
      const task = this.taskRun();
      if (task) {
        // a pipeline task's log: its own state, not the run's
        const attempt = task.attempt > 1 ? ` (attempt ${task.attempt})` : '';
        this.status.textContent = `${taskLabel(task.status)}${attempt}${task.reason ? ` — ${task.reason}` : ''}`;
        this.status.dataset.status = task.status;
      } else {
        const took = this.run.duration_seconds ? ` in ${duration(this.run.duration_seconds)}` : '';
        this.status.textContent = `${statusLabel(this.run.status)}${took}${cells}${this.run.reason ? ` — ${this.run.reason}` : ''}`;
        this.status.dataset.status = this.run.status ?? '';
      }
      if (log.kept_at) {
        // the run's pod is gone (its Job's time was up): this is the copy kept when it ended
        this.status.textContent += ` — log kept when it ended (${new Date(log.kept_at).toLocaleString()})`;
      }
    } catch (e) {
      this.status.textContent = `Could not read the log: ${(e as Error).message}`;
      if (!this.live()) {
        return;
      }
    }
    if (this.live()) {
      this.timer = window.setTimeout(() => void this.poll(), POLL_MS);
    } else {
      void this.showUsed();
    }
  }

  /** What the ended run used, under its status: kept a moment after it ends, so asked again a few times. */
  private async showUsed(tries = 5): Promise<void> {
    if (this.usedAsked || this.isDisposed) {
      return;
    }
    try {
      const r = await this.client.resources(this.job.id!, this.run.id!, this.task);
      const lines = resourceLines(r);
      if (!lines) {
        if (tries > 1) {
          window.setTimeout(() => void this.showUsed(tries - 1), 3000);
        }
        return;
      }
      this.usedAsked = true;
      this.used.replaceChildren(
        h('div', { className: 'moonhub-ResourceText', text: lines.join(' · ') }),
        figure('Memory over the run', chart('Memory over the run', r.memory_bytes ?? [], r.memory_limit_bytes)),
        figure('CPU over the run', chart('CPU over the run', r.cpu_cores ?? [], r.cpu_limit_cores)),
        ...(r.gpu_utilization_percent_peak !== null && r.gpu_utilization_percent_peak !== undefined
          ? [figure('GPU utilization over the run', chart('GPU utilization over the run', r.gpu_utilization_percent ?? [], 100))]
          : [])
      );
      this.used.hidden = false;
    } catch {
      // figures are extra: the log stands without them
    }
  }

  /** Read the run and its log again now (and go on polling while it may change). */
  refresh(): void {
    window.clearTimeout(this.timer);
    this.usedAsked = false;
    void this.poll();
  }

  private taskRun(): TaskRun | undefined {
    return this.task ? this.run.tasks?.find(t => t.name === this.task) : undefined;
  }

  /** Whether what this view shows may still change: the run's, or its task's, state. */
  private live(): boolean {
    const task = this.taskRun();
    return task ? task.status === 'pending' || task.status === 'queued' || task.status === 'running' : isLive(this.run.status);
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }
}
