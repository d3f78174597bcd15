/**
 * The workspace's use in the status bar ("Workspace 2.1 GiB / 10 GiB"), coloured when it is
 * almost full or full (the notices, notices.ts, say what to do); and the server's GPUs.
 */
import { Widget } from '@lumino/widgets';

import type { JobsClient } from './api/client';
import { bytes, gpuLabel, workspaceLabel } from './format';

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

/**
 * The server's GPUs in the status bar, live: "GPU 97% · 12 GiB / 80 GiB" (hidden on a server
 * without GPUs), coloured when a GPU's memory is 90% used.
 */
export class GpuStatus extends Widget {
  constructor(private readonly client: JobsClient) {
    super();
    this.addClass('moonhub-GpuStatus');
    this.node.title = 'Your server’s GPUs: how busy each is, and their memory in use';
    this.hide();
    void this.refresh();
  }

  async refresh(): Promise<void> {
    let gpus: Awaited<ReturnType<JobsClient['gpus']>> = [];
    try {
      gpus = await this.client.gpus();
    } catch {
      gpus = [];
    }
    if (this.isDisposed) {
      return;
    }
    const { text, level } = gpuLabel(gpus);
    this.node.textContent = text;
    this.node.dataset.level = level;
    this.setHidden(!text);
    // a server either has GPUs or not: without them, ask again rarely
    this.timer = window.setTimeout(() => void this.refresh(), text ? GPU_POLL_MS : POLL_MS);
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }

  private timer = 0;
}

const GPU_POLL_MS = 5_000;
