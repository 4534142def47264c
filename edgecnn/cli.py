"""The ``edgecnn`` command line.

Each command lives in ``edgecnn/commands/<name>.py`` and is imported only when it runs (or its
``--help`` is asked for), so device-side commands never import TensorFlow and ``edgecnn --help``
is instant. Command modules import only click at module level; they parse options and call one
library function.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from edgecnn import __version__
from edgecnn.errors import EdgeCNNError
from edgecnn.interrupts import handling_signals

# name -> "module:attribute"; the order is the order shown in --help.
COMMANDS: dict[str, str] = {
    "quickstart": "edgecnn.commands.quickstart:quickstart",
    "data": "edgecnn.commands.data:data",
    "train": "edgecnn.commands.train:train",
    "prune": "edgecnn.commands.prune:prune",
    "qat": "edgecnn.commands.qat:qat",
    "convert": "edgecnn.commands.convert:convert",
    "eval": "edgecnn.commands.eval:eval_command",
    "inspect": "edgecnn.commands.inspect:inspect_command",
    "metadata": "edgecnn.commands.metadata:metadata",
    "predict": "edgecnn.commands.predict:predict",
    "bench": "edgecnn.commands.bench:bench",
    "camera": "edgecnn.commands.camera:camera",
    "export": "edgecnn.commands.export:export",
}

SHORT_HELP: dict[str, str] = {
    "quickstart": "Run the whole pipeline on the embedded default dataset.",
    "data": "Make synthetic datasets and check labelled datasets.",
    "train": "Train a classifier or detector from a dataset.",
    "prune": "Prune a trained model (magnitude or channel) and fine-tune it.",
    "qat": "Fine-tune a trained model through simulated int8 (QAT).",
    "convert": "Convert a model to .tflite with post-training quantization.",
    "eval": "Measure accuracy (classify) or COCO mAP (detect) of a model.",
    "inspect": "Show a .tflite model's tensors, ops, size and metadata.",
    "metadata": "Show, attach or edit the metadata of a .tflite.",
    "predict": "Run a .tflite model on images.",
    "bench": "Measure latency of .tflite models on this device.",
    "camera": "Real-time inference on a camera, stream or video file.",
    "export": "Package a .tflite model for a target app (android).",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when that command is used."""

    def __init__(self, *args, lazy_commands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.lazy_commands) + sorted(super().list_commands(ctx))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy_commands:
            return super().get_command(ctx, cmd_name)
        module_name, attr = self.lazy_commands[cmd_name].split(":")
        command = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy_commands[cmd_name]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Listing commands must not import them all (that would import TensorFlow).
        rows = [(name, SHORT_HELP.get(name, "")) for name in self.lazy_commands]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, lazy_commands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgecnn")
@click.option("--verbose", "-v", is_flag=True, help="Show tool output and tracebacks.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """edgecnn: compact CNNs from data to a phone or a Raspberry Pi."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    if verbose:
        # Read by edgecnn.lazy.tensorflow(): show TensorFlow's start-up logs.
        os.environ["EDGECNN_VERBOSE"] = "1"


def main(argv: list[str] | None = None) -> int:
    """Console entry point: user errors become one line and exit code 2, never a traceback."""
    args = sys.argv[1:] if argv is None else argv
    verbose = "--verbose" in args or "-v" in args
    try:
        with handling_signals():   # SIGTERM too runs every cleanup on its way out
            cli.main(args=args, prog_name="edgecnn", standalone_mode=False)
    except click.exceptions.Exit as stop:
        return stop.exit_code
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except EdgeCNNError as err:
        if verbose:
            raise
        click.echo(f"error: {err}", err=True)
        return err.exit_code
    except BrokenPipeError:
        return 0
    except Exception as err:  # noqa: BLE001 - last line of defence for a one-line report
        if verbose:
            raise
        click.echo(f"internal error: {type(err).__name__}: {err} "
                   "(rerun with --verbose for the traceback and please report it)", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
