"""Entry point: the `moncae` command group and its user-error handling."""

from __future__ import annotations

import signal
import sys
import warnings

import click

from moncae._version import __version__
from moncae.errors import MoncaeError, MoncaeWarning, one_line


def _one_line_warnings(original):
    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, MoncaeWarning):  # one line each, as they happen
            click.echo(f"Warning: {message}", err=True)
        else:
            original(message, category, filename, lineno, file, line)

    return show


def say_warnings_in_one_line() -> None:
    """Every moncae warning said, one line each (the commands; a side-by-side seed's driver)."""
    warnings.simplefilter("always", MoncaeWarning)
    warnings.showwarning = _one_line_warnings(warnings.showwarning)


def _quiet_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so that Python's exit flush is silent."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (e.g. a test runner's capture)
        pass


class Terminated(BaseException):
    """SIGTERM (`kill PID`, a batch scheduler's time limit) or SIGHUP (the terminal or ssh session
    closed) arrived: unwind as Ctrl-C does (a `BaseException`, as `KeyboardInterrupt`: a training
    in this process, `--workers 1`, that records its own errors as a failed training must not
    catch it)."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminate(signum, frame):
    raise Terminated(signum)


# Signals that stop a command as Ctrl-C does; SIGHUP only where it is not ignored (`nohup`).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


# What a stopped command keeps and how it goes on, by command (the others write whole files or
# nothing: run them again).
KEPT = {"search": ("what was journaled before is kept", "with --resume"),
        "finetune": ("the models fine-tuned before are kept", "again")}
AGAIN = ("nothing half-written is kept", "again")


class MoncaeGroup(click.Group):
    """User errors (`MoncaeError`) print one line and exit 2; an OS error (disk full, permission)
    prints one line and exits 1; Ctrl-C, SIGTERM and SIGHUP stop the workers, say how to go on and
    exit 130, 143 and 129 (128 + the signal, as a shell reports it); moncae's warnings print one line each.
    Never a traceback."""

    def resolve_command(self, ctx: click.Context, args):
        name, command, rest = super().resolve_command(ctx, args)
        ctx.meta["moncae.command"] = name  # what the messages below say depends on it
        return name, command, rest

    def invoke(self, ctx: click.Context):
        with warnings.catch_warnings():  # restores showwarning and the filters afterwards
            say_warnings_in_one_line()
            previous = {}
            for signum in STOP_SIGNALS:
                try:
                    if signal.getsignal(signum) is not signal.SIG_IGN:  # `nohup moncae ...` keeps SIGHUP off
                        previous[signum] = signal.signal(signum, _terminate)
                except ValueError:  # not the main thread (a notebook's helper thread): left as it is
                    break
            try:
                return super().invoke(ctx)
            except (KeyboardInterrupt, Terminated) as err:  # the commands' `finally` closed their workers
                signum = err.signum if isinstance(err, Terminated) else signal.SIGINT
                name = signal.Signals(signum).name if isinstance(err, Terminated) else "Ctrl-C"
                command = ctx.meta.get("moncae.command")
                kept, how = KEPT.get(command, AGAIN)
                try:  # after SIGHUP the terminal may be gone
                    click.echo(f"\nStopped by {name}; {kept}: run the same command {how}"
                               + (" to go on" if command in KEPT else ""), err=True)
                except OSError:
                    pass
                sys.exit(128 + signum)
            except MoncaeError as err:
                click.echo(f"Error: {err}", err=True)
                sys.exit(2)
            except BrokenPipeError:  # `moncae front RUN | head`: the reader left; nothing to say
                _quiet_stdout()
                sys.exit(0)
            except (IsADirectoryError, NotADirectoryError) as err:  # a path, not a passing cause
                click.echo(f"Error: {one_line(err)}: a folder where a file belongs, or a file where a folder "
                           "belongs; fix that path (a run folder's own file: restore it from a copy)", err=True)
                sys.exit(2)
            except OSError as err:
                kept, how = KEPT.get(ctx.meta.get("moncae.command"), AGAIN)
                click.echo(f"Error: {one_line(err)}; {kept}: fix the cause (e.g. free disk space) and run the "
                           f"same command {how}", err=True)
                sys.exit(1)
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)


@click.group(cls=MoncaeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="moncae")
def main() -> None:
    """Find convolutional autoencoders by multi-objective neuroevolution (MONCAE).

    \b
      moncae search --dataset mnist --seed 46     one evolutionary run per seed
      moncae finetune results/mnist/seed-46       fine-tune the final population
      moncae report results/                      Table 1, Pareto fronts and figures
      moncae front results/mnist/seed-46          the run's Pareto front as a table
      moncae export results/mnist/seed-46 DIR --knee   one model, ready to use
      moncae train-ga --genes 1,1,0,...            one genome's weights by a GA, no backprop
    """


def _register() -> None:
    from moncae.cli import cmd_datasets, cmd_export, cmd_finetune, cmd_front, cmd_report, cmd_search, cmd_train_ga

    for command in (cmd_datasets.datasets, cmd_search.command, cmd_finetune.command,
                    cmd_report.command, cmd_front.command, cmd_export.command, cmd_train_ga.command):
        main.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
