/**
 * The "Schedule this notebook" dialog: a schedule (presets or cron) described in words with
 * its next runs from the service, the environment / size / GPUs, parameters from the
 * notebook's `parameters` cell, timeout, retries, concurrency, notifications and "run once
 * now". The service's field errors appear next to their fields; the dialog stays open.
 */
import { Widget } from '@lumino/widgets';

import type { JobsClient, NewJob } from './api/client';
import { fieldMessage, JobsError } from './api/errors';
import type { Concurrency, EnvImage, Job, Options, Run, IServerInfo, Secret } from './api/types';
import { button, h, select } from './dom';
import { CONCURRENCY_LABELS, jobName, when } from './format';
import { ParametersEditor } from './parameterseditor';
import { browserTimeZone, timeZones } from './schedule';
import { SchedulePicker } from './schedulepicker';
import { PipelinePart } from './pipelinepart';
import { SecretPicker } from './secretpicker';

export interface IScheduleRequest {
  client: JobsClient;
  /** the notebook's path in the workspace */
  path: string;
  /** the notebook as saved: its parameters cell, and the snapshot to freeze */
  notebook: Record<string, unknown>;
  options: Options;
  server: IServerInfo | null;
  /** editing: the job to change (saving freezes the notebook as a new version) */
  job?: Job;
  /** the secrets the user may give the job (theirs and their teams') */
  secrets?: Secret[];
  /** a workspace notebook as a pipeline task runs it (outputs stripped) */
  readNotebook?: (path: string) => Promise<Record<string, unknown>>;
  /** the kernels this server offers (the image's and the workspace's environments) */
  kernels?: IKernelChoice[];
  /** the user's images built from environments, ready to run (docs/environment-images.md) */
  images?: EnvImage[];
}

/** A kernel a run may use: its name and what the launcher calls it. */
export interface IKernelChoice {
  name: string;
  display_name: string;
}

export interface IScheduleResult {
  job: Job;
  run: Run | null;
}

/** Fields the service may name in an error, shown next to these controls. */
const FIELDS = [
  'name',
  'schedule',
  'timezone',
  'environment',
  'size',
  'gpu_type',
  'gpu_count',
  'parameters',
  'timeout_seconds',
  'retries',
  'concurrency',
  'kernel',
  'own_image',
  'notify',
  'secrets',
  'after',
  'tasks',
  'team'
] as const;
type Field = (typeof FIELDS)[number];

let counter = 0;

export class ScheduleDialog extends Widget {
  /** Open the dialog; resolves with the saved job, or null when cancelled. */
  static open(req: IScheduleRequest): Promise<IScheduleResult | null> {
    const dialog = new ScheduleDialog(req);
    Widget.attach(dialog, document.body);
    dialog.focusFirst();
    return dialog.result;
  }

  readonly result: Promise<IScheduleResult | null>;
  private resolve!: (r: IScheduleResult | null) => void;
  private readonly req: IScheduleRequest;
  private readonly uid = `moonhub-schedule-${++counter}`;
  private readonly errors = new Map<string, HTMLElement>();
  private readonly controls = new Map<string, HTMLElement>();
  private readonly general = h('div', { className: 'moonhub-FormError', role: 'alert' });
  private readonly params: ParametersEditor;
  private readonly previewEl = h('div', { className: 'moonhub-Preview', 'aria-live': 'polite' });
  private previewTimer = 0;
  private previewSeq = 0;
  private saving = false;

  // controls
  private readonly name: HTMLInputElement;
  private readonly schedule: SchedulePicker;
  private readonly timezone: HTMLInputElement;
  private readonly environment: HTMLSelectElement;
  private readonly size: HTMLSelectElement;
  private readonly gpuType: HTMLSelectElement;
  private readonly gpuCount: HTMLSelectElement;
  private readonly timeout: HTMLInputElement;
  private readonly retries: HTMLInputElement;
  private readonly concurrency: HTMLSelectElement;
  private readonly kernel: HTMLSelectElement;
  private readonly ownImage: HTMLSelectElement;
  private readonly emails: HTMLInputElement;
  private readonly onSuccess: HTMLInputElement;
  private readonly webhook: HTMLInputElement;
  private readonly webhookFormat: HTMLSelectElement;
  private readonly overdue: HTMLInputElement;
  private readonly runNow: HTMLInputElement;
  private readonly after: HTMLInputElement;
  private readonly accept: HTMLButtonElement;
  private readonly secrets: SecretPicker;
  private readonly pipeline: PipelinePart;
  private readonly team: HTMLSelectElement;

