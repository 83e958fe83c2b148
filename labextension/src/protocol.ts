/**
 * The messages of the `lazycell` comm, as lazycell/kernel_ext/comm.py sends them.
 *
 * kernel -> front end: `state` (a few times a second while a compute runs, about
 * once a second otherwise) and `history` (on request, and one entry at each
 * compute's end). front end -> kernel: `{request: 'snapshot'}` (state and the
 * whole history: after opening the comm, or a page reload) and
 * `{request: 'history'}`.
 */

/** One task group's progress (a function name / key prefix). */
export interface IGroupMessage {
  name: string;
  total: number;
  done: number;
  running: number;
  erred: number;
}

/** The compute the kernel runs now, or the last one it ran. */
export interface IComputeMessage {
  id: number;
  /** The N of the cell's In[N], when the compute ran in a cell. */
  cell: number | null;
  /** The notebook cell's id (JupyterLab sends it with each execute request). */
  cellId: string | null;
  scheduler: string;
  nWorkers: number;
  nTasks: number;
  done: number;
  running: number;
  erred: number;
  status: 'running' | 'ok' | 'error' | 'cancelled';
  /** Seconds since the compute started (its duration once it ended). */
  elapsed: number;
  /** Seconds left at the rate so far; null before the first task ends and after the end. */
  eta: number | null;
  groups: IGroupMessage[];
  /** "group: error message", the first few. */
  errors: string[];
  /** The kernel's one-line summary, as the notebook panel prints it. */
  summary: string;
}

/** One worker: a thread pool (the kernel), a pool process or a cluster worker. */
export interface IWorkerMessage {
  name: string;
  threads: number | null;
  /** Tasks finished there in this compute (local) or results held (cluster). */
  tasks: number | null;
  /** Tasks running there now, where known. */
  processing: number | null;
  /** CPU %, 100 = one core, where known. */
  cpu: number | null;
  managed: number;
  unmanaged: number;
  spilled: number;
  limit: number;
}

/** Seconds ago, CPU % (100 = one core), resident bytes: the kernel and its child processes. */
export type ResourcePoint = [number, number, number];

/** The open cluster (a lazycell LocalCluster or a dask cluster), when the workers are its. */
export interface ICluster {
  kind: string;
  dashboard: string | null;
  /** Whether this kernel can scale it (a cluster object, not only an address). */
  scalable: boolean;
  adaptive: { minimum: number | null; maximum: number | null } | null;
}

/**
 * A compute's task stream, thinned to a few hundred bars spread over it:
 * `[worker index, start, stop, group index, erred (0/1)]`, seconds since the compute started.
 */
export interface ITaskStream {
  computeId: number;
  workers: string[];
  groups: string[];
  bars: [number, number, number, number, number][];
}

export interface IStateMessage {
  type: 'state';
  /** The scheduler a compute would use now (lc.config's scheduler). */
  scheduler: string;
  compute: IComputeMessage | null;
  workers: IWorkerMessage[];
  cluster: ICluster | null;
  /** Sent every few seconds and at the compute's end; null in between. */
  stream: ITaskStream | null;
  resources: ResourcePoint[];
  version: string;
}

/** One finished compute of this kernel. */
export interface IHistoryEntry {
  id: number;
  cell: number | null;
  cellId: string | null;
  scheduler: string;
  nTasks: number;
  done: number;
  erred: number;
  status: 'ok' | 'error' | 'cancelled' | 'running';
  duration: number;
  /** Seconds since the epoch. */
  startedAt: number;
  summary: string;
}

export interface IHistoryMessage {
  type: 'history';
  computes: IHistoryEntry[];
  /** True: the kernel's whole history; false: entries to append. */
  replace: boolean;
}

export type KernelMessage = IStateMessage | IHistoryMessage;

export type FrontEndRequest =
  | { request: 'snapshot' }
  | { request: 'history' }
  | { request: 'scale'; workers: number }
  | { request: 'adapt'; minimum: number; maximum: number };
