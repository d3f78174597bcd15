/**
 * The "Schedule this notebook" dialog: a schedule (presets or cron) described in words with
 * its next runs from the service, the environment / size / GPUs, parameters from the
 * notebook's `parameters` cell, timeout, retries, concurrency, notifications and "run once
 * now". The service's field errors appear next to their fields; the dialog stays open.
 */
import { Widget } from '@lumino/widgets';

import type { JobsClient, NewJob } from './api/client';
import { fieldMessage, JobsError } from './api/errors';
import type { Concurrency, Job, Options, Run, IServerInfo } from './api/types';
import { button, h, select } from './dom';
import { CONCURRENCY_LABELS, jobName, when } from './format';
import { IParameter, overrides, parametersCell, parseParameters, toPython } from './parameters';
import {
  browserTimeZone,
  formatTime,
  fromCron,
  parseTime,
  Preset,
  PRESET_LABELS,
  PresetKind,
  timeZones,
  toCron,
  WEEKDAYS
} from './schedule';

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
  'notify'
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
  private readonly params: IParameter[];
  private readonly paramInputs = new Map<string, HTMLInputElement>();
  private readonly previewEl = h('div', { className: 'moonhub-Preview', 'aria-live': 'polite' });
  private previewTimer = 0;
  private previewSeq = 0;
  private saving = false;

  // controls
  private readonly name: HTMLInputElement;
  private readonly preset: HTMLSelectElement;
  private readonly minute: HTMLInputElement;
  private readonly time: HTMLInputElement;
  private readonly days: HTMLInputElement[];
  private readonly cron: HTMLInputElement;
  private readonly timezone: HTMLInputElement;
  private readonly environment: HTMLSelectElement;
  private readonly size: HTMLSelectElement;
  private readonly gpuType: HTMLSelectElement;
  private readonly gpuCount: HTMLSelectElement;
  private readonly timeout: HTMLInputElement;
  private readonly retries: HTMLInputElement;
  private readonly concurrency: HTMLSelectElement;
  private readonly emails: HTMLInputElement;
  private readonly onSuccess: HTMLInputElement;
  private readonly webhook: HTMLInputElement;
  private readonly runNow: HTMLInputElement;
  private readonly accept: HTMLButtonElement;

  constructor(req: IScheduleRequest) {
    super();
    this.req = req;
    this.result = new Promise(r => (this.resolve = r));
    this.addClass('jp-Dialog');
    this.addClass('jp-ThemedContainer');
    this.addClass('moonhub-ScheduleDialog');
    const job = req.job;
    const id = (f: string) => `${this.uid}-${f}`;

    const source = parametersCell(req.notebook as { cells?: [] });
    this.params = source === null ? [] : parseParameters(source);

    this.name = h('input', {
      id: id('name'),
      className: 'jp-mod-styled',
      value: job?.name ?? jobName(req.path),
      maxlength: 30,
      autocomplete: 'off',
      readonly: !!job
    });

    // schedule
    const p: Preset = job ? fromCron(job.schedule) : { kind: 'daily', hour: 6, minute: 0 };
    this.preset = select(
      id('schedule'),
      (Object.keys(PRESET_LABELS) as PresetKind[]).map(k => ({ value: k, label: PRESET_LABELS[k] })),
      p.kind
    );
    this.minute = h('input', {
      id: id('minute'),
      type: 'number',
      min: 0,
      max: 59,
      className: 'jp-mod-styled',
      value: p.kind === 'hourly' ? p.minute : 0,
      'aria-label': 'Minute past the hour'
    });
    const hm = p.kind === 'daily' || p.kind === 'weekly' ? formatTime(p.hour, p.minute) : '06:00';
    this.time = h('input', { id: id('time'), type: 'time', className: 'jp-mod-styled', value: hm, 'aria-label': 'Time of day' });
    const chosen = new Set(p.kind === 'weekly' ? p.days : [1]);
    this.days = WEEKDAYS.map(d => {
      const box = h('input', { type: 'checkbox', value: d.day, 'aria-label': d.long });
      box.checked = chosen.has(d.day);
      return box;
    });
    this.cron = h('input', {
      id: id('cron'),
      className: 'jp-mod-styled',
      value: p.kind === 'custom' ? p.cron : job?.schedule ?? '0 6 * * 1-5',
      placeholder: 'minute hour day month weekday, e.g. 0 6 * * 1-5',
      'aria-label': 'Cron expression',
      spellcheck: false
    });
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
    this.runNow = h('input', { id: id('run_now'), type: 'checkbox' });
    this.accept = button(job ? 'Save' : 'Schedule', { className: 'jp-Dialog-button jp-mod-accept jp-mod-styled' }, () =>
      void this.submit()
    );

    this.controls.set('name', this.name);
    this.controls.set('schedule', this.preset);
    this.controls.set('timezone', this.timezone);
    this.controls.set('environment', this.environment);
    this.controls.set('size', this.size);
    this.controls.set('gpu_type', this.gpuType);
    this.controls.set('gpu_count', this.gpuCount);
    this.controls.set('timeout_seconds', this.timeout);
    this.controls.set('retries', this.retries);
    this.controls.set('concurrency', this.concurrency);
    this.controls.set('notify', this.emails);

    this.node.append(this.build(zones));
    this.node.addEventListener('keydown', e => this.onKey(e));
    for (const el of [this.preset, this.minute, this.time, this.cron, this.timezone, ...this.days]) {
      el.addEventListener('input', () => this.schedulePreview());
      el.addEventListener('change', () => this.schedulePreview());
    }
    this.preset.addEventListener('change', () => this.showPresetControls());
    this.showPresetControls();
    this.schedulePreview(0);
  }

  focusFirst(): void {
    (this.req.job ? this.preset : this.name).focus();
  }

  // ---- layout ---------------------------------------------------------------------------
  private build(zones: HTMLElement): HTMLElement {
    const id = (f: string) => `${this.uid}-${f}`;
    const title = this.req.job ? `Edit job "${this.req.job.name}"` : 'Schedule this notebook';
    const days = h(
      'fieldset',
      { className: 'moonhub-Days', 'data-when': 'weekly' },
      h('legend', { text: 'Days' }),
      ...this.days.map((box, i) => h('label', {}, box, WEEKDAYS[i].short))
    );
    const schedule = h(
      'div',
      { className: 'moonhub-ScheduleRow' },
      this.preset,
      h('span', { 'data-when': 'hourly' }, 'at minute ', this.minute),
      h('span', { 'data-when': 'daily weekly' }, this.time),
      h('span', { 'data-when': 'custom', className: 'moonhub-Cron' }, this.cron)
    );
    const body = h(
      'form',
      { className: 'jp-Dialog-body moonhub-Form', novalidate: true },
      this.general,
      h('p', { className: 'moonhub-Notebook' }, 'Notebook: ', h('code', { text: this.req.path })),
      this.field('name', 'Job name', this.name, 'Lower-case letters, digits and "-"; names the job in the Jobs panel.'),
      this.field('schedule', 'Schedule', schedule),
      days,
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
      this.parametersSection(),
      h(
        'div',
        { className: 'moonhub-Grid' },
        this.field('timeout_seconds', 'Timeout (minutes)', this.timeout),
        this.field('retries', 'Retries on failure', this.retries)
      ),
      this.field('concurrency', 'If the previous run is still running', this.concurrency),
      this.field('notify', 'E-mail when a run fails', this.emails, 'Comma-separated addresses.'),
      h('label', { className: 'moonhub-Check', for: id('on_success') }, this.onSuccess, 'Also notify when a run succeeds'),
      h('label', { className: 'moonhub-Label', for: id('webhook') }, 'Webhook (optional)'),
      this.webhook,
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

  private parametersSection(): HTMLElement {
    const err = h('div', { id: `${this.uid}-parameters-error`, className: 'moonhub-FieldError', role: 'alert' });
    this.errors.set('parameters', err);
    const section = h('fieldset', { className: 'moonhub-Parameters', 'data-field': 'parameters' }, h('legend', { text: 'Parameters' }));
    if (!this.params.length) {
      section.append(
        h('p', {
          className: 'moonhub-Help',
          text: 'No parameters found. Tag a cell "parameters" (papermill\'s convention) to set values per job.'
        })
      );
    }
    const stored = (this.req.job?.parameters ?? {}) as Record<string, unknown>;
    for (const p of this.params) {
      const input = h('input', {
        id: `${this.uid}-param-${p.name}`,
        className: 'jp-mod-styled',
        value: p.name in stored ? toPython(stored[p.name]) : p.text,
        placeholder: p.text,
        spellcheck: false,
        'data-param': p.name
      });
      this.paramInputs.set(p.name, input);
      section.append(
        h('div', { className: 'moonhub-Param' }, h('label', { for: input.id }, h('code', { text: p.name })), input)
      );
    }
    section.append(err);
    return section;
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

  private showPresetControls(): void {
    const kind = this.preset.value;
    for (const el of Array.from(this.node.querySelectorAll<HTMLElement>('[data-when]'))) {
      el.hidden = !(el.dataset.when ?? '').split(' ').includes(kind);
    }
  }

  // ---- schedule and its preview -------------------------------------------------------
  /** The cron expression the controls say, or a message for the schedule field. */
  private currentCron(): { cron: string | null } | { error: string } {
    const kind = this.preset.value as PresetKind;
    const t = parseTime(this.time.value);
    switch (kind) {
      case 'none':
        return { cron: null };
      case 'hourly': {
        const m = Number(this.minute.value);
        return Number.isInteger(m) && m >= 0 && m < 60 ? { cron: toCron({ kind, minute: m }) } : { error: 'minute must be 0-59' };
      }
      case 'daily':
        return t ? { cron: toCron({ kind, ...t }) } : { error: 'choose a time of day' };
      case 'weekly': {
        const days = this.days.filter(d => d.checked).map(d => Number(d.value));
        if (!days.length) {
          return { error: 'choose at least one day' };
        }
        return t ? { cron: toCron({ kind, days, ...t }) } : { error: 'choose a time of day' };
      }
      case 'custom':
        return this.cron.value.trim() ? { cron: toCron({ kind, cron: this.cron.value }) } : { error: 'enter a cron expression' };
    }
  }

  private schedulePreview(delay = 300): void {
    window.clearTimeout(this.previewTimer);
    this.previewTimer = window.setTimeout(() => void this.refreshPreview(), delay);
  }

  private async refreshPreview(): Promise<void> {
    const seq = ++this.previewSeq;
    this.setError('schedule', '');
    this.setError('timezone', '');
    const c = this.currentCron();
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
    const c = this.currentCron();
    const edited: Record<string, string> = {};
    for (const [name, input] of this.paramInputs) {
      edited[name] = input.value;
    }
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
      parameters: overrides(this.params, edited),
      timeout_seconds: Math.round(Number(this.timeout.value) * 60),
      retries: Number(this.retries.value),
      concurrency: this.concurrency.value as Concurrency,
      notify: { emails, webhook: this.webhook.value.trim(), on_success: this.onSuccess.checked }
    };
  }

  private async submit(): Promise<void> {
    if (this.saving) {
      return;
    }
    this.clearErrors();
    const c = this.currentCron();
    if ('error' in c) {
      this.setError('schedule', c.error, true);
      return;
    }
    this.saving = true;
    this.accept.disabled = true;
    this.accept.textContent = 'Saving…';
    const { client, job } = this.req;
    try {
      const body = { ...this.input(), notebook_content: this.req.notebook };
      const saved = job ? await client.updateJob(job.id!, body) : await client.createJob(body as NewJob);
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

  private showError(e: unknown, focus = false): void {
    if (e instanceof JobsError && e.field && this.errors.has(e.field)) {
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
      field === 'parameters' ? this.paramInputs.values().next().value : (this.controls.get(field) as HTMLElement | undefined);
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
