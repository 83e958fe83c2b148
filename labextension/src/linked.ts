/**
 * What the status item and the side panel share: each shows one notebook's
 * KernelLink, and redraws when it changes. Setting `link` moves the redraw
 * from the old link's `changed` signal to the new one's (both views follow
 * the active notebook), so a view never draws a notebook it no longer shows.
 */
import { Widget } from '@lumino/widgets';

import { KernelLink } from './link';

export abstract class LinkedWidget extends Widget {
  /** The notebook's link the widget shows, or null when no notebook is open. */
  get link(): KernelLink | null {
    return this._link;
  }

  set link(link: KernelLink | null) {
    if (link === this._link) {
      return;
    }
    this._link?.changed.disconnect(this.onLinkChanged, this);
    this._link = link;
    link?.changed.connect(this.onLinkChanged, this);
    this.onLinkChanged();
  }

  dispose(): void {
    this.link = null;
    super.dispose();
  }

  /** Draw the link's new state (also when the link itself is replaced). */
  protected abstract onLinkChanged(): void;

  private _link: KernelLink | null = null;
}