  constructor(req: IScheduleRequest) {
    super();
    this.req = req;
    this.result = new Promise(r => (this.resolve = r));
    this.addClass('jp-Dialog');
    this.addClass('jp-ThemedContainer');
    this.addClass('moonhub-ScheduleDialog');
    const job = req.job;
    const id = (f: string) => `${this.uid}-${f}`;

    const paramsError = h('div', { id: id('parameters-error'), className: 'moonhub-FieldError', role: 'alert' });
    this.errors.set('parameters', paramsError);
    this.params = new ParametersEditor(id, req.notebook, (job?.parameters ?? {}) as Record<string, unknown>, paramsError);

    this.name = h('input', {
      id: id('name'),
      className: 'jp-mod-styled',
      value: job?.name ?? jobName(req.path),
      maxlength: 30,
      autocomplete: 'off',
      readonly: !!job
    });

    // schedule
    this.schedule = new SchedulePicker(id, job?.schedule, !!job, () => this.schedulePreview());
    this.timezone = h('input', {
      id: id('timezone'),
      className: 'jp-mod-styled',
      value: job?.timezone ?? browserTimeZone(),
      list: id('zones'),
      spellcheck: false
    });
    const zones = h('datalist', { id: id('zones') }, ...timeZones().map(z => h('option', { value: z })));

    // environment, size, GPUs: the server's by default, limited to the entitlements
    const o = req.options;
    const pick = (items: { name: string; default?: boolean }[], want: string | null | undefined) =>
      items.find(i => i.name === want)?.name ?? items.find(i => i.default)?.name ?? items[0]?.name;
    const envs = o.environments.map(e => ({ value: e.name, label: e.display_name }));
    this.environment = select(id('environment'), envs, pick(o.environments, job?.environment ?? req.server?.environment));
    const sizes = o.sizes.map(s => ({ value: s.name, label: s.display_name }));
    this.size = select(id('size'), sizes, pick(o.sizes, job?.size ?? req.server?.size));
    const gpuWanted = job ? job.gpu_type : req.server?.gpu_type;
    const gpuTypes = [{ value: '', label: 'No GPU' }, ...o.gpu_types.map(g => ({ value: g.name, label: g.display_name }))];
    this.gpuType = select(id('gpu_type'), gpuTypes, o.gpu_types.some(g => g.name === gpuWanted) ? gpuWanted : '');
    this.gpuCount = select(id('gpu_count'), []);
    this.fillGpuCounts(job ? job.gpu_count ?? 0 : req.server?.gpu_count ?? 0);
    this.gpuType.addEventListener('change', () => this.fillGpuCounts(1));
    // GPUs only with an environment built for CUDA: what is offered is what saving accepts
    this.gpusForEnvironment();
    this.environment.addEventListener('change', () => this.gpusForEnvironment());

    // the kernel: the notebook's own unless another is picked (a workspace environment's)
    const meta = (req.notebook.metadata ?? {}) as { kernelspec?: { name?: string; display_name?: string } };
    const own = meta.kernelspec?.display_name ?? meta.kernelspec?.name ?? 'Python 3';
    const kernels = (req.kernels ?? []).map(k => ({ value: k.name, label: k.display_name }));
    const wanted = job?.kernel ?? '';
    if (wanted && !kernels.some(k => k.value === wanted)) {
      kernels.push({ value: wanted, label: `${wanted} (not in this server)` });
    }
    this.kernel = select(id('kernel'), [{ value: '', label: `The notebook's (${own})` }, ...kernels], wanted);

    // the image: the environment's own, or one the user built (on that environment)
    const images = (req.images ?? []).map(i => ({
      value: String(i.id),
      label: `Your image #${i.id}: ${i.environment} on ${i.base}`,
      base: i.base
    }));
    const wantedImage = job?.own_image ? String(job.own_image) : '';
    if (wantedImage && !images.some(i => i.value === wantedImage)) {
      images.push({ value: wantedImage, label: `Image #${wantedImage} (no longer ready)`, base: '' });
    }
    this.ownImage = select(id('own_image'), [{ value: '', label: "The environment's own" }, ...images], wantedImage);
    this.ownImage.addEventListener('change', () => {
      const base = images.find(i => i.value === this.ownImage.value)?.base;
      if (base && Array.from(this.environment.options).some(o => o.value === base)) {
        this.environment.value = base;
        this.gpusForEnvironment();
      }
    });

    this.timeout = h('input', {
      id: id('timeout_seconds'),
      type: 'number',
      min: 1,
      max: 10080,
      className: 'jp-mod-styled',
      value: Math.round((job?.timeout_seconds ?? 3600) / 60)
    });
    this.retries = h('input', {
      id: id('retries'),
      type: 'number',
      min: 0,
      max: 10,
      className: 'jp-mod-styled',
      value: job?.retries ?? 0
    });
    this.concurrency = select(
      id('concurrency'),
      (Object.keys(CONCURRENCY_LABELS) as Concurrency[]).map(k => ({ value: k, label: CONCURRENCY_LABELS[k] })),
      job?.concurrency ?? 'skip'
    );
    const notify = job?.notify;
    this.emails = h('input', {
      id: id('notify'),
      type: 'text',
      className: 'jp-mod-styled',
      value: (notify?.emails ?? []).join(', '),
      placeholder: 'you@example.com, team@example.com'
    });
    this.onSuccess = h('input', { id: id('on_success'), type: 'checkbox' });
    this.onSuccess.checked = !!notify?.on_success;
    this.webhook = h('input', {
      id: id('webhook'),
      type: 'url',
      className: 'jp-mod-styled',
      value: notify?.webhook ?? '',
      placeholder: 'https://chat.example.com/hooks/...'
    });
    this.webhookFormat = h(
      'select',
      { id: id('webhook_format'), className: 'jp-mod-styled' },
      h('option', { value: 'plain', text: 'MoonHub JSON' }),
      h('option', { value: 'slack', text: 'Chat message (Slack-compatible)' })
    );
    this.webhookFormat.value = notify?.webhook_format ?? 'plain';
    this.overdue = h('input', {
      id: id('overdue_after_seconds'),
      type: 'number',
      min: '0',
      step: '1',
      className: 'jp-mod-styled',
      value: notify?.overdue_after_seconds ? String(Math.round(notify.overdue_after_seconds / 60)) : '',
      placeholder: 'off'
    });
    this.after = h('input', {
      id: id('after'),
      type: 'text',
      className: 'jp-mod-styled',
      value: (job?.after ?? []).join(', '),
      placeholder: 'prepare-data'
    });
    this.secrets = new SecretPicker(this.uid, req.secrets ?? [], job?.secrets ?? []);
    this.pipeline = new PipelinePart(this.uid, req.path, job?.tasks ?? []);
    // who owns the job: the user, or a team of theirs (it then runs as the team)
    const teams = [...(req.options.teams ?? [])];
    if (job?.team && !teams.includes(job.team)) {
      teams.push(job.team);
    }
    this.team = select(
      id('team'),
      [{ value: '', label: job && job.owner ? `Only ${job.owner}` : 'Only me' }, ...teams.map(t => ({ value: t, label: `Team ${t}` }))],
      job?.team ?? ''
    );
    this.runNow = h('input', { id: id('run_now'), type: 'checkbox' });
    this.accept = button(job ? 'Save' : 'Schedule', { className: 'jp-Dialog-button jp-mod-accept jp-mod-styled' }, () =>
      void this.submit()
    );

    this.controls.set('name', this.name);
    this.controls.set('schedule', this.schedule.preset);
    this.controls.set('timezone', this.timezone);
    this.controls.set('environment', this.environment);
    this.controls.set('size', this.size);
    this.controls.set('gpu_type', this.gpuType);
    this.controls.set('gpu_count', this.gpuCount);
    this.controls.set('timeout_seconds', this.timeout);
    this.controls.set('retries', this.retries);
    this.controls.set('concurrency', this.concurrency);
    this.controls.set('kernel', this.kernel);
    this.controls.set('own_image', this.ownImage);
    this.controls.set('notify', this.emails);
    this.controls.set('team', this.team);

    this.node.append(this.build(zones));
    this.node.addEventListener('keydown', e => this.onKey(e));
    this.timezone.addEventListener('input', () => this.schedulePreview());
    this.schedulePreview(0);
  }

