"""The magics: ``%%compute`` / ``%compute`` and ``%scheduler``.

Each magic parses its options in one place and hands over to the plain
Python API: :class:`SchedulerChoice` (which scheduler, checked),
:class:`CellCode` (run the cell, compute its last expression),
:class:`InlineDebugging` (what a failure shows and where pdb lands) and the
progress display seam. A bad option is a ``UsageError``: IPython prints it
in one line and nothing of the cell runs. That includes an unbalanced quote
and a ``--report`` file that could not be written (checked before the cell
runs, so a long compute is not lost to a typo in the path). If the report
still fails at the end (disk full, folder removed), the cell's result is
kept and the failure is a warning on stderr.
"""

from __future__ import annotations

import bdb
import keyword
import os
import re
import sys
from contextlib import nullcontext
from pathlib import Path

from IPython.core.error import UsageError
from IPython.core.magic import (
    Magics,
    line_cell_magic,
    line_magic,
    magics_class,
    needs_local_scope,
    no_var_expand,
    output_can_be_silenced,
)
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from lazycell import config
from lazycell.diagnostics import advisor
from lazycell.kernel_ext.cell_code import CellCode
from lazycell.kernel_ext.debugging import breakpoint_opens_pdb
from lazycell.kernel_ext.scheduler_choice import (
    SchedulerChoice,
    SchedulerOptionError,
    describe_session_scheduler,
    scheduler_guide_text,
)


def _each(decorators):
    """Apply ``decorators`` as if stacked in this order above a function."""

    def apply(func):
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


SCHEDULER_OPTIONS = _each(
    [
        argument(
            "-n",
            "--workers",
            type=int,
            metavar="N",
            help="number of threads (threads), worker processes (processes) "
            "or cluster workers (distributed)",
        ),
        argument(
            "--threads-per-worker",
            type=int,
            metavar="N",
            help="threads in each worker of a local cluster (distributed)",
        ),
        argument(
            "--memory-limit",
            metavar="SIZE",
            help="memory limit of each worker of a local cluster (distributed), e.g. 4GB",
        ),
    ]
)


