import { describe, expect, it } from 'vitest';

import { IComputeMessage, IHistoryEntry, IStateMessage, IWorkerMessage } from '../src/protocol';
import {
  chartPoints,
  cpuScale,
  formatBytes,
  formatCount,
  formatSeconds,
  groupRows,
  historyRows,
  memoryLevel,
  memorySegments,
  memoryText,
  mergeHistory,
  progressText,
  statusView,
  streamRects,
  workerDetails
} from '../src/view';

function compute(overrides: Partial<IComputeMessage> = {}): IComputeMessage {
  return {
    id: 3,
    cell: 12,
    cellId: 'abc',
    scheduler: 'threads',
    nWorkers: 2,
    nTasks: 2000,
    done: 812,
    running: 2,
    erred: 0,
    status: 'running',
    elapsed: 3.1,
    eta: 4.53,
    groups: [
      { name: 'slow_square', total: 1999, done: 811, running: 2, erred: 0 },
      { name: 'total', total: 1, done: 1, running: 0, erred: 0 }
    ],
    errors: [],
    summary: '… 812/2,000 tasks so far 3.10 s · threads · 2 workers',
    ...overrides
  };
}

function worker(overrides: Partial<IWorkerMessage> = {}): IWorkerMessage {
  return {
    name: 'kernel',
    threads: 2,
    tasks: 812,
    processing: null,
    cpu: 195.4,
    managed: 0,
    unmanaged: 1_400_000_000,
    spilled: 0,
    limit: 16_000_000_000,
    ...overrides
  };
}

function state(overrides: Partial<IStateMessage> = {}): IStateMessage {
  return {
    type: 'state',
    scheduler: 'threads',
    compute: compute(),
    workers: [worker()],
    cluster: null,
    resources: [],
    stream: null,
    version: '0.1.0',
    ...overrides
  };
}

function entry(id: number, overrides: Partial<IHistoryEntry> = {}): IHistoryEntry {
  return {
    id,
    cell: id + 10,
    cellId: `cell-${id}`,
    scheduler: 'threads',
    nTasks: 31,
    done: 31,
    erred: 0,
    status: 'ok',
    duration: 1.5,
    startedAt: 1_700_000_000 + id,
    summary: '✔ 31 tasks in 1.50 s · threads · 2 workers',
    ...overrides
  };
}

describe('numbers as the kernel writes them', () => {
  it('counts with thousands separators', () => {
    expect(formatCount(2000)).toBe('2,000');
    expect(formatCount(1234567)).toBe('1,234,567');
    expect(formatCount(12)).toBe('12');
  });

  it('writes bytes in the largest unit, one decimal', () => {
    expect(formatBytes(1_400_000_000)).toBe('1.4 GB');
    expect(formatBytes(1_234_567)).toBe('1.2 MB');
    expect(formatBytes(2_048)).toBe('2.0 kB');
    expect(formatBytes(512)).toBe('512 B');
  });

  it('writes seconds as the summaries do', () => {
    expect(formatSeconds(0.123)).toBe('0.12 s');
    expect(formatSeconds(12.34)).toBe('12.3 s');
    expect(formatSeconds(75)).toBe('1 min 15 s');
  });
});

describe('the status item', () => {
  it('shows scheduler, progress, workers and memory while a compute runs', () => {
    const view = statusView(state(), 'connected');
    expect(view.text).toBe('lazycell: threads · 812/2,000 tasks · 2 workers · 1.4 GB');
    expect(view.level).toBe('busy');
  });

  it('shows the scheduler when idle', () => {
    const view = statusView(state({ compute: compute({ status: 'ok', done: 2000 }) }), 'connected');
    expect(view.text).toBe('lazycell: threads');
    expect(view.level).toBe('idle');
  });

  it('turns red when the compute failed', () => {
    const failed = compute({ status: 'error', erred: 1 });
    const view = statusView(state({ compute: failed }), 'connected');
    expect(view.text).toBe('lazycell: threads · failed');
    expect(view.level).toBe('danger');
  });

  it('turns red when a worker is near its memory limit', () => {
    const full = worker({ unmanaged: 900, limit: 1000 });
    const view = statusView(state({ workers: [full] }), 'connected');
    expect(view.level).toBe('danger');
    expect(view.title).toContain('memory limit');
  });

  it('says when lazycell is not loaded, and nothing without a kernel', () => {
    expect(statusView(null, 'not-loaded').text).toBe('lazycell: not loaded');
    expect(statusView(null, 'no-kernel').text).toBe('');
  });
});

