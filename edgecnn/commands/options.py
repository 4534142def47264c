"""Options shared by several commands (one definition, one help text)."""

from __future__ import annotations

import click

no_verify = click.option(
    "--no-verify", "no_verify", is_flag=True,
    help="Load a model even if its flatbuffer does not match the SHA-256 in its metadata "
         "(it is then checked in a child process first).")


def describe_model(func):
    """``--task --labels --decoder --mean --std --layout --resize --activation --interpolation``:
    what a model
    without edgecnn metadata needs said about it (they override the metadata a file carries).

    The command receives them as one ``described`` argument: a
    :class:`~edgecnn.runtime.describe.MetadataOptions` (None when none was given).
    """
    import functools

    names = ("task", "labels", "decoder", "mean", "std", "layout", "resize", "activation",
             "interpolation")

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from edgecnn.runtime.describe import MetadataOptions

        given = {n: kwargs.pop(n) for n in names}
        options = MetadataOptions.parse(**given)
        kwargs["described"] = options if options.given() else None
        return func(*args, **kwargs)

    decorators = [
        click.option("--task", type=click.Choice(["classify", "detect"]), default=None,
                     help="Models without metadata: the task, when the file does not say."),
        click.option("--labels", default=None,
                     help="Models without metadata: class names, a file (one per line) or a,b,c."),
        click.option("--decoder", default=None, metavar="TYPE[:KEY=VALUE,...]",
                     help="Detectors: the output layout (ultralytics_yolo, ultralytics_end2end, "
                          "ssd_postprocess, anchor_free_ltrb) and its fields, e.g. "
                          "ultralytics_yolo:objectness=true."),
        click.option("--mean", default=None,
                     help="Input mean, pixel units, one value or r,g,b (default 0)."),
        click.option("--std", default=None,
                     help="Input std, pixel units, one value or r,g,b (default 255)."),
        click.option("--layout", type=click.Choice(["NCHW", "NHWC"], case_sensitive=False),
                     default=None, help="Input layout, when the shape is ambiguous."),
        click.option("--resize", type=click.Choice(["letterbox", "stretch"]), default=None,
                     help="How images are fitted (default: letterbox for detect)."),
        click.option("--activation", type=click.Choice(["softmax", "sigmoid", "none"]),
                     default=None,
                     help="Classifiers: softmax (outputs are probabilities), sigmoid, or none "
                          "(logits)."),
        click.option("--interpolation", type=click.Choice(["area", "linear"]), default=None,
                     help="How images are shrunk: area (edgecnn's) or linear (one bilinear "
                          "resize, as Ultralytics does; the default for its files)."),
    ]
    for decorate in reversed(decorators):
        wrapper = decorate(wrapper)
    return wrapper


overwrite_file = click.option(
    "--overwrite", is_flag=True,
    help="Replace an existing output file that edgecnn did not write.")


def _alias_key(name: str) -> str:
    return f"edgecnn.alias.{name}"


def hidden_alias(old: str, name: str, type_=None):
    """An old spelling ``old`` of option ``name``, accepted but not shown in ``--help``, so
    scripts written against it keep working. The option ``name`` must take
    :func:`or_alias` as its callback."""
    def store(ctx: click.Context, _param, value):
        if value is not None:
            ctx.meta[_alias_key(name)] = value

    return click.option(old, f"alias_{name}", type=type_, default=None, hidden=True,
                        expose_value=False, callback=store)


def or_alias(ctx: click.Context, param: click.Parameter, value):
    """Callback of an option with a :func:`hidden_alias`: its value, else the alias's.

    Options given on the command line are processed before the others, so an alias given
    alone is stored before this option (left at its default) is processed.
    """
    return value if value is not None else ctx.meta.get(_alias_key(param.name or ""))


def score_threshold(help_text: str):
    """``--score-threshold`` (and the old ``--score`` of ``camera``, hidden)."""
    def decorate(f):
        f = click.option("--score-threshold", "score_threshold", type=float, default=None,
                         callback=or_alias, help=help_text)(f)
        return hidden_alias("--score", "score_threshold", float)(f)

    return decorate
