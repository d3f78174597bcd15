/**
 * The Schedule dialog's secrets part: each secret the user may give the job (theirs and
 * their teams'), picked or not, as an environment variable or a file, under a name.
 */
import type { Secret, SecretUse } from './api/types';
import { h, select } from './dom';
import { envName } from './format';

interface IRow {
  secret: Secret;
  pick: HTMLInputElement;
  how: HTMLSelectElement;
  as: HTMLInputElement;
}

export class SecretPicker {
  readonly node: HTMLElement;
  private readonly rows: IRow[] = [];

  /** `available`: what the user may give; `given`: what the job has now (when editing). */
  constructor(uid: string, available: Secret[], given: SecretUse[]) {
    if (!available.length) {
      this.node = h('div', { className: 'moonhub-Help', text: 'No secrets yet (Jobs menu: Secrets…).' });
      return;
    }
    this.node = h('div', { className: 'moonhub-SecretPicks', role: 'group' });
    for (const secret of available) {
      const label = secret.team ? `${secret.team}/${secret.name}` : secret.name;
      const use = given.find(u => u.name === secret.name && (u.team ?? null) === (secret.team ?? null));
      const pick = h('input', { type: 'checkbox', 'aria-label': `Give ${label}` });
      pick.checked = !!use;
      const how = select(
        `${uid}-secret-${label}`,
        [
          { value: 'env', label: 'as variable' },
          { value: 'file', label: 'as file' }
        ],
        use?.file ? 'file' : 'env'
      );
      const as = h('input', {
        type: 'text',
        className: 'jp-mod-styled',
        'aria-label': `${label} as`,
        value: use?.env ?? use?.file ?? envName(secret.name)
      });
      how.addEventListener('change', () => {
        as.value = how.value === 'file' ? secret.name : envName(secret.name);
      });
      this.rows.push({ secret, pick, how, as });
      this.node.append(h('div', { className: 'moonhub-SecretPick', 'data-secret': label }, h('label', {}, pick, label), how, as));
    }
  }

  /** The secrets picked, as the job's `secrets` field. */
  picked(): SecretUse[] {
    return this.rows
      .filter(r => r.pick.checked)
      .map(r => ({
        name: r.secret.name,
        ...(r.secret.team ? { team: r.secret.team } : {}),
        ...(r.how.value === 'file' ? { file: r.as.value.trim() } : { env: r.as.value.trim() })
      }));
  }
}
