/**
 * A run's kept outputs in the lab: its executed notebook rendered by the jobs service
 * (sanitised, and shown in a sandboxed frame: no script of the notebook runs, and the page
 * can not act in the lab's origin) and the files it wrote to its run folder, as downloads.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import type { JobsClient } from './api/client';
import type { Job, Run } from './api/types';
import { h } from './dom';
import { bytes } from './format';

export class RunOutputView extends Widget {
  constructor(
    private readonly client: JobsClient,
    job: Job,
    run: Run
  ) {
    super();
    this.addClass('moonhub-OutputView');
    const base = URLExt.join(ServerConnection.makeSettings().baseUrl, 'moonhub/api/v1/jobs', String(job.id), 'runs', String(run.id));
    const frame = h('iframe', {
      className: 'moonhub-OutputFrame',
      title: `Output of run ${run.id} of ${job.name}`,
      // no allow-scripts, no allow-same-origin: the page shows itself and nothing more
      sandbox: '',
      referrerpolicy: 'no-referrer',
      src: `${base}/output`
    });
    const files = h('ul', { className: 'moonhub-OutputFiles', 'aria-label': 'Files of the run folder' });
    this.node.append(
      h(
        'div',
        { className: 'moonhub-OutputHeader' },
        h('a', { href: `${base}/output?format=ipynb`, download: `${job.name}-${run.id}.ipynb`, text: 'Download the notebook' }),
        run.files ? h('span', { text: ` · ${run.files} file(s) kept with the run:` }) : ''
      ),
      files,
      frame
    );
    if (run.files) {
      void this.client.runFiles(job.id!, run.id!).then(list => {
        files.replaceChildren(
          ...list.map(f =>
            h(
              'li',
              {},
              h('a', { href: `${base}/files/${f.path.split('/').map(encodeURIComponent).join('/')}`, download: f.path.split('/').pop(), text: f.path }),
              ` (${bytes(f.bytes)})`
            )
          )
        );
      });
    }
  }
}
