/**
 * The schedule picker of the dialog: a preset (by hand, hourly, daily, weekly on days,
 * custom cron) with its own controls, and the cron expression they make.
 */
import { h, select } from './dom';
import { formatTime, fromCron, parseTime, Preset, PRESET_LABELS, PresetKind, toCron, WEEKDAYS } from './schedule';

export type PickedSchedule = { cron: string | null } | { error: string };

export class SchedulePicker {
  /** the preset <select>: the schedule field's control (errors attach to it) */
  readonly preset: HTMLSelectElement;
  /** the row with the preset and its controls */
  readonly row: HTMLElement;
  /** the weekday boxes (shown for the weekly preset) */
  readonly days: HTMLElement;
  private readonly minute: HTMLInputElement;
  private readonly time: HTMLInputElement;
  private readonly boxes: HTMLInputElement[];
  private readonly cron: HTMLInputElement;

  constructor(id: (f: string) => string, stored: string | null | undefined, editing: boolean, onChange: () => void) {
    const p: Preset = editing ? fromCron(stored) : { kind: 'daily', hour: 6, minute: 0 };
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
    this.boxes = WEEKDAYS.map(d => {
      const box = h('input', { type: 'checkbox', value: d.day, 'aria-label': d.long });
      box.checked = chosen.has(d.day);
      return box;
    });
    this.cron = h('input', {
      id: id('cron'),
      className: 'jp-mod-styled',
      value: p.kind === 'custom' ? p.cron : stored ?? '0 6 * * 1-5',
      placeholder: 'minute hour day month weekday, e.g. 0 6 * * 1-5',
      'aria-label': 'Cron expression',
      spellcheck: false
    });
    this.row = h(
      'div',
      { className: 'moonhub-ScheduleRow' },
      this.preset,
      h('span', { 'data-when': 'hourly' }, 'at minute ', this.minute),
      h('span', { 'data-when': 'daily weekly' }, this.time),
      h('span', { 'data-when': 'custom', className: 'moonhub-Cron' }, this.cron)
    );
    this.days = h(
      'fieldset',
      { className: 'moonhub-Days', 'data-when': 'weekly' },
      h('legend', { text: 'Days' }),
      ...this.boxes.map((box, i) => h('label', {}, box, WEEKDAYS[i].short))
    );
    for (const el of [this.preset, this.minute, this.time, this.cron, ...this.boxes]) {
      el.addEventListener('input', onChange);
      el.addEventListener('change', onChange);
    }
    this.preset.addEventListener('change', () => this.showControls());
    this.showControls();
  }

  /** The cron expression the controls say (null: only by hand), or what is wrong. */
  picked(): PickedSchedule {
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
        const days = this.boxes.filter(d => d.checked).map(d => Number(d.value));
        if (!days.length) {
          return { error: 'choose at least one day' };
        }
        return t ? { cron: toCron({ kind, days, ...t }) } : { error: 'choose a time of day' };
      }
      case 'custom':
        return this.cron.value.trim() ? { cron: toCron({ kind, cron: this.cron.value }) } : { error: 'enter a cron expression' };
    }
  }

  private showControls(): void {
    const kind = this.preset.value;
    for (const el of [...Array.from(this.row.querySelectorAll<HTMLElement>('[data-when]')), this.days]) {
      el.hidden = !(el.dataset.when ?? '').split(' ').includes(kind);
    }
  }
}