  focusFirst(): void {
    (this.req.job ? this.schedule.preset : this.name).focus();
  }

  // ---- layout ---------------------------------------------------------------------------
  private build(zones: HTMLElement): HTMLElement {
    const id = (f: string) => `${this.uid}-${f}`;
    const title = this.req.job ? `Edit job "${this.req.job.name}"` : 'Schedule this notebook';
    const body = h(
      'form',
      { className: 'jp-Dialog-body moonhub-Form', novalidate: true },
      this.general,
      h('p', { className: 'moonhub-Notebook' }, 'Notebook: ', h('code', { text: this.req.path })),
      this.field('name', 'Job name', this.name, 'Lower-case letters, digits and "-"; names the job in the Jobs panel.'),
      this.field(
        'team',
        'Owned by',
        this.team,
        "A team's job runs as the team: its folder, its secrets, its GPU quota. Its members see it; its editors change it (keep its notebook in the team's folder so they can)."
      ),
      this.field('schedule', 'Schedule', this.schedule.row),
      this.schedule.days,
      this.field('timezone', 'Time zone', this.timezone),
      zones,
      this.previewEl,
      h(
        'div',
        { className: 'moonhub-Grid' },
        this.field('environment', 'Environment', this.environment),
        this.field('size', 'Size', this.size),
        this.field('gpu_type', 'GPU type', this.gpuType),
        this.field('gpu_count', 'GPUs', this.gpuCount)
      ),
      this.field(
        'own_image',
        'Image',
        this.ownImage,
        'An image you built from one of your environments runs instead of the environment\u2019s; the environment is the one it was built on.'
      ),
      this.field(
        'kernel',
        'Kernel',
        this.kernel,
        'Runs use this kernel: an environment of yours (moonhub-env) or one of the image; it must exist when the run starts.'
      ),
      this.params.node,
      h(
        'div',
        { className: 'moonhub-Grid' },
        this.field('timeout_seconds', 'Timeout (minutes)', this.timeout),
        this.field('retries', 'Retries on failure', this.retries)
      ),
      this.field('concurrency', 'If the previous run is still running', this.concurrency),
      this.field('after', 'Also run after', this.after, 'Your jobs (comma-separated) whose every success starts a run of this one.'),
      this.field(
        'tasks',
        'Pipeline: more notebooks after this one',
        this.pipeline.node,
        'Each runs as a task when the tasks it runs after have ended; values this notebook hands on with moonhub.publish(name, value) reach them as parameters.'
      ),
      this.field('secrets', 'Secrets', this.secrets.node, 'Values reach each run as variables or files under /var/run/secrets/moonhub; never in the notebook.'),
      this.field('notify', 'E-mail when a run fails', this.emails, 'Comma-separated addresses.'),
      h('label', { className: 'moonhub-Check', for: id('on_success') }, this.onSuccess, 'Also notify when a run succeeds'),
      h('label', { className: 'moonhub-Label', for: id('webhook') }, 'Webhook (optional)'),
      this.webhook,
      h('label', { className: 'moonhub-Label', for: id('webhook_format') }, 'Webhook message'),
      this.webhookFormat,
      h('label', { className: 'moonhub-Label', for: id('overdue_after_seconds') }, 'Also notify when a run takes longer than (minutes)'),
      this.overdue,
      h('label', { className: 'moonhub-Check', for: id('run_now') }, this.runNow, 'Run once now as well')
    );
    body.addEventListener('submit', e => {
      e.preventDefault();
      void this.submit();
    });
    const cancel = button('Cancel', { className: 'jp-Dialog-button jp-mod-reject jp-mod-styled' }, () => this.close());
    return h(
      'div',
      { className: 'jp-Dialog-content moonhub-ScheduleDialog-content', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': id('title') },
      h('div', { className: 'jp-Dialog-header', id: id('title') }, title),
      body,
      h('div', { className: 'jp-Dialog-footer' }, h('div', { className: 'jp-Dialog-footerButtons' }, cancel, this.accept))
    );
  }

  private field(name: Field, label: string, control: HTMLElement, help?: string): HTMLElement {
    const errId = `${this.uid}-${name}-error`;
    const err = h('div', { id: errId, className: 'moonhub-FieldError', role: 'alert' });
    this.errors.set(name, err);
    const target = control.matches('input, select') ? control : control.querySelector('select, input');
    target?.setAttribute('aria-describedby', errId);
    return h(
      'div',
      { className: 'moonhub-Field', 'data-field': name },
      h('label', { className: 'moonhub-Label', for: target?.id ?? '' }, label),
      control,
      help ? h('div', { className: 'moonhub-Help', text: help }) : null,
      err
    );
  }

  /** No GPU for an environment without CUDA (the service refuses one), with why. */
  private gpusForEnvironment(): void {
    const env = this.req.options.environments.find(e => e.name === this.environment.value);
    const cuda = !!env?.cuda;
    if (!cuda && this.gpuType.value) {
      this.gpuType.value = '';
      this.fillGpuCounts(0);
    }
    this.gpuType.disabled = !cuda;
    this.gpuType.title = cuda ? '' : `${env?.display_name ?? 'This environment'} has no CUDA: pick a GPU environment to use GPUs`;
  }

  private fillGpuCounts(want: number): void {
    const type = this.req.options.gpu_types.find(g => g.name === this.gpuType.value);
    this.gpuCount.replaceChildren();
    const counts = type ? type.counts : [0];
    for (const n of counts) {
      const opt = h('option', { value: n, text: n === 0 ? 'None' : String(n) });
      opt.selected = n === want;
      this.gpuCount.append(opt);
    }
    this.gpuCount.disabled = !type;
  }

  private schedulePreview(delay = 300): void {
    window.clearTimeout(this.previewTimer);
    this.previewTimer = window.setTimeout(() => void this.refreshPreview(), delay);
  }

  private async refreshPreview(): Promise<void> {
    const seq = ++this.previewSeq;
    this.setError('schedule', '');
    this.setError('timezone', '');
    const c = this.schedule.picked();
    if ('error' in c) {
      this.previewEl.textContent = '';
      this.setError('schedule', c.error);
      return;
    }
    try {
      const p = await this.req.client.preview(c.cron, this.timezone.value.trim());
      if (seq !== this.previewSeq) {
        return;
      }
      this.previewEl.replaceChildren(
        h('strong', { text: p.description }),
        p.next.length
          ? h('span', { text: ` — next runs: ${p.next.map(t => when(t, p.timezone)).join('; ')} (${p.timezone})` })
          : ''
      );
    } catch (e) {
      if (seq !== this.previewSeq) {
        return;
      }
      this.previewEl.textContent = '';
      this.showError(e);
    }
  }

  // ---- saving ---------------------------------------------------------------------------
  private input(): Partial<NewJob> {
    const c = this.schedule.picked();
    const emails = this.emails.value
      .split(/[,;\s]+/)
      .map(s => s.trim())
      .filter(Boolean);
    const gpuType = this.gpuType.value || null;
    return {
      name: this.name.value.trim(),
      notebook: this.req.path,
      schedule: 'cron' in c ? c.cron : null,
      timezone: this.timezone.value.trim(),
      environment: this.environment.value,
      size: this.size.value,
      gpu_type: gpuType,
      gpu_count: gpuType ? Number(this.gpuCount.value) : 0,
      parameters: this.params.values(),
      timeout_seconds: Math.round(Number(this.timeout.value) * 60),
      retries: Number(this.retries.value),
      concurrency: this.concurrency.value as Concurrency,
      kernel: this.kernel.value,
      own_image: this.ownImage.value ? Number(this.ownImage.value) : null,
      notify: {
        emails,
        webhook: this.webhook.value.trim(),
        on_success: this.onSuccess.checked,
        webhook_format: this.webhookFormat.value as 'plain' | 'slack',
        overdue_after_seconds: Math.round(Number(this.overdue.value || 0) * 60)
      },
      after: this.after.value
        .split(/[,\s]+/)
        .map(s => s.trim())
        .filter(Boolean),
      secrets: this.secrets.picked()
    };
  }

  private async submit(): Promise<void> {
    if (this.saving) {
      return;
    }
    this.clearErrors();
    const c = this.schedule.picked();
    if ('error' in c) {
      this.setError('schedule', c.error, true);
      return;
    }
    this.saving = true;
    this.accept.disabled = true;
    this.accept.textContent = 'Saving…';
    const { client, job } = this.req;
    try {
      const tasks = this.pipeline.tasks();
      const body = tasks.length
        ? { ...this.input(), tasks, notebook_contents: await this.contents(tasks) }
        : { ...this.input(), tasks: [], notebook_content: this.req.notebook };
      const team = this.team.value || null;
      let saved: Job;
      if (job) {
        saved = await client.updateJob(job.id!, body);
        if (team !== (job.team ?? null)) {
          // a move is a request of its own, checked as its new owner would run the job
          saved = await client.updateJob(job.id!, { team });
        }
      } else {
        saved = await client.createJob({ ...(body as NewJob), team });
      }
      const run = this.runNow.checked ? await client.runNow(saved.id!) : null;
      this.finish({ job: saved, run });
    } catch (e) {
      this.showError(e, true);
    } finally {
      this.saving = false;
      this.accept.disabled = false;
      this.accept.textContent = job ? 'Save' : 'Schedule';
    }
  }

  /** Each task's notebook: this one as it is in the editor, the others from the workspace. */
  private async contents(tasks: { name: string; notebook: string }[]): Promise<Record<string, Record<string, unknown>>> {
    const found: Record<string, Record<string, unknown>> = {};
    for (const [i, t] of tasks.entries()) {
      if (i === 0) {
        found[t.name] = this.req.notebook;
        continue;
      }
      if (!this.req.readNotebook) {
        throw new JobsError(`can not read ${t.notebook} here`, 400, 'tasks');
      }
      try {
        found[t.name] = await this.req.readNotebook(t.notebook);
      } catch (e) {
        throw new JobsError(`task ${t.name}: no notebook ${t.notebook || '(no path given)'} in your workspace`, 400, 'tasks');
      }
    }
    return found;
  }

  private showError(e: unknown, focus = false): void {
    const field = e instanceof JobsError && e.field ? e.field : '';
    if (e instanceof JobsError && /^(tasks|notebook_contents)\b/.test(field)) {
      // a task's field ("tasks[1].depends_on") shows under the pipeline part
      this.setError('tasks', field === 'tasks' ? fieldMessage(e) : `${field}: ${fieldMessage(e)}`, focus);
    } else if (e instanceof JobsError && e.field && this.errors.has(e.field)) {
      this.setError(e.field, fieldMessage(e), focus);
    } else {
      this.general.textContent = e instanceof Error ? e.message : String(e);
    }
  }

  private setError(field: string, message: string, focus = false): void {
    const err = this.errors.get(field);
    if (!err) {
      return;
    }
    err.textContent = message;
    const control =
      field === 'parameters' ? this.params.first : (this.controls.get(field) as HTMLElement | undefined);
    control?.setAttribute('aria-invalid', message ? 'true' : 'false');
    if (message && focus) {
      control?.focus();
    }
  }

  private clearErrors(): void {
    this.general.textContent = '';
    for (const f of this.errors.keys()) {
      this.setError(f, '');
    }
  }

  private onKey(e: KeyboardEvent): void {
    if (e.key === 'Escape') {
      e.preventDefault();
      this.close();
    } else if (e.key === 'Tab') {
      // keep the focus inside the dialog
      const focusable = Array.from(
        this.node.querySelectorAll<HTMLElement>('input:not([hidden]), select, button, [tabindex="0"]')
      ).filter(el => el.offsetParent !== null && !(el as HTMLInputElement).disabled);
      const first = focusable[0];
      const last = focusable[focusable.length - 1];
      if (e.shiftKey && document.activeElement === first) {
        e.preventDefault();
        last?.focus();
      } else if (!e.shiftKey && document.activeElement === last) {
        e.preventDefault();
        first?.focus();
      }
    } else if (e.key === 'Enter' && (e.target as HTMLElement).tagName === 'INPUT' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      void this.submit();
    }
  }

  private finish(r: IScheduleResult | null): void {
    window.clearTimeout(this.previewTimer);
    this.resolve(r);
    this.dispose();
  }

  close(): void {
    this.finish(null);
  }
}