@magics_class
class LazycellMagics(Magics):
    """``%%compute``, ``%compute`` and ``%scheduler`` (see each one's ``?`` help)."""

    def __init__(self, shell, extension):
        super().__init__(shell)
        self.extension = extension

    @magic_arguments()
    @argument(
        "-s",
        "--scheduler",
        metavar="NAME",
        help="sync, threads, processes, ... (default: the session's; see %%scheduler --list)",
    )
    @SCHEDULER_OPTIONS
    @argument("-o", "--out", metavar="VAR", help="also store the result in the variable VAR")
    @argument("--quiet", action="store_true", help="no progress display")
    @argument(
        "--keep-live",
        action="store_true",
        help="leave the live panel in the output when the cell ends "
        "(default: a static summary that a saved notebook shows; config panel.keep_live)",
    )
    @argument(
        "--report",
        metavar="FILE",
        help="also write an offline HTML performance report of the cell's computes to FILE",
    )
    @argument(
        "--debug",
        action="store_true",
        help="on failure, re-run the failing task in the kernel and open the debugger "
        "in its frame (as %%pdb on does for every cell)",
    )
    @no_var_expand
    @needs_local_scope
    @line_cell_magic
    @output_can_be_silenced
    def compute(self, line: str = "", cell: str | None = None, local_ns: dict | None = None):
        """Run a cell (or one expression) with its computations on the scheduler you choose.

        ``%%compute [options]`` runs the cell in your namespace; every
        ``.compute()`` / ``lc.compute()`` in it uses the chosen scheduler. If the
        cell ends in an expression holding lazy objects or dask collections
        (also inside lists, tuples, dicts), they are computed together, in one
        graph, and the result is the cell's output (``Out[n]``, ``_``).

        ``%compute [options] EXPR`` does the same for one expression. Put ``--``
        before an expression that starts with ``-``.

        A failing task's error names the task and keeps your exception type.
        With ``%pdb on`` (or ``--debug``) the debugger opens in the failing
        task's frame, with its real inputs, on every scheduler; ``%debug``
        after the failure lands there too.

        Examples::

            %%compute --scheduler processes --workers 4
            total

            %compute -s sync total

            %%compute --report report.html
            total
        """
        options, expression = split_options_and_expression(line, self.compute.parser)
        is_cell = cell is not None
        args = parse_options(self.compute, options, "%%compute" if is_cell else "%compute")
        if is_cell and expression:
            raise UsageError(
                f"%%compute takes only options on its first line, not {expression!r}; "
                "put the code in the cell below it"
            )
        if not is_cell and not expression:
            raise UsageError(
                "%compute needs an expression: %compute [options] EXPR "
                "(for a whole cell, use %%compute on its first line)"
            )
        choice = self._choice(args.scheduler, args.workers, args)
        report_path = None if args.report is None else checked_report_path(args.report)
        if args.out is not None and not (
            args.out.isidentifier() and not keyword.iskeyword(args.out)
        ):
            raise UsageError(f"--out takes a variable name such as result, not {args.out!r}")
        code = self._compile(cell if is_cell else expression, options if is_cell else None)
        if args.out is not None and not code.ends_in_expression:
            raise UsageError(
                "--out VAR stores the value of the cell's last expression, "
                "but this cell does not end in an expression"
            )
        global_ns = self.shell.user_ns
        local_ns = None if is_cell or local_ns is global_ns else local_ns
        report = nullcontext() if report_path is None else ReportOrWarning(report_path)
        keep_live = config.set({"panel.keep_live": True}) if args.keep_live else nullcontext()
        with report, keep_live:
            result = self._run(
                code, choice, global_ns, local_ns, quiet=args.quiet, debug=args.debug
            )
        if args.out is not None:
            self.shell.user_ns[args.out] = result
        return result

    @magic_arguments()
    @argument("name", nargs="?", metavar="NAME", help="sync, threads, processes, ...")
    @argument("--list", action="store_true", help="the schedulers, and when to use each")
    @argument(
        "--advise",
        action="store_true",
        help="where the last compute would run best, with the measurements and estimates",
    )
    @SCHEDULER_OPTIONS
    @no_var_expand
    @line_magic
    def scheduler(self, line: str = "") -> None:
        """Show or set the scheduler this session computes on.

        ``%scheduler`` shows the current one and its settings;
        ``%scheduler NAME [--workers N]`` sets it for the rest of the session
        (like ``lc.config.set(scheduler=NAME, num_workers=N)``; settings not
        given go back to their defaults); ``%scheduler --list`` says which
        scheduler fits which work; ``%scheduler --advise`` prints the
        advisor's reasoning for the last compute (per task group: time,
        CPU/wall, bytes in and out, the estimate on each scheduler).
        ``%scheduler auto`` lets lazycell pick from those measurements.

        Examples::

            %scheduler processes --workers 4
            %scheduler --list
            %scheduler --advise
        """
        args = parse_options(self.scheduler, line, "%scheduler")
        scheduler_options = any(
            value is not None
            for value in (args.workers, args.threads_per_worker, args.memory_limit)
        )
        if args.advise:
            if args.list or args.name is not None or scheduler_options:
                raise UsageError("%scheduler --advise takes no other argument")
            print(advisor.advise_text())
            return
        if args.list:
            if args.name is not None or scheduler_options:
                raise UsageError("%scheduler --list takes no other argument")
            print(scheduler_guide_text())
            return
        if args.name is None:
            if scheduler_options:
                raise UsageError(
                    "name the scheduler these options are for, e.g. %scheduler threads --workers 4"
                )
            print(describe_session_scheduler())
            return
        choice = self._choice(args.name, args.workers, args)
        try:
            print(choice.make_session_default())
        except SchedulerOptionError as exc:
            raise UsageError(str(exc)) from None

    # -- helpers
    @staticmethod
    def _choice(name, workers, args) -> SchedulerChoice:
        try:
            return SchedulerChoice.from_options(
                scheduler=name,
                workers=workers,
                threads_per_worker=args.threads_per_worker,
                memory_limit=args.memory_limit,
            )
        except SchedulerOptionError as exc:
            raise UsageError(str(exc)) from None

    def _compile(self, source: str, cell_options: str | None) -> CellCode:
        """Compile under a cached name so tracebacks and pdb show the cell's own lines."""
        shell = self.shell
        python = shell.transform_cell(source)
        if cell_options is None:
            shown = source
        else:  # the cell as the user sees it: the magic's line, then the code from line 2
            shown = f"%%compute {cell_options}".rstrip() + "\n" + source
            python = "\n" + python
        filename = shell.compile.cache(shown, running_cell_number(shell), raw_code=shown)
        with shell.builtin_trap:
            tree = shell.compile.ast_parse(python, filename=filename)
        tree = shell.transform_ast(tree)
        return CellCode.from_tree(tree, filename, shell.compile)

    def _run(self, code: CellCode, choice, global_ns, local_ns, quiet: bool, debug: bool):
        display = nullcontext() if quiet else self.extension.progress_display()
        try:
            # The advisor measures the cell's computes (for the hint and --advise).
            with choice.applied(), advisor.listening(), display, breakpoint_opens_pdb():
                return code.run(global_ns, local_ns)
        except (bdb.BdbQuit, SystemExit):
            raise  # quitting pdb or exit(): IPython handles these itself
        except (Exception, KeyboardInterrupt) as exc:
            failure = exc
        __tracebackhide__ = True  # noqa: F841 - read by IPython's traceback and debugger
        raise self.extension.debugging.prepare_to_raise(failure, debug=debug)


