/**
 * Sharing your server (the jobs service's `/shares`): what the dialog offers and says.
 * Pure: no JupyterLab imports.
 */
import type { Share, ShareInput } from './api/types';

/** How long a share lasts; the service allows 1 hour to 90 days. */
export const EXPIRY_CHOICES: { hours: number; label: string }[] = [
  { hours: 1, label: '1 hour' },
  { hours: 8, label: '8 hours' },
  { hours: 24, label: '1 day' },
  { hours: 24 * 7, label: '1 week' },
  { hours: 24 * 30, label: '30 days' }
];

export const ACCESS_HELP: Record<'read' | 'full', string> = {
  read: 'Read only: they see your files and notebooks; nothing runs or changes.',
  full:
    'Full access: they can do anything you can in this server, as you: run code, open terminals, change files, ' +
    'and use what the server holds (the secrets you gave it, your jobs through it). Share in full only with people you trust.'
};

/** The request for the dialog's choices, or what is missing. */
export function shareInput(kind: 'user' | 'group', name: string, access: 'read' | 'full', hours: number): ShareInput | string {
  const who = name.trim();
  if (!who) {
    return kind === 'user' ? 'Name the user to share with.' : 'Name the team to share with.';
  }
  return { [kind]: who, access, expires_in_hours: hours };
}

/** "in 5 hours", "in 3 days", "in 12 minutes", "now" (what is left until `iso`). */
export function expiresIn(iso: string | null | undefined, now: Date = new Date()): string {
  if (!iso) {
    return 'never (made outside MoonHub)';
  }
  const left = (new Date(iso).getTime() - now.getTime()) / 1000;
  if (left <= 60) {
    return 'now';
  }
  const plural = (n: number, unit: string) => `in ${n} ${unit}${n === 1 ? '' : 's'}`;
  if (left < 3600) {
    return plural(Math.round(left / 60), 'minute');
  }
  if (left < 2 * 86400) {
    return plural(Math.round(left / 3600), 'hour');
  }
  return plural(Math.round(left / 86400), 'day');
}

/** Who a share is with, in words: "rudi" or "team ml-crew". */
export function grantee(s: Pick<Share, 'kind' | 'name'>): string {
  return s.kind === 'group' ? `team ${s.name}` : s.name;
}

/** How far the user of a page may go in the server: its owner, shared in full, or to read. */
export type Access = 'owner' | 'full' | 'read';

/** Whether the user of this page is not the server's owner (JupyterHub's page config). */
export function isVisitor(user: string, owner: string): boolean {
  return !!user && !!owner && user !== owner;
}

/** What the badge of a shared server says, or '' on one's own. */
export function accessLabel(access: Access, owner: string): string {
  if (access === 'read') {
    return `${owner}'s server: read only`;
  }
  return access === 'full' ? `${owner}'s server` : '';
}
