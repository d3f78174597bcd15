/**
 * The Schedule dialog's pipeline part: more notebooks that run as tasks of the job, after
 * this one or after each other. This notebook is the first task; each other task names its
 * notebook (a path in the workspace), the tasks it runs after and when it runs.
 */
import type { Task } from './api/types';
import { button, h, select } from './dom';

interface IRow {
  node: HTMLElement;
  name: HTMLInputElement;
  notebook: HTMLInputElement;
  after: HTMLInputElement;
  runIf: HTMLSelectElement;
}

const RUN_IF = [
  { value: 'all_succeeded', label: 'when they succeeded' },
  { value: 'all_done', label: 'when they are done, however they ended' },
  { value: 'any_failed', label: 'only if one of them failed (clean-up, alert)' }
];

/** A task name from a notebook's path: "Train Model.ipynb" -> "train-model" (pure). */
export function taskName(path: string): string {
  const stem = (path.split('/').pop() ?? path).replace(/\.ipynb$/i, '');
  const name = stem
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 20)
    .replace(/-+$/, '');
  return name || 'task';
}

export class PipelinePart {
  readonly node: HTMLElement;
  private readonly first: HTMLInputElement;
  private readonly rows: IRow[] = [];
  private readonly list = h('div', { className: 'moonhub-PipelineTasks' });

  /** `path`: this notebook's; `tasks`: the job's tasks when editing a pipeline. */
  constructor(
    private readonly uid: string,
    private readonly path: string,
    tasks: Task[]
  ) {
    const mine = tasks[0];
    this.first = h('input', {
      id: `${uid}-task-first`,
      type: 'text',
      className: 'jp-mod-styled',
      'aria-label': 'This notebook as a task',
      value: mine?.name ?? taskName(path)
    });
    const add = button('Add a notebook', { className: 'jp-mod-styled', 'data-key': 'add-task' }, () => {
      const last = this.rows.length ? this.rows[this.rows.length - 1].name.value : this.first.value;
      this.addRow({ name: '', notebook: '', depends_on: last ? [last] : [], run_if: 'all_succeeded' }).notebook.focus();
    });
    this.node = h(
      'div',
      { className: 'moonhub-Pipeline', role: 'group', 'aria-label': 'Pipeline' },
      h('label', { className: 'moonhub-Label', for: this.first.id }, 'This notebook runs as task'),
      this.first,
      this.list,
      add
    );
    tasks.slice(1).forEach(t => this.addRow(t));
  }

  private addRow(t: Task): IRow {
    const n = this.rows.length + 1;
    const field = (label: string, value: string, placeholder: string) =>
      h('input', { type: 'text', className: 'jp-mod-styled', 'aria-label': `Task ${n} ${label}`, value, placeholder });
    const notebook = field('notebook', t.notebook, 'path/to/next.ipynb');
    const name = field('name', t.name, 'name');
    const after = field('runs after', (t.depends_on ?? []).join(', '), 'tasks it runs after, comma-separated');
    const runIf = select(`${this.uid}-task-${n}-run-if`, RUN_IF, t.run_if ?? 'all_succeeded');
    runIf.setAttribute('aria-label', `Task ${n} runs`);
    // the name follows the notebook's path until the user types one of their own
    let named = !!t.name;
    name.addEventListener('input', () => {
      named = !!name.value.trim();
    });
    notebook.addEventListener('input', () => {
      if (!named) {
        name.value = notebook.value.trim() ? taskName(notebook.value.trim()) : '';
      }
    });
    const row: IRow = { node: h('div'), name, notebook, after, runIf };
    row.node = h(
      'div',
      { className: 'moonhub-PipelineTask', 'data-task-row': n },
      notebook,
      name,
      after,
      runIf,
      button('Remove', { className: 'jp-mod-styled', 'aria-label': `Remove task ${n}` }, () => {
        this.rows.splice(this.rows.indexOf(row), 1);
        row.node.remove();
      })
    );
    this.rows.push(row);
    this.list.append(row.node);
    return row;
  }

  /** The job's `tasks`: none while no other notebook was added (a job of one notebook). */
  tasks(): Task[] {
    if (!this.rows.length) {
      return [];
    }
    const first: Task = { name: this.first.value.trim(), notebook: this.path, run_if: 'all_succeeded' };
    return [
      first,
      ...this.rows.map(r => {
        const deps = r.after.value
          .split(/[,\s]+/)
          .map(s => s.trim())
          .filter(Boolean);
        return {
          name: r.name.value.trim() || taskName(r.notebook.value.trim()),
          notebook: r.notebook.value.trim(),
          depends_on: deps,
          run_if: deps.length ? (r.runIf.value as Task['run_if']) : 'all_succeeded'
        };
      })
    ];
  }
}
