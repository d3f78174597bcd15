import { polyline, resourceLines } from '../src/resources';

describe('what a run used', () => {
  it('says the peaks against the limits', () => {
    const r = {
      kept: true,
      samples: 3,
      memory_bytes_peak: 1.5 * 2 ** 30,
      memory_limit_bytes: 4 * 2 ** 30,
      cpu_cores_peak: 0.75,
      cpu_limit_cores: 2
    };
    expect(resourceLines(r)).toEqual(['Memory: up to 1.5 GiB of 4.0 GiB (38%)', 'CPU: up to 0.75 of 2 cores']);
  });

  it('says how busy its GPUs were, and their memory where the exporter gives it', () => {
    const r = { kept: true, samples: 3, memory_bytes_peak: null, gpu_utilization_percent_peak: 97.4, gpu_memory_bytes_peak: null };
    expect(resourceLines(r)).toEqual(['GPU: up to 97% busy']);
    expect(resourceLines({ ...r, gpu_memory_bytes_peak: 12 * 2 ** 30 })).toEqual(['GPU: up to 97% busy, 12 GiB of its memory']);
  });

  it('says nothing when nothing was kept or sampled', () => {
    expect(resourceLines({ kept: false })).toBeNull();
    expect(resourceLines({ kept: true, samples: 0, memory_bytes_peak: null })).toBeNull();
  });

  it('leaves out what it does not know', () => {
    expect(resourceLines({ kept: true, samples: 1, memory_bytes_peak: 2048, memory_limit_bytes: null })).toEqual([
      'Memory: up to 2.0 KiB'
    ]);
  });

  it('draws gaps as gaps and caps at the limit', () => {
    expect(polyline([0, null, 50, 200], 100, 30, 10)).toBe('0.0,10.0 20.0,5.0 30.0,0.0');
    expect(polyline([], 100, 30, 10)).toBe('');
  });
});
