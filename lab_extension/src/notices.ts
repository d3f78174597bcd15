/**
 * Warnings from the hub's culling services ("this server will be stopped at ...") and the
 * server's own out-of-memory reports, shown once each as a JupyterLab notification.
 */
import { Notification } from '@jupyterlab/apputils';

import type { JobsClient } from './api/client';

const POLL_MS = 30_000;

export function watchNotices(client: JobsClient): void {
  const shown = new Set<string>();
  const poll = async () => {
    try {
      for (const n of await client.notices()) {
        if (!shown.has(n.id)) {
          shown.add(n.id);
          Notification.warning(n.message, { autoClose: false });
        }
      }
    } catch {
      // the server is going away or restarting: nothing to show
    }
    window.setTimeout(() => void poll(), POLL_MS);
  };
  void poll();
}
