/**
 * The Secrets page: your secrets (and your teams'), by name. Values are write-only: typed
 * here, sent to the jobs service, never shown again (the list says "••••••"). A secret
 * may also go to your own JupyterLab server (from its next start), as an environment
 * variable or a file under /var/run/secrets/moonhub. Jobs pick theirs in the Schedule
 * dialog.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import type { JobsClient } from './api/client';
import { fieldMessage, JobsError } from './api/errors';
import type { Delivery, Secret } from './api/types';
import { button, h, select } from './dom';
import { deliveryLabel, envName } from './format';

export class SecretsView extends Widget {
  private readonly list = h('tbody');
  private readonly name = h('input', { type: 'text', className: 'jp-mod-styled', 'aria-label': 'Secret name', placeholder: 'db-password' });
  private readonly value = h('input', { type: 'password', className: 'jp-mod-styled', 'aria-label': 'Secret value', autocomplete: 'off' });
  private readonly how = select('moonhub-secret-how', [
    { value: '', label: 'Jobs only' },
    { value: 'env', label: 'Also my server, as a variable' },
    { value: 'file', label: 'Also my server, as a file' }
  ]);
  private readonly target = h('input', { type: 'text', className: 'jp-mod-styled', 'aria-label': 'Variable or file name' });
  private readonly problem = h('p', { className: 'moonhub-FieldError', role: 'alert' });

  constructor(private readonly client: JobsClient) {
    super();
    this.addClass('moonhub-SecretsView');
    this.title.label = 'Secrets';
    this.title.closable = true;
    this.target.hidden = true;
    this.how.addEventListener('change', () => {
      this.target.hidden = !this.how.value;
      if (this.how.value === 'env' && !this.target.value) {
        this.target.value = envName(this.name.value);
      }
    });
    const save = button('Save', { className: 'jp-mod-styled jp-mod-accept' }, () => void this.save());
    this.node.append(
      h('h2', { text: 'Secrets' }),
      h(
        'p',
        { className: 'moonhub-Help' },
        'Values are write-only: they reach your jobs (pick them in the Schedule dialog) and, if you say so, your server; ' +
          'they are never shown again, and logs show them masked.'
      ),
      h(
        'table',
        { className: 'moonhub-SecretsTable' },
        h('thead', {}, h('tr', {}, h('th', { text: 'Name' }), h('th', { text: 'Team' }), h('th', { text: 'Your server' }), h('th', { text: 'Updated' }), h('th'))),
        this.list
      ),
      h(
        'form',
        { className: 'moonhub-SecretForm', 'aria-label': 'Add or replace a secret' },
        h('label', { className: 'moonhub-Label' }, 'Name', this.name),
        h('label', { className: 'moonhub-Label' }, 'Value', this.value),
        h('label', { className: 'moonhub-Label' }, 'Deliver', this.how),
        this.target,
        save,
        this.problem
      )
    );
    this.node.querySelector('form')!.addEventListener('submit', e => {
      e.preventDefault();
      void this.save();
    });
  }

  protected onAfterAttach(): void {
    void this.refresh();
  }

  async refresh(): Promise<void> {
    let secrets: Secret[];
    try {
      secrets = await this.client.secrets();
    } catch (e) {
      this.problem.textContent = (e as Error).message;
      return;
    }
    this.list.replaceChildren(
      ...(secrets.length
        ? secrets.map(s => this.row(s))
        : [h('tr', {}, h('td', { colspan: 5, className: 'moonhub-Help', text: 'No secrets yet.' }))])
    );
  }

  private row(s: Secret): HTMLElement {
    const del = s.team
      ? ''
      : button('Delete', { className: 'jp-mod-styled jp-mod-warn', 'data-key': `delete-${s.name}` }, () => void this.remove(s.name));
    return h(
      'tr',
      { 'data-secret': s.team ? `${s.team}/${s.name}` : s.name },
      h('td', { text: s.name }),
      h('td', { text: s.team ?? '' }),
      h('td', { text: deliveryLabel(s.to_server) }),
      h('td', { text: s.updated ? `${s.updated.replace('T', ' ').slice(0, 16)} by ${s.updated_by ?? '?'}` : '' }),
      h('td', {}, del)
    );
  }

  private async save(): Promise<void> {
    this.problem.textContent = '';
    const name = this.name.value.trim();
    const to_server = this.how.value ? ({ [this.how.value]: this.target.value.trim() } as Delivery) : null;
    try {
      await this.client.putSecret(name, { ...(this.value.value ? { value: this.value.value } : {}), to_server });
    } catch (e) {
      this.problem.textContent = e instanceof JobsError && e.field ? fieldMessage(e) : (e as Error).message;
      return;
    }
    this.value.value = '';
    this.name.value = '';
    this.target.value = '';
    await this.refresh();
  }

  private async remove(name: string): Promise<void> {
    const ok = await showDialog({
      title: `Delete secret "${name}"?`,
      body: 'Jobs that use it are held at their next run until it exists again.',
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!ok.button.accept) {
      return;
    }
    try {
      await this.client.deleteSecret(name);
    } catch (e) {
      this.problem.textContent = (e as Error).message;
    }
    await this.refresh();
  }
}
