/** Images built from environments, in words (pure: the view is images.ts). */
import type { EnvImage } from './api/types';

/** A build's state in words (pure). */
export function imageStateLabel(image: Pick<EnvImage, 'state' | 'message'>): string {
  const words: Record<string, string> = {
    queued: 'waiting for its turn',
    building: 'building',
    checking: 'checking it starts as a server',
    ready: 'ready',
    failed: 'failed',
    cancelled: 'cancelled'
  };
  const said = words[image.state] ?? image.state;
  return image.state === 'failed' && image.message ? `${said}: ${image.message}` : said;
}

/** Compressed bytes, short (pure). */
export function bytesLabel(n: number | undefined): string {
  if (!n) {
    return '';
  }
  const units = ['B', 'KB', 'MB', 'GB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v < 10 && i ? 1 : 0)} ${units[i]}`;
}
