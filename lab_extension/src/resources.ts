/**
 * What an ended run used (the jobs service's `/runs/{run}/resources`, kept from the
 * platform's Prometheus): its memory and CPU against its limits, in words and as two small
 * charts under the run's log.
 */
import type { RunResources } from './api/types';
import { bytes } from './format';

/** "Memory: up to 1.2 GiB of 4.0 GiB (30%)" and "CPU: up to 0.8 of 2 cores"; null when none were kept. */
export function resourceLines(r: RunResources): string[] | null {
  if (!r.kept || !r.samples) {
    return null;
  }
  const lines: string[] = [];
  const mem = r.memory_bytes_peak;
  if (mem !== null && mem !== undefined) {
    const limit = r.memory_limit_bytes;
    const share = limit ? ` (${Math.round((100 * mem) / limit)}%)` : '';
    lines.push(`Memory: up to ${bytes(mem)}${limit ? ` of ${bytes(limit)}` : ''}${share}`);
  }
  const cpu = r.cpu_cores_peak;
  if (cpu !== null && cpu !== undefined) {
    const limit = r.cpu_limit_cores;
    lines.push(`CPU: up to ${cores(cpu)}${limit ? ` of ${cores(limit)}` : ''} cores`);
  }
  const gpu = r.gpu_utilization_percent_peak;
  if (gpu !== null && gpu !== undefined) {
    const memory = r.gpu_memory_bytes_peak;
    lines.push(`GPU: up to ${Math.round(gpu)}% busy${memory !== null && memory !== undefined ? `, ${bytes(memory)} of its memory` : ''}`);
  }
  return lines;
}

function cores(n: number): string {
  return n >= 10 || Number.isInteger(n) ? n.toFixed(0) : n.toFixed(n < 1 ? 2 : 1);
}

/**
 * The points of a polyline of `values` (null: a gap, skipped) in a `width` x `height` box,
 * scaled to `top` (the limit, or the highest value): "x,y x,y ..." (pure).
 */
export function polyline(values: (number | null)[], top: number, width: number, height: number): string {
  if (!values.length || top <= 0) {
    return '';
  }
  const dx = values.length > 1 ? width / (values.length - 1) : 0;
  return values
    .map((v, i) => (v === null ? null : `${(i * dx).toFixed(1)},${(height - (Math.min(v, top) / top) * height).toFixed(1)}`))
    .filter((p): p is string => p !== null)
    .join(' ');
}

const SVG = 'http://www.w3.org/2000/svg';

/** A small chart of one series against its limit (a dashed line at the top when known). */
export function chart(label: string, values: (number | null)[], limit: number | null | undefined): SVGSVGElement {
  const width = 240;
  const height = 40;
  const seen = values.filter((v): v is number => v !== null);
  const top = limit || Math.max(...seen, 0) || 1;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('class', 'moonhub-ResourceChart');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  if (limit) {
    const line = document.createElementNS(SVG, 'line');
    for (const [k, v] of [['x1', '0'], ['y1', '1'], ['x2', String(width)], ['y2', '1']]) {
      line.setAttribute(k, v);
    }
    line.setAttribute('class', 'moonhub-ResourceLimit');
    svg.append(line);
  }
  const path = document.createElementNS(SVG, 'polyline');
  path.setAttribute('points', polyline(values, top, width, height - 2));
  path.setAttribute('class', 'moonhub-ResourceLine');
  svg.append(path);
  return svg;
}
