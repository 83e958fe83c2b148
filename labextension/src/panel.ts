/**
 * The side panel: the active notebook's kernel as lazycell sees it.
 *
 * A function of one KernelLink's state and history (see view.ts for every
 * string and number it shows); it redraws at most once per animation frame
 * when the link changes. Clicks are handled by delegation on the panel's node
 * (`data-action` attributes), so a redraw never loses a listener.
 */
import { KernelLink } from './link';
import { LinkedWidget } from './linked';
import { IComputeMessage, IStateMessage } from './protocol';
import {
  cellLabel,
  chartPoints,
  cpuScale,
  formatBytes,
  formatSeconds,
  groupRows,
  historyRows,
  isRunning,
  memoryLevel,
  memorySegments,
  memoryText,
  progressText,
  streamRects,
  workerDetails
} from './view';

/** What the panel asks of the application: moving in the notebook, debugging. */
export interface IPanelActions {
  /** Scroll the link's notebook to a cell (by id, else by its In[N] number). */
  showCell(link: KernelLink, cellId: string | null, cell: number | null): void;
  /** Run `%debug` in the link's kernel. */
  debug(link: KernelLink): void;
}

export const PANEL_ID = 'lazycell-sidepanel';
const CHART_WIDTH = 240;
const CHART_HEIGHT = 48;
const CHART_WINDOW = 120;

