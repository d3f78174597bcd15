/**
 * The Jobs panel (left sidebar): each definition with its schedule, next run and last
 * status; open one for its runs (status, duration, progress, log, output, cancel) and its
 * actions (run now, pause / resume, edit, delete). Refreshes itself while shown.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import type { JobsClient } from './api/client';
import { JobsError } from './api/errors';
import type { Job, Run } from './api/types';
import { button, h } from './dom';
import { duration, isLive, percent, relative, runsWith, statusLabel, triggerLabel, when } from './format';
import { runGraph } from './rungraph';

export interface IPanelActions {
  /** open the dialog to edit a job (a new snapshot of its notebook) */
  edit(job: Job): Promise<void>;
  /** open a run's live log */
  openLog(job: Job, run: Run, task?: string): void;
  /** open a run's output notebook */
  openOutput(path: string): Promise<void>;
  /** show a run's kept output, rendered, and its files */
  viewOutput(job: Job, run: Run, task?: string): void;
}

export class JobsPanel extends Widget {
  private readonly list = h('ul', { className: 'moonhub-JobList', 'aria-label': 'Scheduled jobs' });
  private readonly message = h('div', { className: 'moonhub-PanelMessage', 'aria-live': 'polite' });
  private readonly expanded = new Set<number>();
  private readonly runs = new Map<number, Run[]>();
  private timer = 0;
  private busy = false;

