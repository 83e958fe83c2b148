/**
 * One notebook's link to lazycell in its kernel, over the `lazycell` comm.
 *
 *     notebook's kernel changes ─► register the comm target "lazycell" (the kernel
 *                                  opens a comm when `%load_ext lazycell` runs),
 *                                  open a comm of our own with {request: 'snapshot'}
 *     kernel closes our comm    ─► 'not-loaded' (lazycell is not loaded there: the
 *                                  panel offers to load it)
 *     IOPub comm_msg from lazycell, on any comm ─► state / history ─► changed
 *
 * Why IOPub and not only our comm: the kernel sends each message once, on its
 * newest comm, and IOPub brings it to every page of the kernel. A page
 * reloaded mid-compute so sees the progress at once, although its own
 * comm_open waits until the running cell ends.
 */
import { ISessionContext } from '@jupyterlab/apputils';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import {
  FrontEndRequest,
  IHistoryEntry,
  IStateMessage,
  ITaskStream,
  KernelMessage as LazycellMessage
} from './protocol';
import { LinkStatus, mergeHistory } from './view';

export const COMM_TARGET = 'lazycell';
/** Loads lazycell in the kernel: what the panel's "Load lazycell" button runs. */
export const LOAD_CODE = '%load_ext lazycell';

export class KernelLink implements IDisposable {
  constructor(readonly sessionContext: ISessionContext) {
    sessionContext.kernelChanged.connect(this._onKernelChanged, this);
    sessionContext.statusChanged.connect(this._onStatusChanged, this);
    this._connect(sessionContext.session?.kernel ?? null);
  }

  /** Emitted after each change of status, state or history. */
  get changed(): ISignal<KernelLink, void> {
    return this._changed;
  }

  get status(): LinkStatus {
    return this._status;
  }

  /** The kernel's latest state message, null before the first. */
  get state(): IStateMessage | null {
    return this._state;
  }

  /** The latest compute's task stream (it comes every few seconds), null before. */
  get stream(): ITaskStream | null {
    return this._stream;
  }

  /** The kernel's computes, oldest first. */
  get history(): IHistoryEntry[] {
    return this._history;
  }

  /** The last error the kernel reported about our requests, if any. */
  get error(): string | null {
    return this._error;
  }

  get kernel(): Kernel.IKernelConnection | null {
    return this._kernel;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Ctrl-C: the kernel's interrupt (stops the running compute as Ctrl-C in the notebook does). */
  async interrupt(): Promise<void> {
    await this._kernel?.interrupt();
  }

  /** Load lazycell in the kernel (silently: no cell, no output, no history). */
  async load(): Promise<void> {
    const kernel = this._kernel;
    if (kernel === null) {
      return;
    }
    this._status = 'connecting';
    this._changed.emit();
    await kernel.requestExecute({ code: LOAD_CODE, silent: true, store_history: false }).done;
    // The kernel opens a comm when the extension loads; ask as well, in case it was loaded already.
    this._openComm();
  }

  /** Ask the kernel for the whole history again. */
  requestHistory(): void {
    this._send({ request: 'history' });
  }

  /** Have the open cluster run `workers` workers (turns adapt off). */
  scale(workers: number): void {
    this._error = null;
    this._send({ request: 'scale', workers });
  }

  /** Let the open cluster grow and shrink with the work between the bounds. */
  adapt(minimum: number, maximum: number): void {
    this._error = null;
    this._send({ request: 'adapt', minimum, maximum });
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this._disconnect();
    Signal.clearData(this);
  }

  private _onKernelChanged(
    _sender: ISessionContext,
    change: { newValue: Kernel.IKernelConnection | null }
  ): void {
    this._connect(change.newValue);
  }

  private _onStatusChanged(_sender: ISessionContext, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting') {
      // A new process: nothing of the old kernel's lazycell is left.
      this._reset('connecting');
    } else if (status === 'idle' && this._status === 'connecting' && this._comm === null) {
      this._openComm();
    }
  }

  private _connect(kernel: Kernel.IKernelConnection | null): void {
    this._disconnect();
    this._kernel = kernel;
    if (kernel === null) {
      this._reset('no-kernel');
      return;
    }
    this._reset('connecting');
    kernel.registerCommTarget(COMM_TARGET, this._onKernelComm);
    kernel.iopubMessage.connect(this._onIOPub, this);
    this._openComm();
  }

  private _disconnect(): void {
    const kernel = this._kernel;
    if (kernel !== null) {
      kernel.iopubMessage.disconnect(this._onIOPub, this);
      try {
        kernel.removeCommTarget(COMM_TARGET, this._onKernelComm);
      } catch {
        // the kernel connection is gone already
      }
    }
    this._comm = null;
    this._kernel = null;
  }

  private _reset(status: LinkStatus): void {
    this._status = status;
    this._state = null;
    this._stream = null;
    this._history = [];
    this._error = null;
    this._comm = null;
    this._changed.emit();
  }

  private _openComm(): void {
    const kernel = this._kernel;
    if (kernel === null || kernel.isDisposed) {
      return;
    }
    try {
      const comm = kernel.createComm(COMM_TARGET);
      this._watch(comm);
      comm.open({ request: 'snapshot' });
    } catch (reason) {
      console.warn('lazycell: could not open the comm', reason);
    }
  }

  /** The kernel opened a comm (`%load_ext lazycell` ran): use it, and ask for a snapshot. */
  private _onKernelComm = (comm: Kernel.IComm): void => {
    this._watch(comm);
    comm.send({ request: 'snapshot' });
  };

  private _watch(comm: Kernel.IComm): void {
    this._comm = comm;
    comm.onClose = () => {
      if (this._comm === comm) {
        this._comm = null;
        // The kernel closes a comm when lazycell is not loaded there, or unloads.
        this._status = 'not-loaded';
        this._state = null;
        this._changed.emit();
      }
    };
  }

  private _send(request: FrontEndRequest): void {
    if (this._comm !== null && !this._comm.isDisposed) {
      this._comm.send(request as any);
    }
  }

  private _onIOPub(_sender: Kernel.IKernelConnection, msg: KernelMessage.IIOPubMessage): void {
    if (msg.header.msg_type !== 'comm_msg') {
      return;
    }
    const data = (msg as KernelMessage.ICommMsgMsg).content.data as any;
    if (data === null || typeof data !== 'object' || data.lazycell === undefined) {
      return;
    }
    this._handle(data as LazycellMessage | { type: 'error'; message: string });
  }

  private _handle(message: LazycellMessage | { type: 'error'; message: string }): void {
    this._status = 'connected';
    if (message.type === 'state') {
      this._state = message;
      if (message.stream) {
        this._stream = message.stream;
      } else if (message.compute === null || message.compute.id !== this._stream?.computeId) {
        this._stream = null;
      }
    } else if (message.type === 'history') {
      this._history = mergeHistory(this._history, message.computes, message.replace);
    } else if (message.type === 'error') {
      this._error = message.message;
      console.warn(`lazycell: ${message.message}`);
    }
    this._changed.emit();
  }

  private _changed = new Signal<KernelLink, void>(this);
  private _comm: Kernel.IComm | null = null;
  private _error: string | null = null;
  private _history: IHistoryEntry[] = [];
  private _isDisposed = false;
  private _kernel: Kernel.IKernelConnection | null = null;
  private _state: IStateMessage | null = null;
  private _stream: ITaskStream | null = null;
  private _status: LinkStatus = 'no-kernel';
}
