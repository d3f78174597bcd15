/**
 * Schedule presets <-> 5-field cron expressions. Pure: no JupyterLab imports.
 */

/** A schedule as the dialog offers it. Weekdays: 0 = Sunday ... 6 = Saturday (cron). */
export type Preset =
  | { kind: 'none' }
  | { kind: 'hourly'; minute: number }
  | { kind: 'daily'; hour: number; minute: number }
  | { kind: 'weekly'; days: number[]; hour: number; minute: number }
  | { kind: 'custom'; cron: string };

export type PresetKind = Preset['kind'];

export const PRESET_LABELS: Record<PresetKind, string> = {
  none: 'Only when run by hand',
  hourly: 'Every hour',
  daily: 'Every day at',
  weekly: 'Every week on',
  custom: 'Custom (cron expression)'
};

/** Monday first, as people read a week; values are cron's day numbers. */
export const WEEKDAYS: ReadonlyArray<{ day: number; short: string; long: string }> = [
  { day: 1, short: 'Mon', long: 'Monday' },
  { day: 2, short: 'Tue', long: 'Tuesday' },
  { day: 3, short: 'Wed', long: 'Wednesday' },
  { day: 4, short: 'Thu', long: 'Thursday' },
  { day: 5, short: 'Fri', long: 'Friday' },
  { day: 6, short: 'Sat', long: 'Saturday' },
  { day: 0, short: 'Sun', long: 'Sunday' }
];

/** The cron expression for a preset; `null` for "only when run by hand". */
export function toCron(p: Preset): string | null {
  switch (p.kind) {
    case 'none':
      return null;
    case 'hourly':
      return `${p.minute} * * * *`;
    case 'daily':
      return `${p.minute} ${p.hour} * * *`;
    case 'weekly': {
      const days = [...new Set(p.days)].sort((a, b) => a - b);
      return `${p.minute} ${p.hour} * * ${days.length ? days.join(',') : '*'}`;
    }
    case 'custom':
      return p.cron.trim().split(/\s+/).join(' ');
  }
}

const NUMBER = /^\d{1,2}$/;

function inRange(text: string, max: number): number | null {
  if (!NUMBER.test(text)) {
    return null;
  }
  const n = Number(text);
  return n <= max ? n : null;
}

/** The preset a stored cron expression came from, or `custom` when it is none of them. */
export function fromCron(cron: string | null | undefined): Preset {
  if (!cron || !cron.trim()) {
    return { kind: 'none' };
  }
  const f = cron.trim().split(/\s+/);
  if (f.length !== 5) {
    return { kind: 'custom', cron };
  }
  const [min, hour, dom, month, dow] = f;
  const minute = inRange(min, 59);
  if (minute === null || dom !== '*' || month !== '*') {
    return { kind: 'custom', cron };
  }
  if (hour === '*' && dow === '*') {
    return { kind: 'hourly', minute };
  }
  const h = inRange(hour, 23);
  if (h === null) {
    return { kind: 'custom', cron };
  }
  if (dow === '*') {
    return { kind: 'daily', hour: h, minute };
  }
  const days = dow.split(',').map(d => inRange(d, 7));
  if (days.some(d => d === null)) {
    return { kind: 'custom', cron };
  }
  // cron allows 7 for Sunday too
  const norm = [...new Set(days.map(d => (d as number) % 7))].sort((a, b) => a - b);
  return { kind: 'weekly', days: norm, hour: h, minute };
}

/** "06:30" -> {hour: 6, minute: 30}; null when it is not a time of day. */
export function parseTime(text: string): { hour: number; minute: number } | null {
  const m = /^(\d{1,2}):(\d{2})$/.exec(text.trim());
  if (!m) {
    return null;
  }
  const hour = Number(m[1]);
  const minute = Number(m[2]);
  return hour < 24 && minute < 60 ? { hour, minute } : null;
}

export function formatTime(hour: number, minute: number): string {
  return `${String(hour).padStart(2, '0')}:${String(minute).padStart(2, '0')}`;
}

/** The browser's IANA time zone, the dialog's default. */
export function browserTimeZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

/** Every IANA zone the browser knows (for the time zone field's suggestions). */
export function timeZones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (key: string) => string[] };
  const zones = intl.supportedValuesOf ? intl.supportedValuesOf('timeZone') : [];
  return zones.includes('UTC') ? zones : ['UTC', ...zones];
}