describe('the compute section', () => {
  it('gives each group its done and running share and count', () => {
    const [squares, total] = groupRows(compute());
    expect(squares.name).toBe('slow_square');
    expect(squares.done).toBeCloseTo((100 * 811) / 1999);
    expect(squares.running).toBeCloseTo((100 * 2) / 1999);
    expect(squares.text).toBe('811/1,999');
    expect(total.done).toBe(100);
  });

  it('counts failed tasks of a group', () => {
    const failed = compute({
      groups: [{ name: 'ratio', total: 4, done: 2, running: 0, erred: 2 }]
    });
    const [row] = groupRows(failed);
    expect(row.text).toBe('2/4 · 2 failed');
    expect(row.erred).toBe(50);
  });

  it('shows progress, elapsed time and ETA while running, the summary after', () => {
    expect(progressText(compute())).toBe('812/2,000 tasks · 3.10 s · ETA 4.53 s');
    expect(progressText(compute({ eta: null }))).toBe('812/2,000 tasks · 3.10 s · ETA …');
    expect(progressText(compute({ status: 'ok', summary: '✔ done' }))).toBe('✔ done');
  });
});

describe('worker rows', () => {
  it('split the memory bar into managed, unmanaged and spilled, clamped to the bar', () => {
    const row = worker({ managed: 250, unmanaged: 250, spilled: 100, limit: 1000 });
    expect(memorySegments(row)).toEqual({ managed: 25, unmanaged: 25, spilled: 10 });
    const over = worker({ managed: 800, unmanaged: 800, spilled: 0, limit: 1000 });
    expect(memorySegments(over)).toEqual({ managed: 80, unmanaged: 20, spilled: 0 });
  });

  it('grade memory at 60 % and 85 % of the limit', () => {
    expect(memoryLevel(worker({ unmanaged: 590, limit: 1000 }))).toBe('ok');
    expect(memoryLevel(worker({ unmanaged: 600, limit: 1000 }))).toBe('warn');
    expect(memoryLevel(worker({ unmanaged: 850, limit: 1000 }))).toBe('danger');
  });

  it('say what is known and leave out the rest', () => {
    expect(workerDetails(worker())).toBe('2 threads · 812 tasks · 195% CPU');
    expect(workerDetails(worker({ threads: 1, tasks: null, cpu: null, processing: 3 }))).toBe(
      '1 thread · 3 running'
    );
    expect(memoryText(worker({ unmanaged: 98e6, limit: 1e9, spilled: 12e6 }))).toBe(
      '98.0 MB / 1.0 GB · spilled 12.0 MB'
    );
  });
});

describe('history', () => {
  it('lists the newest compute first with its cell, scheduler, tasks and duration', () => {
    const rows = historyRows([entry(1), entry(2, { status: 'error', erred: 1 })]);
    expect(rows.map(row => row.cell)).toEqual(['In [12]', 'In [11]']);
    expect(rows[0]).toMatchObject({
      mark: '✖',
      tasks: '1 of 31 tasks failed',
      failed: true,
      cellId: 'cell-2'
    });
    expect(rows[1]).toMatchObject({ mark: '✔', tasks: '31 tasks', duration: '1.50 s' });
  });

  it('keeps each compute once when a reload sends the history again', () => {
    const first = mergeHistory([], [entry(1), entry(2)], true);
    const appended = mergeHistory(first, [entry(3)], false);
    const again = mergeHistory(appended, [entry(2), entry(3)], false);
    expect(again.map(e => e.id)).toEqual([1, 2, 3]);
    expect(mergeHistory(again, [entry(5)], true).map(e => e.id)).toEqual([5]);
  });

  it('counts what an interrupted compute finished', () => {
    const [row] = historyRows([entry(1, { status: 'cancelled', done: 2, nTasks: 201 })]);
    expect(row).toMatchObject({ mark: '■', tasks: '2/201 tasks', failed: false });
  });

  it('labels computes outside a cell', () => {
    expect(historyRows([entry(1, { cell: null })])[0].cell).toBe('outside a cell');
  });
});

describe('the resources chart', () => {
  it('puts the newest point at the right edge and scales to the top', () => {
    const points = chartPoints(
      [
        [120, 0, 0],
        [60, 100, 0],
        [0, 200, 0]
      ],
      1,
      200,
      100,
      50,
      120
    );
    expect(points).toBe('0.0,50.0 50.0,25.0 100.0,0.0');
  });

  it('scales CPU to whole cores, at least one', () => {
    expect(cpuScale([[0, 30, 0]])).toBe(100);
    expect(cpuScale([[0, 130, 0]])).toBe(200);
  });
});

describe('the task stream', () => {
  it('draws a lane per worker, time across, failed tasks apart', () => {
    const rects = streamRects(
      {
        computeId: 1,
        workers: ['thread-0', 'thread-1'],
        groups: ['inc', 'total'],
        bars: [
          [0, 0, 1, 0, 0],
          [1, 1, 2, 1, 0],
          [1, 2, 4, 0, 1]
        ]
      },
      2,
      100,
      10
    );
    expect(rects.map(r => [r.x, r.y, r.width, r.height])).toEqual([
      [0, 1, 25, 8],
      [25, 11, 25, 8],
      [50, 11, 50, 8]
    ]);
    expect(rects.map(r => r.className)).toEqual([
      'lazycell-Stream-c0',
      'lazycell-Stream-c1',
      'lazycell-Stream-erred'
    ]);
    expect(rects[2].title).toBe('inc on thread-1: 2.00 s');
  });
});
