/**
 * A pipeline run's graph: its tasks in levels by depth, top to bottom (a task stands below
 * every task it depends on, with lines drawn from them; levels fit the narrow Jobs panel),
 * each with its state, its attempt, what it published, and its log and output.
 */
import type { TaskRun } from './api/types';
import { button, h } from './dom';

const TASK_LABELS: Record<string, string> = {
  pending: 'Waiting',
  queued: 'Queued',
  running: 'Running',
  succeeded: 'Succeeded',
  failed: 'Failed',
  timed_out: 'Timed out',
  cancelled: 'Cancelled',
  upstream_failed: 'Not run: upstream failed',
  skipped: 'Skipped'
};

const RUN_IF_LABELS: Record<string, string> = {
  all_done: 'runs when they are done',
  any_failed: 'runs if one failed'
};

/** Each task's level: 0 for a task that depends on none, else one more than its deepest dependency (pure). */
export function levels(tasks: Pick<TaskRun, 'name' | 'depends_on'>[]): Map<string, number> {
  const byName = new Map(tasks.map(t => [t.name, t]));
  const found = new Map<string, number>();
  const level = (name: string, seen: Set<string>): number => {
    const known = found.get(name);
    if (known !== undefined) {
      return known;
    }
    if (seen.has(name)) {
      return 0; // a loop can not be saved; stay finite anyway
    }
    seen.add(name);
    const deps = (byName.get(name)?.depends_on ?? []).filter(d => byName.has(d));
    const l = deps.length ? 1 + Math.max(...deps.map(d => level(d, seen))) : 0;
    found.set(name, l);
    return l;
  };
  tasks.forEach(t => level(t.name, new Set()));
  return found;
}

export interface IGraphActions {
  log(task: string): void;
  view(task: string): void;
}

export function taskLabel(status: string): string {
  return TASK_LABELS[status] ?? status;
}

/** The graph of `tasks` (a pipeline run's, in the job's order). */
export function runGraph(runId: number, tasks: TaskRun[], actions: IGraphActions): HTMLElement {
  const depth = levels(tasks);
  const count = Math.max(0, ...depth.values()) + 1;
  const cols = Array.from({ length: count }, (_, i) => h('div', { className: 'moonhub-GraphLevel', 'data-level': i }));
  for (const t of tasks) {
    const published = Object.entries(t.published ?? {});
    const started = t.status !== 'pending' && t.status !== 'upstream_failed' && t.status !== 'skipped';
    const box = h(
      'div',
      {
        className: 'moonhub-Task',
        'data-task': t.name,
        'data-status': t.status,
        title: t.reason ?? ''
      },
      h('div', { className: 'moonhub-TaskName', text: t.name }),
      h('span', { className: `moonhub-Badge moonhub-mod-${t.status}`, text: taskLabel(t.status) }),
      t.attempt > 1 ? h('span', { className: 'moonhub-JobMeta', text: ` attempt ${t.attempt}` }) : '',
      t.depends_on?.length
        ? h('div', {
            className: 'moonhub-TaskAfter',
            text: `after ${t.depends_on.join(', ')}${t.run_if && RUN_IF_LABELS[t.run_if] ? ` · ${RUN_IF_LABELS[t.run_if]}` : ''}`
          })
        : '',
      published.length
        ? h('div', {
            className: 'moonhub-TaskPublished',
            text: `published ${published.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ')}`,
            title: published.map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join('\n')
          })
        : '',
      t.reason && (t.status === 'failed' || t.status === 'timed_out') ? h('div', { className: 'moonhub-RunReason', text: t.reason }) : '',
      started
        ? h(
            'div',
            { className: 'moonhub-RunActions', role: 'group', 'aria-label': `Task ${t.name}` },
            button('Log', { className: 'jp-mod-styled', 'data-key': `log-${runId}-${t.name}` }, () => actions.log(t.name)),
            t.status === 'succeeded' || t.status === 'failed' || t.status === 'timed_out'
              ? button('View', { className: 'jp-mod-styled', 'data-key': `view-${runId}-${t.name}` }, () => actions.view(t.name))
              : ''
          )
        : ''
    );
    cols[depth.get(t.name) ?? 0].append(box);
  }
  const graph = h('div', { className: 'moonhub-Graph', role: 'group', 'aria-label': `Tasks of run ${runId}` }, ...cols);
  // lines from each task to those after it, once laid out
  requestAnimationFrame(() => drawEdges(graph, tasks));
  return graph;
}

function drawEdges(graph: HTMLElement, tasks: TaskRun[]): void {
  if (!graph.isConnected) {
    return;
  }
  const NS = 'http://www.w3.org/2000/svg';
  graph.querySelector('svg.moonhub-GraphEdges')?.remove();
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('class', 'moonhub-GraphEdges');
  svg.setAttribute('aria-hidden', 'true');
  const origin = graph.getBoundingClientRect();
  const box = (name: string) => graph.querySelector<HTMLElement>(`.moonhub-Task[data-task="${CSS.escape(name)}"]`)?.getBoundingClientRect();
  for (const t of tasks) {
    const to = box(t.name);
    for (const d of t.depends_on ?? []) {
      const from = box(d);
      if (!from || !to) {
        continue;
      }
      const line = document.createElementNS(NS, 'line');
      line.setAttribute('x1', String(from.left + from.width / 2 - origin.left));
      line.setAttribute('y1', String(from.bottom - origin.top));
      line.setAttribute('x2', String(to.left + to.width / 2 - origin.left));
      line.setAttribute('y2', String(to.top - origin.top));
      line.dataset.edge = `${d}->${t.name}`;
      svg.append(line);
    }
  }
  graph.prepend(svg);
}
