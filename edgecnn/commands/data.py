"""``edgecnn data``: make synthetic detection datasets and check labelled ones."""

from __future__ import annotations

import json

import click


@click.group("data")
def data() -> None:
    """Make synthetic datasets and check labelled datasets."""


@data.command("synth")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--images", "n_train", type=click.IntRange(1), default=3000, show_default=True,
              help="Training images.")
@click.option("--val", "n_val", type=click.IntRange(0), default=500, show_default=True,
              help="Validation images.")
@click.option("--imgsz", type=click.IntRange(32, 4096), default=256, show_default=True,
              help="Image side in pixels (square images).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--variant", type=click.Choice(["default", "heldout"]), default="default",
              show_default=True,
              help="heldout: other backgrounds and object styles, for generalization checks.")
@click.option("--classes", default=None,
              help="Comma-separated shape classes (default circle,square,triangle,star).")
@click.option("--overwrite", is_flag=True,
              help="Write into an existing folder that holds other files (only same-named "
                   "entries are replaced; nothing else is deleted).")
def synth(out: str, n_train: int, n_val: int, imgsz: int, seed: int, variant: str,
          classes: str | None, overwrite: bool) -> None:
    """Write a YOLO-format synthetic detection dataset to OUT (OUT/data.yaml)."""
    import time

    from edgecnn.data.synth import DEFAULT_CLASSES, make_synthetic_dataset

    names = (tuple(c.strip() for c in classes.split(",") if c.strip()) if classes
             else DEFAULT_CLASSES)
    start = time.perf_counter()
    yaml_path = make_synthetic_dataset(out, n_train=n_train, n_val=n_val, imgsz=imgsz,
                                       seed=seed, variant=variant, overwrite=overwrite,
                                       classes=names)
    seconds = time.perf_counter() - start
    total = n_train + n_val
    click.echo(f"wrote {total} images ({n_train} train, {n_val} val, {imgsz}x{imgsz}, "
               f"variant {variant}) in {seconds:.1f} s ({total / max(seconds, 1e-9):.0f} images/s)")
    click.echo(f"dataset: {yaml_path}")


@data.command("check")
@click.argument("spec")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--strict", is_flag=True, help="Exit with an error on any label problem.")
@click.option("--images", "images_dir", type=click.Path(file_okay=False), default=None,
              help="COCO: folder holding the images.")
@click.option("--max-files", type=click.IntRange(0), default=5, show_default=True,
              help="File names listed per problem kind.")
@click.option("--decode", is_flag=True,
              help="Also decode every image (slow) to find files that fail to decode.")
@click.option("--preview", type=click.Path(dir_okay=False), default=None, metavar="OUT.jpg",
              help="Write a grid of the first images with their boxes and class names.")
@click.option("--overwrite", is_flag=True,
              help="Replace a --preview file that edgecnn did not write.")
def check(spec: str, as_json: bool, strict: bool, images_dir: str | None, max_files: int,
          decode: bool, preview: str | None, overwrite: bool) -> None:
    """Read a detection dataset (YOLO data.yaml, VOC folder, COCO json) and report problems."""
    from edgecnn.data.detection import check_dataset
    from edgecnn.fsutil import check_output_file

    if preview:
        check_output_file(preview, overwrite, "--preview")
    dataset = check_dataset(spec, images=images_dir, decode=decode)
    if preview:
        from edgecnn.data.preview import write_preview

        shown = write_preview(dataset, preview)
        click.echo(f"preview: {shown} images with their boxes -> {preview}", err=as_json)
    report = dataset.report
    if as_json:
        payload = {"spec": spec, "format": dataset.format, "layout": dataset.layout,
                   "root": str(dataset.root),
                   "names": list(dataset.names), **report.to_dict(max_files=max_files)}
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(f"dataset {spec}: {dataset.layout or dataset.format}, "
                   f"{len(dataset.names)} classes, root {dataset.root}")
        for split in ("train", "val"):
            click.echo(f"  {split}: {report.images.get(split, 0)} images, "
                       f"{report.boxes.get(split, 0)} boxes")
        lines = report.lines(max_files=max_files)
        click.echo("\n".join(lines) if lines else "  no problems found")
        click.echo("ok" if report.ok else f"{sum(report.problems.values())} problems "
                   "(clipped or skipped as listed)")
    if strict:
        report.raise_if_problems(spec)
