import { amount, bars, summary } from '../src/usage';

describe('your usage', () => {
  it('writes figures with up to three decimals', () => {
    expect(amount(0.0083333)).toBe('0.008');
    expect(amount(1234.5)).toBe('1,234.5');
    expect(amount(0)).toBe('0');
  });

  it('scales bars to the highest day and leaves empty days flat', () => {
    const b = bars([0, 2, 4], 300, 100);
    expect(b.map(x => x.h)).toEqual([0, 50, 100]);
    expect(b.map(x => x.y)).toEqual([100, 50, 0]);
    expect(b[1].x).toBeCloseTo(110);
    expect(b[0].w).toBeCloseTo(80);
    expect(bars([0, 0], 100, 10).every(x => x.h === 0)).toBe(true);
    expect(bars([], 100, 10)).toEqual([]);
  });

  it('sums a period up in words', () => {
    const f = { cpu_hours: 1.5, memory_gib_hours: 6, gpu_hours: 0, storage_gib_days: 10, storage_used_gib_days: 1 };
    expect(summary(f)).toBe('1.5 CPU-hours, 6 memory GiB-hours, 0 GPU-hours, 10 storage GiB-days');
  });
});
