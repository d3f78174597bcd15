/**
 * The workspace's use in the status bar ("Workspace 2.1 GiB / 10 GiB"), coloured when it is
 * almost full or full. The notices (notices.ts) say what to do.
 */
import { Widget } from '@lumino/widgets';

import type { JobsClient } from './api/client';
import { bytes, workspaceLabel } from './format';

const POLL_MS = 30_000;

export class WorkspaceStatus extends Widget {
  constructor(private readonly client: JobsClient) {
    super();
    this.addClass('moonhub-WorkspaceStatus');
    this.node.textContent = 'Workspace …';
    void this.refresh();
    this.timer = window.setInterval(() => void this.refresh(), POLL_MS);
  }

  async refresh(): Promise<void> {
    try {
      const space = await this.client.workspace();
      this.node.textContent = workspaceLabel(space);
      this.node.title = `Your workspace (home folder): ${bytes(space.used)} used, ${bytes(space.free)} free`;
      this.node.dataset.level = space.level;
    } catch {
      this.node.textContent = 'Workspace ?';
    }
  }

  dispose(): void {
    window.clearInterval(this.timer);
    super.dispose();
  }

  private timer: number;
}
