/**
 * A run's kept outputs in the lab: its executed notebook rendered by the jobs service
 * (sanitised, and shown in a sandboxed frame: no script of the notebook runs, and the page
 * can not act in the lab's origin) and the files it wrote to its run folder, as downloads.
 */
import { Clipboard, InputDialog } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { taskQuery, type JobsClient } from './api/client';
import type { Job, Run } from './api/types';
import { button, h } from './dom';
import { bytes } from './format';
import { EXPIRY_CHOICES } from './sharing';

export class RunOutputView extends Widget {
  constructor(
    private readonly client: JobsClient,
    job: Job,
    run: Run,
    task?: string
  ) {
    super();
    this.addClass('moonhub-OutputView');
    const base = URLExt.join(ServerConnection.makeSettings().baseUrl, 'moonhub/api/v1/jobs', String(job.id), 'runs', String(run.id));
    const q = taskQuery(task);
    const and = q ? `&${q.slice(1)}` : '';
    // a task's own count of kept files (the run's is for a run of one notebook)
    const kept = task ? undefined : run.files;
    const frame = h('iframe', {
      className: 'moonhub-OutputFrame',
      title: `Output of run ${run.id} of ${job.name}${task ? `, task ${task}` : ''}`,
      // no allow-scripts, no allow-same-origin: the page shows itself and nothing more
      sandbox: '',
      referrerpolicy: 'no-referrer',
      src: `${base}/output${q}`
    });
    const files = h('ul', { className: 'moonhub-OutputFiles', 'aria-label': 'Files of the run folder' });
    const shared = h('span', { className: 'moonhub-OutputShared', role: 'status' });
    // the page (a run's, not a task's) shared with a team of yours by link, for a while
    const share = task
      ? ''
      : button('Share with a team…', { className: 'jp-mod-styled moonhub-OutputShare', 'data-key': 'share-output' }, () =>
          void this.share(job, run, shared)
        );
    this.node.append(
      h(
        'div',
        { className: 'moonhub-OutputHeader' },
        h('a', { href: `${base}/output?format=ipynb${and}`, download: `${job.name}-${run.id}${task ? `-${task}` : ''}.ipynb`, text: 'Download the notebook' }),
        kept ? h('span', { text: ` · ${kept} file(s) kept with the run:` }) : '',
        share,
        shared
      ),
      files,
      frame
    );
    if (kept || task) {
      void this.client.runFiles(job.id!, run.id!, task).then(list => {
        files.replaceChildren(
          ...list.map(f =>
            h(
              'li',
              {},
              h('a', { href: `${base}/files/${f.path.split('/').map(encodeURIComponent).join('/')}${q}`, download: f.path.split('/').pop(), text: f.path }),
              ` (${bytes(f.bytes)})`
            )
          )
        );
      });
    }
  }

  /** Ask for a team and a time, share the page, and put its address on the clipboard. */
  private async share(job: Job, run: Run, status: HTMLElement): Promise<void> {
    const team = await InputDialog.getText({ title: 'Share this output page with a team of yours', label: 'Team', placeholder: 'ml-crew' });
    if (!team.button.accept || !team.value?.trim()) {
      return;
    }
    const time = await InputDialog.getItem({ title: 'For how long?', items: EXPIRY_CHOICES.map(c => c.label), current: 2 });
    if (!time.button.accept) {
      return;
    }
    const hours = EXPIRY_CHOICES.find(c => c.label === time.value)?.hours ?? 24;
    try {
      const made = await this.client.shareOutput(job.id!, run.id!, { group: team.value.trim(), expires_in_hours: hours });
      const link = new URL(made.url, window.location.origin).toString();
      Clipboard.copyToSystem(link);
      status.textContent = ` Shared with team ${made.team} (link copied): ${link}`;
    } catch (e) {
      status.textContent = ` Not shared: ${(e as Error).message}`;
    }
  }
}
