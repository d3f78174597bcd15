/**
 * "Share This Server": share your running server with a user or a team of yours, read only
 * or in full, for a while; see what it is shared with and revoke it; open the servers shared
 * with you. Shares are JupyterHub's, made through the jobs service (`/shares`), which adds
 * their expiry and audits each change.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import type { JobsClient } from './api/client';
import { fieldMessage, JobsError } from './api/errors';
import type { Share } from './api/types';
import { button, h, select } from './dom';
import { ACCESS_HELP, EXPIRY_CHOICES, expiresIn, grantee, shareInput } from './sharing';

export class ShareView extends Widget {
  private readonly kind = select('moonhub-share-kind', [
    { value: 'user', label: 'A user' },
    { value: 'group', label: 'A team of yours' }
  ]);
  private readonly who = h('input', { type: 'text', className: 'jp-mod-styled', 'aria-label': 'User or team name', id: 'moonhub-share-who' });
  private readonly access = select('moonhub-share-access', [
    { value: 'read', label: 'Read only' },
    { value: 'full', label: 'Full access' }
  ]);
  private readonly hours = select(
    'moonhub-share-hours',
    EXPIRY_CHOICES.map(c => ({ value: String(c.hours), label: c.label })),
    '24'
  );
  private readonly accessHelp = h('p', { className: 'moonhub-Help moonhub-ShareAccessHelp', text: ACCESS_HELP.read });
  private readonly problem = h('p', { className: 'moonhub-FieldError', role: 'alert' });
  private readonly mine = h('tbody');
  private readonly toMe = h('tbody');

  constructor(private readonly client: JobsClient) {
    super();
    this.addClass('moonhub-ShareView');
    this.title.label = 'Share This Server';
    this.title.closable = true;
    this.access.addEventListener('change', () => {
      this.accessHelp.textContent = ACCESS_HELP[this.access.value as 'read' | 'full'];
    });
    const head = (...names: string[]) => h('thead', {}, h('tr', {}, ...names.map(n => h('th', { text: n }))));
    this.node.append(
      h('h2', { text: 'Share this server' }),
      h(
        'p',
        { className: 'moonhub-Help' },
        'The people you share with open this server from its address; each share ends by itself when it expires, ' +
          'and you can revoke it at any time (it stops opening within 30 seconds).'
      ),
      h(
        'form',
        { className: 'moonhub-ShareForm', 'aria-label': 'Share this server' },
        h('label', { className: 'moonhub-Label' }, 'With', this.kind),
        h('label', { className: 'moonhub-Label' }, 'Name', this.who),
        h('label', { className: 'moonhub-Label' }, 'Access', this.access),
        h('label', { className: 'moonhub-Label' }, 'For', this.hours),
        button('Share', { className: 'jp-mod-styled jp-mod-accept', type: 'submit', 'data-key': 'share' }),
        this.accessHelp,
        this.problem
      ),
      h('h3', { text: 'Shared with' }),
      h('table', { className: 'moonhub-UsageTable moonhub-SharesTable' }, head('With', 'Access', 'Ends', 'Shared by', ''), this.mine),
      h('h3', { text: 'Shared with you' }),
      h('table', { className: 'moonhub-UsageTable moonhub-SharedWithMe' }, head('Server of', 'Access', 'Ends', ''), this.toMe)
    );
    this.node.querySelector('form')!.addEventListener('submit', e => {
      e.preventDefault();
      void this.share();
    });
  }

  protected onAfterAttach(): void {
    void this.refresh();
  }

  async refresh(): Promise<void> {
    let mine: Share[];
    let toMe: Share[];
    try {
      ({ shares: mine, shared_with_me: toMe } = await this.client.shares());
    } catch (e) {
      this.problem.textContent = `Shares could not be read: ${(e as Error).message}`;
      return;
    }
    const empty = (cols: number, text: string) => h('tr', {}, h('td', { colspan: cols, className: 'moonhub-Help', text }));
    this.mine.replaceChildren(...(mine.length ? mine.map(s => this.row(s)) : [empty(5, 'This server is not shared.')]));
    this.toMe.replaceChildren(
      ...(toMe.length
        ? toMe.map(s =>
            h(
              'tr',
              { 'data-owner': s.owner },
              h('td', { text: s.kind === 'group' ? `${s.owner} (with team ${s.name})` : s.owner }),
              h('td', { text: s.access === 'full' ? 'Full access' : 'Read only' }),
              h('td', { text: expiresIn(s.expires_at) }),
              h('td', {}, h('a', { href: s.url, target: '_blank', rel: 'noopener', text: 'Open' }))
            )
          )
        : [empty(4, 'Nobody shares a server with you now.')])
    );
  }

  private row(s: Share): HTMLElement {
    return h(
      'tr',
      { 'data-share': `${s.kind}/${s.name}` },
      h('td', { text: grantee(s) }),
      h('td', { text: s.access === 'full' ? 'Full access' : 'Read only' }),
      h('td', { text: expiresIn(s.expires_at), title: s.expires_at ?? '' }),
      h('td', { text: s.created_by ?? '' }),
      h('td', {}, button('Revoke', { className: 'jp-mod-styled jp-mod-warn', 'data-key': `revoke-${s.kind}-${s.name}` }, () => void this.revoke(s)))
    );
  }

  private async share(): Promise<void> {
    this.problem.textContent = '';
    const kind = this.kind.value as 'user' | 'group';
    const access = this.access.value as 'read' | 'full';
    const input = shareInput(kind, this.who.value, access, Number(this.hours.value));
    if (typeof input === 'string') {
      this.problem.textContent = input;
      return;
    }
    if (access === 'full') {
      const ok = await showDialog({
        title: `Share in full with ${grantee({ kind, name: this.who.value.trim() })}?`,
        body: ACCESS_HELP.full,
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Share in full' })]
      });
      if (!ok.button.accept) {
        return;
      }
    }
    try {
      await this.client.share(input);
    } catch (e) {
      this.problem.textContent = e instanceof JobsError && e.field ? fieldMessage(e) : (e as Error).message;
      return;
    }
    this.who.value = '';
    await this.refresh();
  }

  private async revoke(s: Share): Promise<void> {
    try {
      await this.client.unshare(s.kind, s.name);
    } catch (e) {
      this.problem.textContent = (e as Error).message;
      return;
    }
    await this.refresh();
  }
}
