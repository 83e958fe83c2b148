/**
 * What the status item and the side panel show: plain functions of the
 * kernel's messages (src/protocol.ts), free of JupyterLab so they can be unit
 * tested (test/view.test.ts). The widgets only put these strings and numbers
 * in the DOM.
 */
import {
  IComputeMessage,
  IHistoryEntry,
  IStateMessage,
  ITaskStream,
  IWorkerMessage,
  ResourcePoint
} from './protocol';

/** A memory bar turns orange at this fraction of its limit, red at DANGER (as in the notebook). */
export const WARN_FRACTION = 0.6;
export const DANGER_FRACTION = 0.85;

/** How a view is drawn: idle, busy, or in trouble (red). */
export type Level = 'idle' | 'busy' | 'warn' | 'danger';

/** The front end's link to one kernel's lazycell. */
export type LinkStatus =
  | 'no-kernel'
  | 'connecting'
  /** The kernel answered, but lazycell is not loaded there (offer to load it). */
  | 'not-loaded'
  | 'connected';

/** `2000 -> "2,000"`. */
export function formatCount(n: number): string {
  return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** `1234567 -> "1.2 MB"` (as lazycell's notebook panel writes it). */
export function formatBytes(n: number): string {
  const units: [string, number][] = [
    ['GB', 1e9],
    ['MB', 1e6],
    ['kB', 1e3]
  ];
  for (const [unit, size] of units) {
    if (n >= size) {
      return `${(n / size).toFixed(1)} ${unit}`;
    }
  }
  return `${Math.max(0, Math.floor(n))} B`;
}

/** `0.123 -> "0.12 s"`, `75 -> "1 min 15 s"` (as the kernel's summaries write it). */
export function formatSeconds(seconds: number): string {
  if (seconds < 10) {
    return `${seconds.toFixed(2)} s`;
  }
  if (seconds < 60) {
    return `${seconds.toFixed(1)} s`;
  }
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)} min ${whole % 60} s`;
}

/** `plural(1, "worker") == "1 worker"`, `plural(2000, "task") == "2,000 tasks"`. */
export function plural(n: number, noun: string): string {
  return `${formatCount(n)} ${noun}${n === 1 ? '' : 's'}`;
}

/** Bytes in memory on a worker (results held and the rest of the process). */
export function inMemory(worker: IWorkerMessage): number {
  return worker.managed + worker.unmanaged;
}

/** ok / warn / danger, by how full a worker's memory is. */
export function memoryLevel(worker: IWorkerMessage): 'ok' | 'warn' | 'danger' {
  const fraction = worker.limit > 0 ? inMemory(worker) / worker.limit : 0;
  if (fraction >= DANGER_FRACTION) {
    return 'danger';
  }
  return fraction >= WARN_FRACTION ? 'warn' : 'ok';
}

/** The segments of a worker's memory bar, in % of its limit (each clamped, summing to <= 100). */
export function memorySegments(worker: IWorkerMessage): {
  managed: number;
  unmanaged: number;
  spilled: number;
} {
  const limit = worker.limit > 0 ? worker.limit : 1;
  let left = 100;
  const take = (bytes: number): number => {
    const percent = Math.min(Math.max((100 * bytes) / limit, 0), left);
    left -= percent;
    return percent;
  };
  const managed = take(worker.managed);
  const unmanaged = take(worker.unmanaged);
  const spilled = take(worker.spilled);
  return { managed, unmanaged, spilled };
}

/** `"98 MB / 1.0 GB · spilled 12 MB"`. */
export function memoryText(worker: IWorkerMessage): string {
  let text = `${formatBytes(inMemory(worker))} / ${formatBytes(worker.limit)}`;
  if (worker.spilled) {
    text += ` · spilled ${formatBytes(worker.spilled)}`;
  }
  return text;
}

/** `"2 threads · 12 tasks · 1 running · 95% CPU"`, leaving out what the kernel does not know. */
export function workerDetails(worker: IWorkerMessage): string {
  const parts: string[] = [];
  if (worker.threads !== null) {
    parts.push(plural(worker.threads, 'thread'));
  }
  if (worker.tasks !== null) {
    parts.push(plural(worker.tasks, 'task'));
  }
  if (worker.processing !== null) {
    parts.push(`${formatCount(worker.processing)} running`);
  }
  if (worker.cpu !== null) {
    parts.push(`${Math.round(worker.cpu)}% CPU`);
  }
  return parts.join(' · ');
}

export function isRunning(compute: IComputeMessage | null): boolean {
  return compute !== null && compute.status === 'running';
}

/** What the status bar item says, and in which colour. */
export function statusView(
  state: IStateMessage | null,
  link: LinkStatus
): { text: string; level: Level; title: string } {
  if (link === 'no-kernel') {
    return { text: '', level: 'idle', title: '' };
  }
  if (link === 'not-loaded') {
    return {
      text: 'lazycell: not loaded',
      level: 'idle',
      title: 'lazycell is not loaded in this kernel: click to open the panel and load it'
    };
  }
  if (link === 'connecting' || state === null) {
    return { text: 'lazycell: …', level: 'idle', title: 'lazycell: connecting to the kernel' };
  }
  const compute = state.compute;
  const full = state.workers.some(worker => memoryLevel(worker) === 'danger');
  const failed = compute !== null && (compute.status === 'error' || compute.erred > 0);
  let text: string;
  let level: Level;
  if (compute !== null && isRunning(compute)) {
    const memory = state.workers.reduce((sum, worker) => sum + inMemory(worker), 0);
    const parts = [
      compute.scheduler,
      `${formatCount(compute.done)}/${plural(compute.nTasks, 'task')}`,
      plural(compute.nWorkers, 'worker')
    ];
    if (memory > 0) {
      parts.push(formatBytes(memory));
    }
    text = `lazycell: ${parts.join(' · ')}`;
    level = 'busy';
  } else {
    text = `lazycell: ${state.scheduler}`;
    if (compute !== null && compute.status === 'error') {
      text += ' · failed';
    }
    level = 'idle';
  }
  if (failed || full) {
    level = 'danger';
  }
  const title = full
    ? 'a worker is near its memory limit'
    : compute !== null
      ? compute.summary
      : `no compute yet; the scheduler is ${state.scheduler}`;
  return { text, level, title };
}

/** One task group's bar: % done and % running, and its "done/total" text. */
export interface IGroupRow {
  name: string;
  done: number;
  running: number;
  erred: number;
  text: string;
}

export function groupRows(compute: IComputeMessage): IGroupRow[] {
  return compute.groups.map(group => {
    const total = Math.max(group.total, group.done + group.erred, 1);
    let text = `${formatCount(group.done)}/${formatCount(group.total)}`;
    if (group.erred) {
      text += ` · ${formatCount(group.erred)} failed`;
    }
    return {
      name: group.name,
      done: (100 * group.done) / total,
      running: (100 * group.running) / total,
      erred: (100 * group.erred) / total,
      text
    };
  });
}

/** The line above the group bars: `"812/2,000 tasks · 3.10 s · ETA 4.53 s"` while running. */
export function progressText(compute: IComputeMessage): string {
  if (!isRunning(compute)) {
    return compute.summary;
  }
  const parts = [
    `${formatCount(compute.done)}/${plural(compute.nTasks, 'task')}`,
    formatSeconds(compute.elapsed),
    compute.eta === null ? 'ETA …' : `ETA ${formatSeconds(compute.eta)}`
  ];
  if (compute.erred) {
    parts.push(`${formatCount(compute.erred)} failed`);
  }
  return parts.join(' · ');
}

/** Where a compute ran: `"In [12]"`, or `"outside a cell"`. */
export function cellLabel(cell: number | null): string {
  return cell === null ? 'outside a cell' : `In [${cell}]`;
}

const STATUS_MARKS: Record<string, string> = {
  ok: '✔',
  error: '✖',
  cancelled: '■',
  running: '…'
};

/** A history row's columns, newest compute first. */
export interface IHistoryRow {
  id: number;
  cellId: string | null;
  /** `In [n]`'s n, null outside a cell (for the link to the cell). */
  cellNumber: number | null;
  mark: string;
  cell: string;
  scheduler: string;
  tasks: string;
  duration: string;
  failed: boolean;
  title: string;
}

export function historyRows(entries: IHistoryEntry[]): IHistoryRow[] {
  return [...entries]
    .sort((a, b) => b.id - a.id)
    .map(entry => ({
      id: entry.id,
      cellId: entry.cellId,
      cellNumber: entry.cell,
      mark: STATUS_MARKS[entry.status] ?? '',
      cell: cellLabel(entry.cell),
      scheduler: entry.scheduler,
      tasks:
        entry.erred > 0
          ? `${formatCount(entry.erred)} of ${plural(entry.nTasks, 'task')} failed`
          : entry.done < entry.nTasks
            ? `${formatCount(entry.done)}/${plural(entry.nTasks, 'task')}`
            : plural(entry.nTasks, 'task'),
      duration: formatSeconds(entry.duration),
      failed: entry.status === 'error' || entry.erred > 0,
      title: entry.summary
    }));
}

/** Add entries to a history, each compute once (a reload may send some again). */
export function mergeHistory(
  history: IHistoryEntry[],
  entries: IHistoryEntry[],
  replace: boolean
): IHistoryEntry[] {
  const byId = new Map<number, IHistoryEntry>();
  for (const entry of replace ? entries : [...history, ...entries]) {
    byId.set(entry.id, entry);
  }
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

/**
 * An SVG polyline's points for a resources-over-time chart: x is time (the
 * newest point at the right edge, `window` seconds across), y the value
 * against `max` (0 at the bottom).
 */
export function chartPoints(
  points: ResourcePoint[],
  column: 1 | 2,
  max: number,
  width: number,
  height: number,
  window: number
): string {
  const top = max > 0 ? max : 1;
  return points
    .filter(point => point[0] <= window)
    .sort((a, b) => b[0] - a[0])
    .map(point => {
      const x = width * (1 - point[0] / window);
      const y = height * (1 - Math.min(point[column] / top, 1));
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(' ');
}

/** The CPU chart's top: at least one core (100 %), else the highest sample, rounded up to a core. */
export function cpuScale(points: ResourcePoint[]): number {
  const highest = points.reduce((max, point) => Math.max(max, point[1]), 0);
  return Math.max(100, Math.ceil(highest / 100) * 100);
}

/** Colours of the task stream's groups (CSS classes over --jp-* colours), in turn. */
export const STREAM_COLOURS = 6;

/** One bar of the task stream chart, in SVG units. */
export interface IStreamRect {
  x: number;
  y: number;
  width: number;
  height: number;
  className: string;
  title: string;
}

/**
 * The task stream as rectangles: a lane per worker (`laneHeight` high), time
 * across `width` from 0 to `span` seconds (at least the last bar's end).
 */
export function streamRects(
  stream: ITaskStream,
  span: number,
  width: number,
  laneHeight: number
): IStreamRect[] {
  const end = Math.max(span, ...stream.bars.map(bar => bar[2]), 1e-9);
  return stream.bars.map(([worker, start, stop, group, erred]) => ({
    x: (width * start) / end,
    y: worker * laneHeight + 1,
    width: Math.max((width * (stop - start)) / end, 0.5),
    height: laneHeight - 2,
    className: erred
      ? 'lazycell-Stream-erred'
      : `lazycell-Stream-c${group % STREAM_COLOURS}`,
    title: `${stream.groups[group] ?? '?'} on ${stream.workers[worker] ?? '?'}: ${formatSeconds(stop - start)}`
  }));
}
