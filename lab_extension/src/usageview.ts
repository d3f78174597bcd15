/**
 * "Your Usage": what you used by day (UTC) — the CPU, memory and GPUs Kueue admitted to your
 * servers and runs, and your workspace's size — with your teams' totals, a chart of one
 * figure and the rows as a CSV file (the jobs service's `/usage`, which shows each user their
 * own figures only).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { Widget } from '@lumino/widgets';

import type { JobsClient } from './api/client';
import type { UsageFigures, UsageReport } from './api/types';
import { h, select } from './dom';
import { amount, bars, FIGURE_NAMES, type Figure, summary } from './usage';

const SVG = 'http://www.w3.org/2000/svg';
/** how often the view reads the report again while shown (the service samples every 15 s) */
const REFRESH_MS = 20_000;

export class UsageView extends Widget {
  private readonly days = select('moonhub-usage-days', [
    { value: '7', label: 'Last 7 days' },
    { value: '30', label: 'Last 30 days' },
    { value: '90', label: 'Last 90 days' }
  ], '30');
  private readonly figure = select(
    'moonhub-usage-figure',
    (Object.keys(FIGURE_NAMES) as Figure[]).map(k => ({ value: k, label: FIGURE_NAMES[k] }))
  );
  private readonly status = h('p', { className: 'moonhub-UsageStatus', role: 'status' });
  private readonly chart = document.createElementNS(SVG, 'svg');
  private readonly caption = h('figcaption', { className: 'moonhub-Help' });
  private readonly rows = h('tbody');
  private readonly teams = h('tbody');
  private readonly csv = h('a', { className: 'moonhub-UsageCsv', download: 'moonhub-usage.csv', text: 'Download CSV' });
  private report: UsageReport | null = null;

  constructor(private readonly client: JobsClient) {
    super();
    this.addClass('moonhub-UsageView');
    this.title.label = 'Your Usage';
    this.title.closable = true;
    this.chart.setAttribute('viewBox', '0 0 600 120');
    this.chart.setAttribute('class', 'moonhub-UsageChart');
    this.chart.setAttribute('role', 'img');
    const head = (...names: string[]) => h('thead', {}, h('tr', {}, ...names.map(n => h('th', { text: n }))));
    this.node.append(
      h('h2', { text: 'Your usage' }),
      h(
        'p',
        { className: 'moonhub-Help' },
        'By day (UTC): the CPU, memory and GPUs your servers and job runs held (what Kueue admitted: reserved, whether used or not) ' +
          'and the size of your workspace. Your teams’ lines are the whole team’s.'
      ),
      h('div', { className: 'moonhub-UsageControls' }, h('label', { className: 'moonhub-Label' }, 'Days', this.days), h('label', { className: 'moonhub-Label' }, 'Chart', this.figure), this.csv),
      this.status,
      h('figure', { className: 'moonhub-UsageFigure' }, this.chart, this.caption),
      h('table', { className: 'moonhub-UsageTable moonhub-UsageDays' }, head('Day', 'CPU-hours', 'Memory GiB-hours', 'GPU-hours', 'Storage GiB-days (used)'), this.rows),
      h('h3', { text: 'Your teams' }),
      h('table', { className: 'moonhub-UsageTable moonhub-UsageTeams' }, head('Team', 'CPU-hours', 'Memory GiB-hours', 'GPU-hours', 'Storage GiB-days'), this.teams)
    );
    this.days.addEventListener('change', () => void this.refresh());
    this.figure.addEventListener('change', () => this.draw());
    void this.refresh();
    // today's figures grow while servers and runs hold something: read again now and then
    this.timer = window.setInterval(() => {
      if (this.isVisible) {
        void this.refresh();
      }
    }, REFRESH_MS);
  }

  dispose(): void {
    window.clearInterval(this.timer);
    super.dispose();
  }

  private timer: number;

  async refresh(): Promise<void> {
    const days = Number(this.days.value);
    this.csv.setAttribute('href', URLExt.join(this.client.settings.baseUrl, 'moonhub/api/v1/usage') + `?days=${days}&format=csv`);
    if (!this.report) {
      this.status.textContent = 'Loading…';
    }
    try {
      this.report = await this.client.usage(days);
    } catch (e) {
      this.status.textContent = `Your usage could not be read: ${(e as Error).message}`;
      return;
    }
    const r = this.report;
    this.status.textContent = r.rows.length ? `In all, ${r.since} to ${r.until}: ${summary(r.total)}.` : `Nothing used from ${r.since} to ${r.until}.`;
    const row = (key: Record<string, string>, name: string, f: UsageFigures, storage: string) =>
      h('tr', key, ...[name, amount(f.cpu_hours), amount(f.memory_gib_hours), amount(f.gpu_hours), storage].map(text => h('td', { text })));
    this.rows.replaceChildren(
      ...r.by_day
        .filter(d => d.cpu_hours || d.memory_gib_hours || d.gpu_hours || d.storage_gib_days)
        .reverse()
        .map(d => row({ 'data-day': d.day }, d.day, d, `${amount(d.storage_gib_days)} (${amount(d.storage_used_gib_days)})`))
    );
    this.teams.replaceChildren(
      ...(r.teams.length
        ? r.teams.map(t => row({ 'data-team': t.team }, t.team, t, amount(t.storage_gib_days)))
        : [h('tr', {}, h('td', { colspan: 5, text: 'No team of yours used anything in these days.' }))])
    );
    this.draw();
  }

  private draw(): void {
    const r = this.report;
    if (!r) {
      return;
    }
    const key = this.figure.value as Figure;
    const values = r.by_day.map(d => d[key]);
    this.chart.replaceChildren(
      ...bars(values, 600, 118).map((b, i) => {
        const rect = document.createElementNS(SVG, 'rect');
        rect.setAttribute('x', b.x.toFixed(1));
        rect.setAttribute('y', (b.y + 1).toFixed(1));
        rect.setAttribute('width', b.w.toFixed(1));
        rect.setAttribute('height', b.h.toFixed(1));
        rect.setAttribute('class', 'moonhub-UsageBar');
        rect.setAttribute('data-day', r.by_day[i].day);
        const title = document.createElementNS(SVG, 'title');
        title.textContent = `${r.by_day[i].day}: ${amount(values[i])} ${FIGURE_NAMES[key]}`;
        rect.append(title);
        return rect;
      })
    );
    this.chart.setAttribute('aria-label', `${FIGURE_NAMES[key]} per day`);
    this.caption.textContent = `${FIGURE_NAMES[key]} per day, ${r.since} to ${r.until}: ${amount(r.total[key])} in all.`;
  }
}
