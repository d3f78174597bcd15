import { errorFrom, fieldMessage, JobsError } from '../src/api/errors';
import { bytes, duration, gpuLabel, runsWith, isLive, jobName, percent, relative, statusLabel, workspaceLabel } from '../src/format';

describe('formatting', () => {
  it.each([
    [null, ''],
    [42, '42 s'],
    [125, '2 min 05 s'],
    [3725, '1 h 02 min']
  ])('duration(%s) = %s', (s, text) => {
    expect(duration(s)).toBe(text);
  });

  it('says times relative to now', () => {
    const now = new Date('2026-11-23T12:00:00Z');
    expect(relative('2026-11-23T12:00:10Z', now)).toBe('just now');
    expect(relative('2026-11-23T12:05:00Z', now)).toBe('in 5 min');
    expect(relative('2026-11-23T09:00:00Z', now)).toBe('3 h ago');
    expect(relative('2026-11-25T12:00:00Z', now)).toBe('in 2 days');
    expect(relative(null, now)).toBe('');
  });

  it('names statuses', () => {
    expect(statusLabel('timed_out')).toBe('Timed out');
    expect(statusLabel(undefined)).toBe('Never run');
    expect(isLive('queued') && isLive('running') && !isLive('failed')).toBe(true);
  });

  it('makes job names the service accepts', () => {
    expect(jobName('work/Train Model v2.ipynb')).toBe('train-model-v2');
    expect(jobName('__.ipynb')).toBe('notebook-job');
    expect(jobName('a'.repeat(40) + '.ipynb')).toHaveLength(30);
    expect(jobName('x'.repeat(29) + '-y.ipynb')).toBe('x'.repeat(29));
  });

  it('turns progress into percent', () => {
    expect(percent({ cell: 3, of: 4 })).toBe(75);
    expect(percent({ cell: 0, of: 0 })).toBeNull();
    expect(percent(null)).toBeNull();
  });
});

describe('service errors', () => {
  it('keep the field the service names', () => {
    const e = errorFrom(400, JSON.stringify({ status: 400, field: 'schedule', message: 'schedule: needs 5 fields' }));
    expect(e).toBeInstanceOf(JobsError);
    expect([e.status, e.field, fieldMessage(e)]).toEqual([400, 'schedule', 'needs 5 fields']);
  });

  it('explain what is not JSON', () => {
    expect(errorFrom(503, '<html>').message).toMatch(/not reachable/);
    expect(errorFrom(418, '').message).toBe('The jobs service answered 418.');
  });
});

describe('workspace status', () => {
  it('reads bytes in binary units', () => {
    expect(bytes(512)).toBe('512 B');
    expect(bytes(1536)).toBe('1.5 KiB');
    expect(bytes(10 * 2 ** 30)).toBe('10 GiB');
    expect(bytes(2.25 * 2 ** 30)).toBe('2.3 GiB');
  });

  it('says used of total, and full when full', () => {
    expect(workspaceLabel({ used: 2 ** 30, total: 10 * 2 ** 30, level: 'ok' })).toBe('Workspace 1.0 GiB / 10 GiB');
    expect(workspaceLabel({ used: 10 * 2 ** 30, total: 10 * 2 ** 30, level: 'full' })).toBe(
      'Workspace 10 GiB / 10 GiB (full)'
    );
  });
});

describe('triggerLabel', () => {
  it('says how a run came to be', () => {
    const { triggerLabel } = jest.requireActual('../src/format');
    expect(triggerLabel({ trigger: 'schedule' })).toBe('');
    expect(triggerLabel({ trigger: 'manual' })).toBe('by hand');
    expect(triggerLabel({ trigger: 'rerun', rerun_of: 3 })).toBe('re-run of #3');
    expect(triggerLabel({ trigger: 'backfill', scheduled_for: '2026-11-30T06:00:00+08:00' })).toBe('back-fill for 2026-11-30');
    expect(triggerLabel({ trigger: 'upstream', upstream_run: 12 })).toBe('after run #12');
  });
});

describe('the GPU status', () => {
  it('says nothing without GPUs', () => {
    expect(gpuLabel([])).toEqual({ text: '', level: 'ok' });
  });

  it('says how busy each GPU is, with their memory when known', () => {
    expect(gpuLabel([{ index: 0, utilization: 97.4 }])).toEqual({ text: 'GPU 97%', level: 'ok' });
    const gib = 2 ** 30;
    const two = [
      { index: 0, utilization: 97, memory_used: 12 * gib, memory_total: 80 * gib },
      { index: 1, utilization: 3, memory_used: 76 * gib, memory_total: 80 * gib }
    ];
    expect(gpuLabel(two)).toEqual({ text: 'GPUs 97% 3% · 88 GiB / 160 GiB', level: 'warn' });
  });
});

describe('what a job runs with', () => {
  it('names its environment, size, GPUs and kernel', () => {
    expect(runsWith({ environment: 'python', size: 'small' })).toBe('python · small');
    expect(runsWith({ environment: 'pytorch', size: 'large', gpu_type: 'a100', gpu_count: 2, kernel: 'env-proj' })).toBe(
      'pytorch · large · 2 × a100 · kernel: workspace environment proj'
    );
    expect(runsWith({ kernel: 'ir' })).toBe('default environment · default size · kernel: ir');
  });
});
