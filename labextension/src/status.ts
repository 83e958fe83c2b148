/**
 * The status bar item: the active notebook's kernel in one line
 * (`lazycell: threads · 812/2,000 tasks · 2 workers · 1.4 GB` while computing,
 * the scheduler when idle, red on a failure or a worker near its memory
 * limit). A click opens the side panel.
 */
import { LinkedWidget } from './linked';
import { statusView } from './view';

export class LazycellStatusItem extends LinkedWidget {
  constructor(private readonly _onOpen: () => void) {
    super();
    this.addClass('lazycell-StatusItem');
    this.addClass('jp-StatusBar-TextItem');
    this.node.addEventListener('click', this._onOpen);
    this._draw();
  }

  dispose(): void {
    this.node.removeEventListener('click', this._onOpen);
    super.dispose();
  }

  protected onLinkChanged(): void {
    this._draw();
  }

  private _draw(): void {
    const link = this.link;
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
}
