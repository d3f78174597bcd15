/**
 * MoonHub's JupyterLab plugin: the "Schedule this notebook" command (notebook toolbar, file
 * browser context menu, command palette, Jobs menu; all declared in schema/plugin.json)
 * and the Jobs panel in the left sidebar.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, Notification, showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';
import { PageConfig } from '@jupyterlab/coreutils';

import { JobsClient } from './api/client';
import type { Job, Run } from './api/types';
import { IKernelChoice, ScheduleDialog } from './dialog';
import { RunLogView } from './logview';
import { watchNotices } from './notices';
import { JobsPanel } from './panel';
import { GpuStatus, WorkspaceStatus } from './workspace';
import { RunOutputView } from './outputview';
import { SecretsView } from './secrets';
import { UsageView } from './usageview';
import { ShareView } from './shareview';
import { ImagesView } from './images';
import { withoutOutputs } from './snapshot';
import { accessLabel, fetchAccess, readOnlyNotebooks } from './visitor';

const PLUGIN_ID = 'moonhub-lab:plugin';

export namespace CommandIDs {
  export const schedule = 'moonhub:schedule-notebook';
  export const openJobs = 'moonhub:open-jobs';
  export const refreshJobs = 'moonhub:refresh-jobs';
  export const secrets = 'moonhub:secrets';
  export const usage = 'moonhub:usage';
  export const shareServer = 'moonhub:share-server';
  export const images = 'moonhub:images';
}

export const scheduleIcon = new LabIcon({
  name: 'moonhub:schedule',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16">' +
    '<g class="jp-icon3" fill="#616161"><path d="M19 4h-1V2h-2v2H8V2H6v2H5a2 2 0 0 0-2 2v13a2 2 0 0 0 2 2h6.3a7 7 0 0 1-.9-2H5V9h14v1.4a7 7 0 0 1 2 .9V6a2 2 0 0 0-2-2z"/>' +
    '<path d="M17 12a5 5 0 1 0 0 10 5 5 0 0 0 0-10zm1.6 7.4L16.3 17V13.8h1.4v2.6l1.9 1.9z"/></g></svg>'
});

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Schedule notebooks as production jobs and watch their runs.',
  autoStart: true,
  requires: [IDocumentManager],
  optional: [INotebookTracker, IFileBrowserFactory, ICommandPalette, ILayoutRestorer, ISettingRegistry, IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    docs: IDocumentManager,
    notebooks: INotebookTracker | null,
    browsers: IFileBrowserFactory | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    settings: ISettingRegistry | null,
    statusBar: IStatusBar | null
  ) => {
    const client = new JobsClient(app.serviceManager.serverSettings);
    let refreshSeconds = 10;

    /** The notebook a command means: the one right-clicked in the file browser, else the current one. */
    const target = (args: { path?: unknown }): { path: string; panel: NotebookPanel | null } | null => {
      if (typeof args.path === 'string' && args.path) {
        return { path: args.path, panel: null };
      }
      const browser = browsers?.tracker.currentWidget;
      const node = app.contextMenuHitTest(n => n.classList.contains('jp-DirListing-item'));
      if (browser && node) {
        const item = browser.selectedItems().next();
        if (!item.done && item.value.type === 'notebook') {
          return { path: item.value.path, panel: null };
        }
      }
      const panel = notebooks?.currentWidget ?? null;
      return panel ? { path: panel.context.path, panel } : null;
    };

    /**
     * The notebook as the user sees it, without its outputs: the snapshot to freeze. An open
     * notebook's snapshot is its model's (unsaved edits included); one that is not open is
     * read from disk. Edits are saved too where the lab saves them (without real-time
     * collaboration); with it, the server saves each change itself, and a save from here would
     * find the server's newer save on disk and ask the user about a file that changed.
     */
    const snapshot = async (path: string, panel: NotebookPanel | null): Promise<Record<string, unknown>> => {
      const open = panel ?? (docs.findWidget(path) as NotebookPanel | undefined) ?? null;
      const model = open?.context?.model;
      if (open && model) {
        if (model.dirty && open.context.canSave) {
          await open.context.save();
        }
        const shown = model.toJSON() as unknown;
        // (the file may be open as text, in an editor: then what is on disk)
        if (shown && typeof shown === 'object' && Array.isArray((shown as { cells?: unknown }).cells)) {
          return withoutOutputs(shown as Record<string, unknown>);
        }
      }
      const file = await app.serviceManager.contents.get(path, { content: true, type: 'notebook' });
      return withoutOutputs(file.content as Record<string, unknown>);
    };

    /** The kernels this server offers (the image's, and the workspace environments'). */
    const kernelChoices = async (): Promise<IKernelChoice[]> => {
      const manager = app.serviceManager.kernelspecs;
      await manager.ready;
      const specs = manager.specs?.kernelspecs ?? {};
      return Object.values(specs)
        .filter((s): s is NonNullable<typeof s> => !!s)
        .map(s => ({ name: s.name, display_name: s.display_name }))
        .sort((a, b) => a.display_name.localeCompare(b.display_name));
    };

    const openDialog = async (path: string, panel: NotebookPanel | null, job?: Job) => {
      try {
        const [notebook, options, server, secrets, built] = await Promise.all([
          snapshot(path, panel).catch(e => {
            if (job?.team) {
              // another member's workspace: the team's notebooks belong in its folder
              throw new Error(
                `The job's notebook ${path} is not in your workspace. Every member of team ${job.team} can edit its jobs whose notebooks are in the team's folder (teams/${job.team}/).`
              );
            }
            throw e;
          }),
          client.options(),
          client.serverInfo().catch(() => null),
          client.secrets().catch(() => []),
          // the user's images built from environments (none where builds are off)
          client.images().catch(() => [])
        ]);
        const images = built.filter(i => i.state === 'ready');
        const readNotebook = (p: string) => snapshot(p, null);
        const kernels = await kernelChoices();
        const result = await ScheduleDialog.open({
          client,
          path,
          notebook,
          options,
          server,
          job,
          secrets,
          readNotebook,
          kernels,
          images
        });
        if (!result) {
          return;
        }
        const what = job ? `Job "${result.job.name}" saved as version ${result.job.version}` : `Scheduled "${result.job.name}"`;
        Notification.success(result.run ? `${what}; a run has started.` : `${what}.`, {
          autoClose: 5000,
          actions: [{ label: 'Show jobs', callback: () => void app.commands.execute(CommandIDs.openJobs) }]
        });
        await app.commands.execute(CommandIDs.openJobs);
      } catch (e) {
        await showErrorMessage(job ? 'Could not edit the job' : 'Could not schedule the notebook', e as Error);
      }
    };

    /** A view in the main area, once: a second open shows the one there. */
    const openMain = (id: string, label: string, make: () => Widget) => {
      const open = Array.from(app.shell.widgets('main')).find(w => w.id === id);
      if (open) {
        app.shell.activateById(id);
        // a log opened again reads again (a repaired task's log is its new attempt's)
        const content = open instanceof MainAreaWidget ? open.content : null;
        if (content instanceof RunLogView) {
          content.refresh();
        }
        return;
      }
      const view = new MainAreaWidget({ content: make() });
      view.id = id;
      view.title.label = label;
      view.title.icon = scheduleIcon;
      app.shell.add(view, 'main');
    };

    const panel = new JobsPanel(
      client,
      {
        edit: (job: Job) => openDialog(job.notebook ?? '', null, job),
        openLog: (job: Job, run: Run, task?: string) =>
          openMain(`moonhub-log-${job.id}-${run.id}${task ? `-${task}` : ''}`, `Log: ${job.name} #${run.id}${task ? ` ${task}` : ''}`, () => new RunLogView(client, job, run, task)),
        viewOutput: (job: Job, run: Run, task?: string) =>
          openMain(`moonhub-output-${job.id}-${run.id}${task ? `-${task}` : ''}`, `Output: ${job.name} #${run.id}${task ? ` ${task}` : ''}`, () => new RunOutputView(client, job, run, task)),
        openOutput: async (path: string) => {
          await app.serviceManager.contents.get(path, { content: false });
          docs.openOrReveal(path);
        }
      },
      () => refreshSeconds * 1000
    );
    panel.title.icon = scheduleIcon;
    app.shell.add(panel, 'left', { rank: 450 });
    restorer?.add(panel, 'moonhub-jobs');

    app.commands.addCommand(CommandIDs.schedule, {
      label: args => (args.isPalette ? 'Schedule This Notebook' : 'Schedule…'),
      caption: 'Run this notebook as a scheduled production job',
      icon: args => (args.isPalette ? undefined : scheduleIcon),
      isEnabled: args => target(args) !== null,
      execute: async args => {
        const t = target(args);
        if (!t) {
          await showErrorMessage('Nothing to schedule', 'Open a notebook (or right-click one in the file browser) first.');
          return;
        }
        await openDialog(t.path, t.panel);
      }
    });
    app.commands.addCommand(CommandIDs.openJobs, {
      label: 'Show Scheduled Jobs',
      caption: 'Open the Jobs panel',
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(CommandIDs.secrets, {
      label: 'Secrets…',
      caption: 'Your secrets for jobs and your server (values are write-only)',
      execute: () => openMain('moonhub-secrets', 'Secrets', () => new SecretsView(client))
    });
    app.commands.addCommand(CommandIDs.usage, {
      label: 'Your Usage',
      caption: 'What your servers, runs and workspace used, by day',
      execute: () => openMain('moonhub-usage', 'Your Usage', () => new UsageView(client))
    });
    app.commands.addCommand(CommandIDs.shareServer, {
      label: 'Share This Server…',
      caption: 'Share your server with a user or a team, read only or in full, for a while',
      execute: () => openMain('moonhub-share', 'Share This Server', () => new ShareView(client))
    });
    app.commands.addCommand(CommandIDs.images, {
      label: 'Images From Environments…',
      caption: 'Build an image of one of your environments, follow its build, see your images',
      execute: () => openMain('moonhub-images', 'Images', () => new ImagesView(client))
    });
    app.commands.addCommand(CommandIDs.refreshJobs, {
      label: 'Refresh Scheduled Jobs',
      execute: () => panel.refresh()
    });
    if (palette) {
      const category = 'Jobs';
      palette.addItem({ command: CommandIDs.schedule, category, args: { isPalette: true } });
      palette.addItem({ command: CommandIDs.openJobs, category });
      palette.addItem({ command: CommandIDs.refreshJobs, category });
      palette.addItem({ command: CommandIDs.secrets, category });
      palette.addItem({ command: CommandIDs.usage, category });
      palette.addItem({ command: CommandIDs.shareServer, category: 'Server' });
      palette.addItem({ command: CommandIDs.images, category: 'Server' });
    }

    watchNotices(client);
    statusBar?.registerStatusItem('moonhub:workspace', {
      item: new WorkspaceStatus(client),
      align: 'left',
      rank: 50
    });
    statusBar?.registerStatusItem('moonhub:gpus', {
      item: new GpuStatus(client),
      align: 'left',
      rank: 51
    });

    // a server someone shared with this user: say whose, and open notebooks read only when
    // shared to read (others' edits still arrive live)
    void fetchAccess(app.serviceManager.serverSettings)
      .then(access => {
        const label = accessLabel(access, PageConfig.getOption('hubServerUser'));
        if (access === 'read' && notebooks) {
          readOnlyNotebooks(notebooks);
        }
        if (label && statusBar) {
          const badge = new Widget();
          badge.addClass('moonhub-AccessBadge');
          badge.node.dataset.access = access;
          badge.node.textContent = label;
          statusBar.registerStatusItem('moonhub:access', { item: badge, align: 'left', rank: 10 });
        }
      })
      .catch(e => console.warn('moonhub-lab: access not known', e));

    if (settings) {
      const apply = (s: ISettingRegistry.ISettings) => {
        refreshSeconds = (s.get('refreshSeconds').composite as number) ?? 10;
      };
      void settings
        .load(PLUGIN_ID)
        .then(s => {
          apply(s);
          s.changed.connect(apply);
        })
        .catch(e => console.warn('moonhub-lab: settings not loaded', e));
    }
  }
};

export default plugin;