def parse_options(magic, options: str, magic_name: str):
    """``parse_argstring``, with an unbalanced quote a ``UsageError`` too (shlex's ValueError)."""
    try:
        return parse_argstring(magic, options)
    except ValueError:  # argparse turns its own errors into UsageError; this is shlex's
        raise UsageError(f"{magic_name}: unbalanced quote in the options: {options}") from None


def checked_report_path(option: str) -> Path:
    """The ``--report`` file, checked before the cell runs: a ``UsageError`` if unwritable.

    IPython splits options keeping their quotes, so a name in matching quotes
    (``--report 'my report.html'``) is unquoted here.
    """
    name = option
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "'\"":
        name = name[1:-1]
    if not name.strip():
        raise UsageError("--report takes a file name such as report.html")
    path = Path(name).expanduser()
    folder = path.parent
    if path.is_dir():
        raise UsageError(
            f"--report {name} is a folder; give a file name such as {path / 'report.html'}"
        )
    if not folder.is_dir():
        reason = "is not a folder" if folder.exists() else "does not exist"
        raise UsageError(f"--report {name}: the folder {folder} {reason}")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"--report {name}: no permission to write there")
    return path


class ReportOrWarning:
    """``performance_report(path)`` around the cell, but a report that cannot be
    written (disk full, folder removed meanwhile) is a warning on stderr: the
    cell's result, or its own failure, is what the user waited for."""

    def __init__(self, path: Path):
        from lazycell.diagnostics.report import performance_report

        self.path = path
        self.report = performance_report(path)

    def __enter__(self) -> ReportOrWarning:
        self.report.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        try:
            self.report.__exit__(*exc)
        except Exception as error:
            message = f"{type(error).__name__}: {error}"
            print(
                f"Warning: --report: could not write the report {self.path} ({message}); "
                "the cell's result is kept",
                file=sys.stderr,
            )
        return False  # the cell's own exception, if any, goes on unchanged


# One option or value: quoted parts keep their spaces ('my report.html').
OPTION_TOKEN = re.compile(r"""(?:"[^"]*"|'[^']*'|\S)+""")


def split_options_and_expression(line: str, parser) -> tuple[str, str]:
    """``"-s sync total[0] + 1"`` -> ``("-s sync", "total[0] + 1")``.

    Options come first; the expression is the rest of the line, untouched
    (quotes and spacing kept). ``--`` ends the options explicitly. A quoted
    option value (``--report 'my report.html'``) is one token.
    """
    takes_value = {
        option
        for action in parser._actions
        if action.nargs != 0
        for option in action.option_strings
    }
    options_end = 0
    expect_value = False
    for match in OPTION_TOKEN.finditer(line):
        token = match.group()
        if expect_value:
            expect_value = False
        elif token == "--":
            return line[: match.start()].strip(), line[match.end() :].strip()
        elif not token.startswith("-"):
            return line[: match.start()].strip(), line[match.start() :].strip()
        else:
            expect_value = token in takes_value
        options_end = match.end()
    return line[:options_end].strip(), ""


def running_cell_number(shell) -> int:
    """The ``N`` of the running cell's ``In[N]``, for its tracebacks.

    IPython 9 counts the cell before running it (``shell.execution_count`` is
    already ``N + 1`` here), IPython 8 after; the running cell's
    ``ExecutionResult`` has the number in both.
    """
    result = getattr(shell.displayhook, "exec_result", None)
    number = getattr(result, "execution_count", None)
    return number if number is not None else shell.execution_count