  constructor(
    private readonly client: JobsClient,
    private readonly actions: IPanelActions,
    private readonly intervalMs: () => number
  ) {
    super();
    this.id = 'moonhub-jobs-panel';
    this.addClass('moonhub-JobsPanel');
    this.title.caption = 'Scheduled notebook jobs';
    const refresh = button('Refresh', { className: 'jp-mod-styled moonhub-Refresh', title: 'Refresh the jobs' }, () =>
      void this.refresh()
    );
    this.node.append(
      h('div', { className: 'moonhub-PanelHeader' }, h('h2', { text: 'Scheduled jobs' }), refresh),
      this.message,
      this.list
    );
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  protected onAfterHide(): void {
    window.clearTimeout(this.timer);
  }

  /** Read the jobs (and the runs of the open ones) and redraw; polls again while shown. */
  async refresh(): Promise<void> {
    window.clearTimeout(this.timer);
    if (this.busy) {
      return;
    }
    this.busy = true;
    try {
      const jobs = await this.client.listJobs();
      for (const id of this.expanded) {
        if (jobs.some(j => j.id === id)) {
          // each run carries its progress, recorded by the service while it runs
          this.runs.set(id, await this.client.runs(id));
        }
      }
      this.render(jobs);
    } catch (e) {
      this.showProblem(e);
    } finally {
      this.busy = false;
      if (this.isVisible) {
        this.timer = window.setTimeout(() => void this.refresh(), this.intervalMs());
      }
    }
  }

  private showProblem(e: unknown): void {
    const msg = e instanceof Error ? e.message : String(e);
    const hint =
      e instanceof JobsError && (e.status === 0 || e.status >= 500)
        ? ' Check that your server is running; the panel retries by itself.'
        : '';
    this.message.className = 'moonhub-PanelMessage moonhub-mod-error';
    this.message.replaceChildren(
      h('p', { text: `Could not load your jobs: ${msg}${hint}` }),
      button('Try again', { className: 'jp-mod-styled' }, () => void this.refresh())
    );
  }

  private render(jobs: Job[]): void {
    this.message.className = 'moonhub-PanelMessage';
    if (!jobs.length) {
      this.message.replaceChildren(
        h('p', { text: 'No scheduled notebooks yet.' }),
        h('p', {
          text: 'Open a notebook and click "Schedule" in its toolbar, or right-click a notebook in the file browser.'
        })
      );
    } else {
      this.message.replaceChildren();
    }
    const focused = document.activeElement?.getAttribute('data-key');
    this.list.replaceChildren(...jobs.map(j => this.renderJob(j)));
    if (focused) {
      this.list.querySelector<HTMLElement>(`[data-key="${focused}"]`)?.focus();
    }
  }

  private renderJob(job: Job): HTMLElement {
    const id = job.id!;
    const open = this.expanded.has(id);
    const last = job.last_run;
    const status = last?.status ?? 'never';
    const toggle = h(
      'button',
      {
        type: 'button',
        className: 'moonhub-JobToggle',
        'aria-expanded': open ? 'true' : 'false',
        'data-key': `toggle-${id}`,
        title: open ? 'Hide the runs' : 'Show the runs'
      },
      h('span', { className: 'moonhub-JobName', text: job.name }),
      job.team ? h('span', { className: 'moonhub-Badge moonhub-mod-team', text: `team ${job.team}`, title: `Owned by team ${job.team}; made by ${job.owner}` }) : '',
      h('span', { className: `moonhub-Badge moonhub-mod-${status}`, text: statusLabel(last?.status) })
    );
    toggle.addEventListener('click', () => {
      if (open) {
        this.expanded.delete(id);
      } else {
        this.expanded.add(id);
      }
      void this.refresh();
    });
    const next = job.suspended_reason
      ? 'Suspended'
      : job.next_run
        ? `Next: ${when(job.next_run, job.timezone)} (${relative(job.next_run)})`
        : job.active === false
          ? 'Paused'
          : 'Runs only when asked';
    const li = h(
      'li',
      { className: `moonhub-Job${job.active === false ? ' moonhub-mod-paused' : ''}`, 'data-job': job.name },
      toggle,
      h('div', { className: 'moonhub-JobMeta', text: `${job.schedule_description ?? ''} · ${job.timezone ?? 'UTC'}` }),
      h('div', { className: 'moonhub-JobMeta', text: `${next} · notebook ${job.notebook} v${job.version}` }),
      h('div', { className: 'moonhub-JobMeta moonhub-JobRunsWith', text: runsWith(job) })
    );
    if (job.suspended_reason) {
      // MoonHub suspended it: the owner may no longer run it as defined (edit it to resume)
      li.append(
        h('div', {
          className: 'moonhub-JobSuspended',
          role: 'status',
          text: `Suspended by MoonHub: ${job.suspended_reason}. Edit the job with choices you may use to resume it.`
        })
      );
    }
    if (open) {
      li.append(this.renderActions(job), this.renderRuns(job));
    }
    return li;
  }

  private renderActions(job: Job): HTMLElement {
    const id = job.id!;
    const act = (label: string, key: string, fn: () => Promise<unknown>) =>
      button(label, { className: 'jp-mod-styled moonhub-Action', 'data-key': `${key}-${id}` }, () =>
        void fn()
          .then(() => this.refresh())
          .catch(e => this.showProblem(e))
      );
    return h(
      'div',
      { className: 'moonhub-Actions', role: 'group', 'aria-label': `Actions for ${job.name}` },
      act('Run now', 'run', () => this.client.runNow(id)),
      act(job.active === false ? 'Resume' : 'Pause', 'pause', () =>
        this.client.updateJob(id, { active: job.active === false })
      ),
      act('Edit', 'edit', () => this.actions.edit(job)),
      act('Delete', 'delete', () => this.confirmDelete(job))
    );
  }

  private async confirmDelete(job: Job): Promise<void> {
    const answer = await showDialog({
      title: `Delete job "${job.name}"?`,
      body: 'Its schedule, frozen notebook versions and run history go; output notebooks in your workspace stay.',
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (answer.button.accept) {
      this.expanded.delete(job.id!);
      await this.client.deleteJob(job.id!);
    }
  }

  private renderRuns(job: Job): HTMLElement {
    const runs = this.runs.get(job.id!) ?? [];
    if (!runs.length) {
      return h('p', { className: 'moonhub-Help', text: 'No runs yet. "Run now" starts one.' });
    }
    return h('ul', { className: 'moonhub-Runs', 'aria-label': `Runs of ${job.name}` }, ...runs.map(r => this.renderRun(job, r)));
  }

  private renderRun(job: Job, run: Run): HTMLElement {
    const live = isLive(run.status);
    const started = run.started ?? run.created;
    const pipeline = !!run.tasks?.length;
    const actions = h(
      'div',
      { className: 'moonhub-RunActions', role: 'group', 'aria-label': `Run ${run.id}` },
      // a pipeline run's logs and outputs are its tasks' (in its graph)
      pipeline ? '' : button('Log', { className: 'jp-mod-styled', 'data-key': `log-${run.id}` }, () => this.actions.openLog(job, run))
    );
    if (!pipeline && run.output && run.status !== 'waiting' && run.status !== 'queued' && run.status !== 'cancelled') {
      actions.append(
        button('Output', { className: 'jp-mod-styled', 'data-key': `output-${run.id}`, title: run.output }, () =>
          void this.actions.openOutput(run.output!).catch(e => this.showProblem(e))
        )
      );
    }
    if (run.output_kept) {
      actions.append(
        button('View', { className: 'jp-mod-styled', 'data-key': `view-${run.id}`, title: 'The executed notebook, rendered, and the files the run kept' }, () =>
          this.actions.viewOutput(job, run)
        )
      );
    }
    if (pipeline && !live && run.status !== 'succeeded') {
      actions.append(
        this.runAction('Repair', `repair-${run.id}`, 'Run the failed tasks again, and the tasks after them; what succeeded stays', () =>
          this.client.repair(job.id!, run.id!)
        )
      );
    }
    if (!live) {
      actions.append(
        this.runAction('Re-run', `rerun-${run.id}`, 'Run it again as it was: its notebook version, parameters and date', () =>
          this.client.rerun(job.id!, run.id!)
        )
      );
    }
    if (live) {
      actions.append(
        this.runAction('Cancel', `cancel-${run.id}`, undefined, () => this.client.cancelRun(job.id!, run.id!))
      );
    }
    const when = [started ? relative(started) : '', live ? '' : duration(run.duration_seconds)].filter(Boolean);
    return h(
      'li',
      { className: 'moonhub-Run', 'data-run': run.id, 'data-status': run.status },
      h(
        'div',
        { className: 'moonhub-RunLine' },
        h('span', { text: [`#${run.id}`, triggerLabel(run)].filter(Boolean).join(' ') }),
        h('span', { className: `moonhub-Badge moonhub-mod-${run.status}`, text: statusLabel(run.status), title: run.reason ?? '' }),
        h('span', { className: 'moonhub-JobMeta', text: when.join(' · ') }),
        live ? this.progressBar(run) : ''
      ),
      // a queued run says why it waits (its GPUs, its place); an ended one why it ended
      run.reason && (run.status === 'queued' || (!live && run.status !== 'succeeded'))
        ? h('div', { className: 'moonhub-RunReason', text: run.reason })
        : '',
      pipeline
        ? runGraph(run.id!, run.tasks!, {
            log: task => this.actions.openLog(job, run, task),
            view: task => this.actions.viewOutput(job, run, task)
          })
        : '',
      actions
    );
  }

  /** A run's button that asks the service, then shows the runs again (or the problem). */
  private runAction(label: string, key: string, title: string | undefined, call: () => Promise<unknown>): HTMLButtonElement {
    return button(label, { className: 'jp-mod-styled', 'data-key': key, title }, () =>
      void call()
        .then(() => this.refresh())
        .catch(e => this.showProblem(e))
    );
  }

    private progressBar(run: Run): HTMLElement | string {
    const pct = percent(run.progress);
    if (pct === null) {
      return '';
    }
    const bar = h('progress', { max: 100, className: 'moonhub-Progress', 'aria-label': `Run ${run.id} progress` });
    bar.value = pct;
    return h('span', {}, bar, ` ${pct}%`);
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }
}
