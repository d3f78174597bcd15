import { formatTime, fromCron, parseTime, Preset, toCron } from '../src/schedule';

describe('presets and cron', () => {
  const cases: [Preset, string | null][] = [
    [{ kind: 'none' }, null],
    [{ kind: 'hourly', minute: 15 }, '15 * * * *'],
    [{ kind: 'daily', hour: 6, minute: 30 }, '30 6 * * *'],
    [{ kind: 'weekly', days: [5, 1, 3], hour: 22, minute: 0 }, '0 22 * * 1,3,5'],
    [{ kind: 'custom', cron: ' */10  8-18 * * 1-5 ' }, '*/10 8-18 * * 1-5']
  ];
  it.each(cases)('%j -> %s', (preset, cron) => {
    expect(toCron(preset)).toBe(cron);
  });

  it.each([
    [null, { kind: 'none' }],
    ['15 * * * *', { kind: 'hourly', minute: 15 }],
    ['30 6 * * *', { kind: 'daily', hour: 6, minute: 30 }],
    ['0 22 * * 5,1,7', { kind: 'weekly', days: [0, 1, 5], hour: 22, minute: 0 }],
    ['*/10 8-18 * * 1-5', { kind: 'custom', cron: '*/10 8-18 * * 1-5' }],
    ['0 6 1 * *', { kind: 'custom', cron: '0 6 1 * *' }],
    ['0 6 * *', { kind: 'custom', cron: '0 6 * *' }],
    ['61 6 * * *', { kind: 'custom', cron: '61 6 * * *' }]
  ])('%s is recognised as %j', (cron, preset) => {
    expect(fromCron(cron)).toEqual(preset);
  });

  it('round-trips every preset through cron', () => {
    for (const [preset, cron] of cases.slice(0, 4)) {
      expect(fromCron(cron)).toEqual(
        preset.kind === 'weekly' ? { ...preset, days: [...preset.days].sort((a, b) => a - b) } : preset
      );
    }
  });

  it('reads and writes times of day', () => {
    expect(parseTime('06:30')).toEqual({ hour: 6, minute: 30 });
    expect(parseTime('6:05')).toEqual({ hour: 6, minute: 5 });
    expect(parseTime('24:00')).toBeNull();
    expect(parseTime('noon')).toBeNull();
    expect(formatTime(6, 5)).toBe('06:05');
  });
});
