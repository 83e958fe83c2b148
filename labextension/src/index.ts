/**
 * lazycell in JupyterLab (and Notebook 7): a side panel and a status bar item
 * for the active notebook's kernel, fed over the kernel's `lazycell` comm
 * (lazycell/kernel_ext/comm.py). No server extension, no extra port.
 *
 *     INotebookTracker: the active notebook ─► its KernelLink (one per notebook)
 *                                          ─► LazycellPanel.link, LazycellStatusItem.link
 *     command lazycell:open-panel (palette, status item click) ─► reveal the panel
 *
 * ILabShell, the status bar, the palette and the layout restorer are
 * optional, so the plugin also runs where some are missing (Notebook 7).
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';

import { KernelLink } from './link';
import { IPanelActions, LazycellPanel, PANEL_ID } from './panel';
import { LazycellStatusItem } from './status';

export const OPEN_PANEL_COMMAND = 'lazycell:open-panel';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16">' +
  '<g class="jp-icon3" fill="#616161">' +
  '<rect x="1" y="9" width="3" height="6" rx="0.5"/><rect x="6.5" y="5" width="3" height="10" rx="0.5"/>' +
  '<rect x="12" y="1" width="3" height="14" rx="0.5"/></g></svg>';

export const lazycellIcon = new LabIcon({ name: 'lazycell:panel', svgstr: ICON_SVG });

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'lazycell:plugin',
  description: 'lazycell: a side panel and a status bar item fed by the kernel over a comm',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILabShell, ILayoutRestorer, ICommandPalette, IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    labShell: ILabShell | null,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null
  ) => {
    const links = new Map<NotebookPanel, KernelLink>();
    const linkOf = (notebook: NotebookPanel): KernelLink => {
      let link = links.get(notebook);
      if (link === undefined) {
        link = new KernelLink(notebook.sessionContext);
        links.set(notebook, link);
        notebook.disposed.connect(() => {
          links.get(notebook)?.dispose();
          links.delete(notebook);
        });
      }
      return link;
    };
    const notebookOf = (link: KernelLink): NotebookPanel | null => {
      for (const [notebook, candidate] of links) {
        if (candidate === link) {
          return notebook;
        }
      }
      return null;
    };

    const actions: IPanelActions = {
      showCell: (link, cellId, cell) => {
        const notebook = notebookOf(link);
        if (notebook === null) {
          return;
        }
        const cells = notebook.content.widgets;
        let index = cellId ? cells.findIndex(widget => widget.model.id === cellId) : -1;
        if (index < 0 && cell !== null) {
          index = cells.findIndex(
            widget => widget.model.type === 'code' && (widget.model as any).executionCount === cell
          );
        }
        if (index < 0) {
          return;
        }
        app.shell.activateById(notebook.id);
        notebook.content.activeCellIndex = index;
        void notebook.content.scrollToItem(index, 'center');
      },
      debug: link => {
        const notebook = notebookOf(link);
        const kernel = link.kernel;
        if (notebook === null || kernel === null) {
          return;
        }
        // A console on the notebook's kernel: pdb's prompts need a front end that answers them.
        void app.commands
          .execute('console:create', {
            path: notebook.context.path,
            ref: notebook.id,
            insertMode: 'split-bottom',
            activate: true,
            kernelPreference: { id: kernel.id, shouldStart: false, canStart: false }
          })
          .then(async (console: any) => {
            await console.sessionContext.ready;
            console.console.inject('%debug');
          })
          .catch((reason: unknown) => {
            window.console.warn('lazycell: could not open a console to debug', reason);
          });
      }
    };

    const panel = new LazycellPanel(actions);
    panel.title.icon = lazycellIcon;
    app.shell.add(panel, 'right', { rank: 900 });
    if (restorer) {
      restorer.add(panel, PANEL_ID);
    }

    app.commands.addCommand(OPEN_PANEL_COMMAND, {
      label: 'Open the lazycell panel',
      caption: 'progress, workers, resources and history of the notebook kernel’s computes',
      icon: lazycellIcon,
      execute: () => {
        if (!panel.isAttached) {
          app.shell.add(panel, 'right', { rank: 900 });
        }
        if (labShell) {
          labShell.expandRight();
        }
        app.shell.activateById(panel.id);
      }
    });
    if (palette) {
      palette.addItem({ command: OPEN_PANEL_COMMAND, category: 'lazycell' });
    }

    let statusItem: LazycellStatusItem | null = null;
    if (statusBar) {
      statusItem = new LazycellStatusItem(() => {
        void app.commands.execute(OPEN_PANEL_COMMAND);
      });
      statusBar.registerStatusItem('lazycell:status', {
        item: statusItem,
        align: 'left',
        rank: 5,
        isActive: () => true
      });
    }

    const follow = (notebook: NotebookPanel | null): void => {
      const link = notebook === null ? null : linkOf(notebook);
      panel.link = link;
      panel.notebookName = notebook === null ? '' : notebook.title.label;
      if (statusItem !== null) {
        statusItem.link = link;
      }
    };
    notebooks.currentChanged.connect((_sender, notebook) => follow(notebook));
    notebooks.widgetAdded.connect((_sender, notebook) => {
      linkOf(notebook);
    });
    follow(notebooks.currentWidget);
  }
};

export default plugin;
