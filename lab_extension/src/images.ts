/**
 * Images built from environments (docs/environment-images.md): pick one of your environments
 * and the catalog environment to build on, and follow the build's log as it runs in the
 * cluster; your images, how far each is, and why one failed.
 */
import { Widget } from '@lumino/widgets';

import type { JobsClient } from './api/client';
import { h, select } from './dom';
import { bytesLabel, imageStateLabel } from './imagestate';

const POLL_MS = 2000;
const ENDED = ['ready', 'failed', 'cancelled'];

export class ImagesView extends Widget {
  private readonly envs = h('div', { className: 'moonhub-ImagesForm' });
  private readonly error = h('div', { className: 'moonhub-Error', role: 'alert' });
  private readonly list = h('ul', { className: 'moonhub-ImagesList', 'aria-label': 'Your images' });
  private readonly logTitle = h('h3', { text: '' });
  private readonly pre = h('pre', { className: 'moonhub-Log', tabindex: 0, 'aria-label': 'Build log' });
  private followed: number | null = null;
  private timer = 0;

  constructor(private readonly client: JobsClient) {
    super();
    this.addClass('moonhub-ImagesView');
    this.node.append(
      h('h2', { text: 'Images from your environments' }),
      h('p', {
        text:
          'An image is the catalog environment you build on plus one of your environments\u2019 packages. ' +
          'It is built in the cluster, checked, and then yours to start servers and jobs with; ' +
          'an admin may offer it to others.'
      }),
      this.envs,
      this.error,
      this.list,
      this.logTitle,
      this.pre
    );
    void this.load();
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }

  private async load(): Promise<void> {
    try {
      const { environments, base } = await this.client.environments();
      const ready = environments.filter(e => e.state === 'ready');
      this.envs.replaceChildren();
      if (!ready.length) {
        this.envs.append(h('p', { text: 'You have no environment yet: make one in a terminal with moonhub-env create NAME -r requirements.txt.' }));
      } else {
        const pick = select('moonhub-image-env', ready.map(e => ({ value: e.name, label: e.name })));
        const on = h('input', { id: 'moonhub-image-base', className: 'jp-mod-styled', value: base });
        const go = h('button', { className: 'jp-mod-styled jp-mod-accept', text: 'Build image' });
        go.addEventListener('click', () => void this.build(pick.value, on.value.trim()));
        this.envs.append(
          h('label', { for: 'moonhub-image-env', text: 'Environment ' }),
          pick,
          h('label', { for: 'moonhub-image-base', text: ' on ' }),
          on,
          go
        );
      }
      await this.refresh();
    } catch (e) {
      this.error.textContent = (e as Error).message;
    }
  }

  private async build(name: string, base: string): Promise<void> {
    this.error.textContent = '';
    try {
      const made = await this.client.buildImage(name, base);
      this.followed = made.id;
      await this.refresh();
    } catch (e) {
      this.error.textContent = (e as Error).message;
    }
  }

  private async remove(id: number): Promise<void> {
    this.error.textContent = '';
    try {
      await this.client.removeImage(id);
      if (this.followed === id) {
        this.followed = null;
      }
      await this.refresh();
    } catch (e) {
      this.error.textContent = (e as Error).message;
    }
  }

  private async refresh(): Promise<void> {
    window.clearTimeout(this.timer);
    if (this.isDisposed) {
      return;
    }
    try {
      const images = await this.client.images();
      this.list.replaceChildren(
        ...images.map(i => {
          const item = h(
            'li',
            { className: 'moonhub-ImageItem', 'data-state': i.state },
            h('button', { className: 'jp-mod-styled', text: `#${i.id} ${i.environment} on ${i.base}` }),
            h('span', { className: 'moonhub-ImageState', text: ` ${imageStateLabel(i)}` }),
            h('span', { text: i.state === 'ready' ? ` ${bytesLabel(i.added_bytes)} added` : '' }),
            h('button', {
              className: 'jp-mod-styled moonhub-ImageRemove',
              text: ENDED.includes(i.state) ? 'Remove' : 'Cancel',
              title: ENDED.includes(i.state) ? 'Take it off your images' : 'Stop this build'
            })
          );
          item.querySelector('.moonhub-ImageRemove')!.addEventListener('click', () => void this.remove(i.id));
          item.querySelector('button:first-child')!.addEventListener('click', () => {
            this.followed = i.id;
            void this.refresh();
          });
          return item;
        })
      );
      const followed = images.find(i => i.id === this.followed) ?? images[0];
      if (followed) {
        this.followed = followed.id;
        const log = await this.client.imageLog(followed.id);
        const atBottom = this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 4;
        this.logTitle.textContent = `Build #${followed.id}: ${imageStateLabel(followed)}`;
        this.pre.textContent = log.log || '(no output yet)';
        if (atBottom) {
          this.pre.scrollTop = this.pre.scrollHeight;
        }
      }
      if (images.some(i => !ENDED.includes(i.state))) {
        this.timer = window.setTimeout(() => void this.refresh(), POLL_MS);
      }
    } catch (e) {
      this.error.textContent = (e as Error).message;
      this.timer = window.setTimeout(() => void this.refresh(), POLL_MS * 2);
    }
  }
}
