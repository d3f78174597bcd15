/**
 * A server someone shared with you (issue 37): how far you may go in it, and, when only to
 * read, notebooks opened read only. Others' edits still arrive live (editing together,
 * docs/collaboration.md); what you type would never reach the document (the server drops it,
 * moonhub_lab/sharing.py), so the lab does not let you type it.
 */
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import type { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';

import { type Access, isVisitor } from './sharing';

export { accessLabel } from './sharing';

/** How far this page's user may go, as the server says (``moonhub/access``). */
export async function fetchAccess(settings: ServerConnection.ISettings): Promise<Access> {
  const user = PageConfig.getOption('hubUser');
  const owner = PageConfig.getOption('hubServerUser') || PageConfig.getOption('hubUser');
  if (!isVisitor(user, owner)) {
    return 'owner';
  }
  const url = URLExt.join(settings.baseUrl, 'moonhub/access');
  const response = await ServerConnection.makeRequest(url, {}, settings);
  if (!response.ok) {
    return 'read'; // the server could not say: the narrower of the two
  }
  const body = (await response.json()) as { access?: string };
  return body.access === 'full' || body.access === 'owner' ? body.access : 'read';
}

/** Every cell of a notebook, and those that arrive later, read only. */
export function readOnlyNotebook(panel: NotebookPanel): void {
  const lock = () => {
    for (const cell of panel.content.widgets) {
      cell.readOnly = true;
    }
  };
  panel.addClass('moonhub-ReadOnly');
  panel.title.caption = `${panel.context.path} (read only: shared with you to read)`;
  // cells added, moved or removed (not every edit of a cell's text: others' typing would
  // walk all cells at each keystroke)
  void panel.context.ready.then(() => {
    lock();
    panel.content.model?.cells.changed.connect(lock);
  });
  panel.content.cellInViewportChanged.connect((_, cell) => {
    cell.readOnly = true;
  });
}

/** Open every notebook read only, now and from here on. */
export function readOnlyNotebooks(tracker: INotebookTracker): void {
  tracker.forEach(readOnlyNotebook);
  tracker.widgetAdded.connect((_, panel) => readOnlyNotebook(panel));
}
