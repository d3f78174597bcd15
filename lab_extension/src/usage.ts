/** The usage report's figures in words and as bars (pure; the view is usageview.ts). */
import type { UsageFigures } from './api/types';

export type Figure = 'cpu_hours' | 'memory_gib_hours' | 'gpu_hours' | 'storage_gib_days';

export const FIGURE_NAMES: Record<Figure, string> = {
  cpu_hours: 'CPU-hours',
  memory_gib_hours: 'Memory GiB-hours',
  gpu_hours: 'GPU-hours',
  storage_gib_days: 'Storage GiB-days'
};

/** A figure as people read it: up to three decimals, none trailing (pure). */
export function amount(n: number): string {
  return (Math.round(n * 1000) / 1000).toLocaleString('en');
}

/** One bar per value in a `width` x `height` box, scaled to the highest (pure). */
export function bars(values: number[], width: number, height: number): { x: number; y: number; w: number; h: number }[] {
  const top = Math.max(...values, 0);
  const step = values.length ? width / values.length : 0;
  return values.map((v, i) => {
    const tall = top > 0 ? (Math.max(v, 0) / top) * height : 0;
    return { x: i * step + step * 0.1, y: height - tall, w: step * 0.8, h: tall };
  });
}

/** "1.5 CPU-hours, 6 memory GiB-hours, 0 GPU-hours, 10 storage GiB-days" (pure). */
export function summary(f: UsageFigures): string {
  const words: Record<Figure, string> = {
    cpu_hours: 'CPU-hours',
    memory_gib_hours: 'memory GiB-hours',
    gpu_hours: 'GPU-hours',
    storage_gib_days: 'storage GiB-days'
  };
  return (Object.keys(words) as Figure[]).map(k => `${amount(f[k])} ${words[k]}`).join(', ');
}

