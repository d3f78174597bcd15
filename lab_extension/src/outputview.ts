/**
 * A run's kept outputs in the lab: its executed notebook rendered by the jobs service
 * (sanitised, and shown in a sandboxed frame: no script of the notebook runs, and the page
 * can not act in the lab's origin) and the files it wrote to its run folder, as downloads.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { taskQuery, type JobsClient } from './api/client';
import type { Job, Run } from './api/types';
import { h } from './dom';
import { bytes } from './format';

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
    this.node.append(
      h(
        'div',
        { className: 'moonhub-OutputHeader' },
        h('a', { href: `${base}/output?format=ipynb${and}`, download: `${job.name}-${run.id}${task ? `-${task}` : ''}.ipynb`, text: 'Download the notebook' }),
        kept ? h('span', { text: ` · ${kept} file(s) kept with the run:` }) : ''
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
}
