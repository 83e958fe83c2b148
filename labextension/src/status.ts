/**
 * The status bar item: the active notebook's kernel in one line
 * (`lazycell: threads · 812/2,000 tasks · 2 workers · 1.4 GB` while computing,
 * the scheduler when idle, red on a failure or a worker near its memory
 * limit). A click opens the side panel.
 */
import { Widget } from '@lumino/widgets';

import { KernelLink } from './link';
import { statusView } from './view';

export class LazycellStatusItem extends Widget {
  constructor(private readonly _onOpen: () => void) {
    super();
    this.addClass('lazycell-StatusItem');
    this.addClass('jp-StatusBar-TextItem');
    this.node.addEventListener('click', this._onOpen);
    this._draw();
  }

  get link(): KernelLink | null {
    return this._link;
  }

  set link(link: KernelLink | null) {
    if (link === this._link) {
      return;
    }
    this._link?.changed.disconnect(this._draw, this);
    this._link = link;
    link?.changed.connect(this._draw, this);
    this._draw();
  }

  dispose(): void {
    this.link = null;
    this.node.removeEventListener('click', this._onOpen);
    super.dispose();
  }

  private _draw(): void {
    const link = this._link;
    const view = statusView(link?.state ?? null, link?.status ?? 'no-kernel');
    if (this.node.textContent !== view.text) {
      this.node.textContent = view.text;
    }
    this.node.title = view.title;
    for (const level of ['idle', 'busy', 'warn', 'danger']) {
      this.node.classList.toggle(`lazycell-mod-${level}`, level === view.level);
    }
    this.node.classList.toggle('lazycell-mod-empty', view.text === '');
  }

  private _link: KernelLink | null = null;
}