function escape(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

export class LazycellPanel extends LinkedWidget {
  constructor(private readonly _actions: IPanelActions) {
    super();
    this.id = PANEL_ID;
    this.addClass('lazycell-SidePanel');
    this.title.caption = 'lazycell';
    // Redrawn at each change: everything but the cluster controls, whose inputs
    // must keep what the user is typing.
    this._top = document.createElement('div');
    this._controls = this._clusterControls();
    this._bottom = document.createElement('div');
    this.node.append(this._top, this._controls, this._bottom);
    this.node.addEventListener('click', this._onClick);
    this._draw();
  }

  /** The notebook's name in the header. */
  set notebookName(name: string) {
    this._notebookName = name;
    this._scheduleDraw();
  }

  dispose(): void {
    this.node.removeEventListener('click', this._onClick);
    super.dispose();
  }

  protected onLinkChanged(): void {
    this._scheduleDraw();
  }

  private _scheduleDraw(): void {
    if (this._drawPending) {
      return;
    }
    this._drawPending = true;
    requestAnimationFrame(() => {
      this._drawPending = false;
      if (!this.isDisposed) {
        this._draw();
      }
    });
  }

  private _clusterControls(): HTMLElement {
    const controls = document.createElement('div');
    controls.className = 'lazycell-ClusterControls';
    controls.innerHTML =
      '<label>workers <input class="jp-mod-styled lazycell-ScaleWorkers" type="number" min="0" value="2"></label>' +
      '<button class="jp-mod-styled lazycell-ScaleButton" data-action="scale">Scale</button>' +
      '<label>adapt <input class="jp-mod-styled lazycell-AdaptMinimum" type="number" min="0" value="1"></label>' +
      '<label>to <input class="jp-mod-styled lazycell-AdaptMaximum" type="number" min="1" value="4"></label>' +
      '<button class="jp-mod-styled lazycell-AdaptButton" data-action="adapt">Adapt</button>' +
      '<div class="lazycell-ClusterMessage"></div>';
    controls.hidden = true;
    return controls;
  }

  private _number(selector: string): number {
    const input = this._controls.querySelector(selector) as HTMLInputElement;
    return Math.max(0, Math.floor(Number(input.value) || 0));
  }

  private _draw(): void {
    const link = this.link;
    const parts: string[] = [
      `<header class="lazycell-SidePanel-header"><span class="lazycell-SidePanel-title">lazycell</span>` +
        `<span class="lazycell-SidePanel-notebook">${escape(this._notebookName)}</span></header>`
    ];
    if (link === null || link.status === 'no-kernel') {
      parts.push('<p class="lazycell-SidePanel-note">Open a notebook to see its computes here.</p>');
    } else if (link.status === 'not-loaded') {
      parts.push(
        '<p class="lazycell-SidePanel-note">lazycell is not loaded in this kernel.</p>' +
          '<button class="jp-mod-styled jp-mod-accept lazycell-LoadButton" data-action="load">' +
          'Load lazycell (%load_ext lazycell)</button>'
      );
    } else if (link.status === 'connecting' || link.state === null) {
      parts.push('<p class="lazycell-SidePanel-note">Connecting to the kernel…</p>');
    } else {
      const state = link.state;
      parts.push(this._computeSection(state.compute, state));
      parts.push(this._workersSection(state));
    }
    const bottom: string[] = [];
    if (link !== null && link.status === 'connected' && link.state !== null) {
      bottom.push(this._resourcesSection(link.state));
      bottom.push(this._streamSection(link));
    }
    if (link !== null && link.status === 'connected') {
      bottom.push(this._historySection(link));
    }
    this._top.innerHTML = parts.join('');
    this._bottom.innerHTML = bottom.join('');
    const cluster = link?.status === 'connected' ? link.state?.cluster ?? null : null;
    this._controls.hidden = !(cluster && cluster.scalable);
    const message = this._controls.querySelector('.lazycell-ClusterMessage') as HTMLElement;
    const adaptive = cluster?.adaptive;
    message.textContent = link?.error
      ? link.error
      : adaptive
        ? `adapting between ${adaptive.minimum ?? 0} and ${adaptive.maximum ?? '∞'} workers`
        : '';
    message.classList.toggle('lazycell-mod-error', Boolean(link?.error));
  }

  private _computeSection(compute: IComputeMessage | null, state: IStateMessage): string {
    if (compute === null) {
      return (
        '<section class="lazycell-Compute"><h3>Compute</h3>' +
        `<p class="lazycell-SidePanel-note">No compute yet · scheduler ${escape(state.scheduler)}</p></section>`
      );
    }
    const running = isRunning(compute);
    const overall = compute.nTasks ? (100 * compute.done) / compute.nTasks : 100;
    const rows = groupRows(compute)
      .map(
        row =>
          `<div class="lazycell-Group" title="${escape(row.name)}">` +
          `<span class="lazycell-Group-name">${escape(row.name)}</span>` +
          '<span class="lazycell-Bar">' +
          `<span class="lazycell-Bar-done" style="width:${row.done.toFixed(2)}%"></span>` +
          `<span class="lazycell-Bar-running" style="width:${row.running.toFixed(2)}%"></span>` +
          `<span class="lazycell-Bar-erred" style="width:${row.erred.toFixed(2)}%"></span>` +
          `</span><span class="lazycell-Group-count">${escape(row.text)}</span></div>`
      )
      .join('');
    const errors = compute.errors
      .map(
        error =>
          '<li class="lazycell-Error">' +
          `<a href="#" data-action="show-cell" data-cell-id="${escape(compute.cellId ?? '')}" ` +
          `data-cell="${compute.cell ?? ''}" title="show the cell">${escape(error)}</a> ` +
          '<button class="jp-mod-styled lazycell-DebugButton" data-action="debug" ' +
          'title="run %debug in this kernel">debug</button></li>'
      )
      .join('');
    const interrupt = running
      ? '<button class="jp-mod-styled jp-mod-warn lazycell-InterruptButton" data-action="interrupt" ' +
        'title="interrupt the kernel (Ctrl-C): stops the compute">■ Interrupt</button>'
      : '';
    const status = running ? 'running' : compute.status;
    return (
      `<section class="lazycell-Compute lazycell-mod-${escape(status)}"><h3>Compute ` +
      `<a href="#" class="lazycell-CellLink" data-action="show-cell" ` +
      `data-cell-id="${escape(compute.cellId ?? '')}" data-cell="${compute.cell ?? ''}">` +
      `${escape(cellLabel(compute.cell))}</a> · ${escape(compute.scheduler)}</h3>` +
      `<p class="lazycell-Progress-text">${escape(progressText(compute))}</p>` +
      `<div class="lazycell-Bar lazycell-Bar-overall"><span class="lazycell-Bar-done" style="width:${overall.toFixed(2)}%"></span></div>` +
      `<div class="lazycell-Groups">${rows}</div>` +
      interrupt +
      (errors ? `<ul class="lazycell-Errors">${errors}</ul>` : '') +
      '</section>'
    );
  }

  private _workersSection(state: IStateMessage): string {
    const cluster = state.cluster;
    const title = cluster
      ? `Workers · ${escape(cluster.kind)}` +
        (cluster.dashboard
          ? ` · <a class="lazycell-DashboardLink" href="${escape(cluster.dashboard)}" target="_blank" rel="noopener noreferrer">Dashboard ↗</a>`
          : '')
      : 'Workers';
    const rows = state.workers
      .map(worker => {
        const segments = memorySegments(worker);
        return (
          `<div class="lazycell-Worker lazycell-mod-${memoryLevel(worker)}">` +
          `<div class="lazycell-Worker-name">${escape(worker.name)}` +
          `<span class="lazycell-Worker-details">${escape(workerDetails(worker))}</span></div>` +
          '<span class="lazycell-Bar lazycell-MemoryBar">' +
          `<span class="lazycell-Memory-managed" style="width:${segments.managed.toFixed(2)}%"></span>` +
          `<span class="lazycell-Memory-unmanaged" style="width:${segments.unmanaged.toFixed(2)}%"></span>` +
          `<span class="lazycell-Memory-spilled" style="width:${segments.spilled.toFixed(2)}%"></span>` +
          `</span><div class="lazycell-Worker-memory">${escape(memoryText(worker))}</div></div>`
        );
      })
      .join('');
    return `<section class="lazycell-Workers"><h3>${title}</h3>${rows}</section>`;
  }

  private _resourcesSection(state: IStateMessage): string {
    const points = state.resources;
    if (points.length < 2) {
      return '';
    }
    const cpuMax = cpuScale(points);
    // Headroom above the highest sample, so a steady memory line is not drawn on the edge.
    const rssMax = 1.25 * Math.max(...points.map(point => point[2]), 1);
    const latest = points[points.length - 1];
    // The samples there are, up to two minutes: a short history is not squeezed to one edge.
    const span = Math.max(10, Math.min(CHART_WINDOW, Math.max(...points.map(point => point[0]))));
    const chart = (column: 1 | 2, max: number, label: string, css: string) =>
      `<div class="lazycell-Chart"><div class="lazycell-Chart-label">${escape(label)}</div>` +
      `<svg class="lazycell-Chart-svg ${css}" viewBox="0 0 ${CHART_WIDTH} ${CHART_HEIGHT}" ` +
      `preserveAspectRatio="none"><polyline points="${chartPoints(points, column, max, CHART_WIDTH, CHART_HEIGHT, span)}"/></svg></div>`;
    return (
      `<section class="lazycell-Resources"><h3>Resources · last ${formatSeconds(Math.round(span))}</h3>` +
      chart(1, cpuMax, `CPU ${Math.round(latest[1])}% (of ${cpuMax}%)`, 'lazycell-Chart-cpu') +
      chart(2, rssMax, `Memory ${formatBytes(latest[2])}`, 'lazycell-Chart-memory') +
      '</section>'
    );
  }

  private _streamSection(link: KernelLink): string {
    const stream = link.stream;
    const compute = link.state?.compute ?? null;
    if (stream === null || compute === null || stream.bars.length === 0) {
      return '';
    }
    const lanes = Math.max(stream.workers.length, 1);
    const laneHeight = Math.max(6, Math.min(16, Math.floor(96 / lanes)));
    const height = lanes * laneHeight;
    const rects = streamRects(stream, compute.elapsed, CHART_WIDTH, laneHeight)
      .map(
        rect =>
          `<rect class="${rect.className}" x="${rect.x.toFixed(2)}" y="${rect.y}" ` +
          `width="${rect.width.toFixed(2)}" height="${rect.height}"><title>${escape(rect.title)}</title></rect>`
      )
      .join('');
    const caption =
      `${stream.workers.length} worker${stream.workers.length === 1 ? '' : 's'} · ` +
      `${stream.bars.length} of ${compute.nTasks} tasks drawn`;
    return (
      '<section class="lazycell-TaskStream"><h3>Task stream</h3>' +
      `<svg class="lazycell-TaskStream-svg" viewBox="0 0 ${CHART_WIDTH} ${height}" ` +
      `preserveAspectRatio="none" style="height:${height}px">${rects}</svg>` +
      `<div class="lazycell-Chart-label">${escape(caption)}</div></section>`
    );
  }

  private _historySection(link: KernelLink): string {
    const rows = historyRows(link.history)
      .map(
        row =>
          `<tr class="lazycell-HistoryRow${row.failed ? ' lazycell-mod-failed' : ''}" data-action="show-cell" ` +
          `data-cell-id="${escape(row.cellId ?? '')}" data-cell="${row.cellNumber ?? ''}" title="${escape(row.title)}">` +
          `<td>${escape(row.mark)}</td><td>${escape(row.cell)}</td><td>${escape(row.scheduler)}</td>` +
          `<td>${escape(row.tasks)}</td><td>${escape(row.duration)}</td></tr>`
      )
      .join('');
    const body = rows
      ? `<table class="lazycell-History"><tbody>${rows}</tbody></table>`
      : '<p class="lazycell-SidePanel-note">No compute has finished in this kernel yet.</p>';
    return `<section class="lazycell-HistorySection"><h3>History</h3>${body}</section>`;
  }

  private _onClick = (event: MouseEvent): void => {
    const target = (event.target as HTMLElement).closest('[data-action]') as HTMLElement | null;
    const link = this.link;
    if (target === null || link === null) {
      return;
    }
    event.preventDefault();
    const action = target.dataset.action;
    if (action === 'interrupt') {
      void link.interrupt();
    } else if (action === 'load') {
      void link.load();
    } else if (action === 'scale') {
      link.scale(this._number('.lazycell-ScaleWorkers'));
    } else if (action === 'adapt') {
      link.adapt(this._number('.lazycell-AdaptMinimum'), this._number('.lazycell-AdaptMaximum'));
    } else if (action === 'debug') {
      this._actions.debug(link);
    } else if (action === 'show-cell') {
      const cell = target.dataset.cell ? Number(target.dataset.cell) : null;
      this._actions.showCell(link, target.dataset.cellId || null, cell);
    }
  };

  private _bottom: HTMLElement;
  private _controls: HTMLElement;
  private _top: HTMLElement;
  private _drawPending = false;
  private _notebookName = '';
}
