"""Atomic, non-destructive file and directory output.

A failed or interrupted run never leaves a half-written result, and no command deletes or
replaces what it did not write: an output folder is replaced only when it is an edgecnn output
whose every entry edgecnn wrote (its ``.edgecnn-output`` manifest lists them); anything else
needs ``--overwrite``, and even then only same-named entries are replaced, never other files.
Outputs get the permissions the user's umask gives, not the 0600/0700 of temp files.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from edgecnn import interrupts
from edgecnn.errors import UsageError

MANIFEST = ".edgecnn-output"
# Written by edgecnn into run directories before the manifest existed (and by convert since).
_LEGACY_RUN_FILES = {"run.json", "model.keras", "labels.txt", "history.csv", "curves.png",
                     "report.json", "prune_report.json", MANIFEST}
_DEBUG_SUFFIXES = (".quant_debug.csv", ".quant_debug.md")
_umask_lock = threading.Lock()


def current_umask() -> int:
    with _umask_lock:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def apply_umask(path: Path, directory: bool = False) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would have (temp files are private)."""
    mode = (0o777 if directory else 0o666) & ~current_umask()
    with contextlib.suppress(OSError):
        os.chmod(path, mode)


def write_atomic(path: str | os.PathLike, data: bytes | str, *,
                 even_if_interrupted: bool = False) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder, then rename.

    After Ctrl-C or SIGTERM nothing is committed, unless ``even_if_interrupted``: the record of
    what an interrupted command finished (the quickstart's state) must still be written.
    """
    path = Path(path)
    ensure_writable_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        apply_umask(Path(tmp))
        if not even_if_interrupted:
            interrupts.check()   # an interrupted command commits nothing
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path to write to; it becomes ``path`` only if the block succeeds.

    Example:
        with atomic_output("out.mp4") as tmp:
            writer = cv2.VideoWriter(str(tmp), ...)
    """
    path = Path(path)
    ensure_writable_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        apply_umask(Path(tmp))
        interrupts.check()
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def foreign_entries(folder: Path) -> list[str]:
    """Entries of ``folder`` that edgecnn did not write (empty: safe to replace the folder)."""
    names = sorted(p.name for p in folder.iterdir())
    if not names:
        return []
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            ours = set(json.loads(manifest.read_text(encoding="utf-8"))["files"]) | {MANIFEST}
        except (OSError, ValueError, KeyError, TypeError):
            return names
        return [n for n in names if n not in ours and not _converted_here(folder / n)]
    if (folder / "run.json").is_file():  # a run directory written before the manifest
        return [n for n in names
                if n not in _LEGACY_RUN_FILES and not _converted_here(folder / n)]
    return names


def _converted_here(path: Path) -> bool:
    """Whether ``path`` is what ``edgecnn convert`` writes into a run directory by default."""
    if path.name.endswith(_DEBUG_SUFFIXES):
        return True
    if path.suffix != ".tflite" or not path.is_file():
        return False
    from edgecnn.runtime.metadata import has_edgecnn_metadata

    return has_edgecnn_metadata(path)


def check_output_dir(path: str | os.PathLike, overwrite: bool = False,
                     option: str = "--out") -> Path:
    """Refuse an output folder that would lose the user's files; call it before slow work.

    Returns the path. Raises UsageError for a file in the way, the current directory (or one
    above it), or a folder holding entries edgecnn did not write unless ``overwrite``.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"output {path} exists and is not a directory",
                         f"choose another {option}")
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents or resolved == Path(resolved.anchor):
        raise UsageError(f"{option} {path} is the current folder or one above it",
                         f"name a new folder, e.g. {option} runs/exp1")
    if path.is_dir() and not overwrite:
        foreign = foreign_entries(path)
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more"
                                              if len(foreign) > 3 else "")
            raise UsageError(f"output folder {path} holds files edgecnn did not write ({shown})",
                             f"choose another {option}, or pass --overwrite to replace only "
                             "the files edgecnn writes there")
    ensure_writable_dir(path.parent)
    return path


def check_output_file(path: str | os.PathLike, overwrite: bool = False,
                      option: str = "-o") -> Path:
    """Refuse an output file that would replace one edgecnn did not write; call before slow work.

    An existing file may be replaced when edgecnn wrote it (:func:`written_by_edgecnn`) or with
    ``overwrite``. Returns the path.

    Raises:
        UsageError: the path is a folder, the file is someone else's, or its folder cannot be
            written.
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder", f"pass a file name to {option}")
    if (path.exists() or path.is_symlink()) and not overwrite and not written_by_edgecnn(path):
        raise UsageError(f"{option} {path} exists and edgecnn did not write it",
                         f"choose another {option}, or pass --overwrite to replace it")
    ensure_writable_dir(path.parent, f"choose a writable {option} path")
    return path


def written_by_edgecnn(path: str | os.PathLike) -> bool:
    """Whether edgecnn wrote the file at ``path``: a ``.tflite`` carrying edgecnn's metadata, or
    a file its folder's manifest records with this very size and modification time (so a file
    the user put there since, under the same name, is not taken for ours)."""
    path = Path(path)
    if not path.is_file() or path.is_symlink():
        return False
    if path.suffix == ".tflite" and _converted_here(path):
        return True
    stamp = ((_read_manifest(path.parent) or {}).get("stamps") or {}).get(path.name)
    stat = path.stat()
    return stamp == [stat.st_size, stat.st_mtime_ns]


def record_output_file(*paths: str | os.PathLike) -> None:
    """Note in their folder's manifest that edgecnn wrote ``paths`` (call once they are in
    place; several files of one folder are recorded with one manifest write).

    Later runs may then replace them without ``--overwrite``. They are recorded even after
    Ctrl-C: the files themselves are already there.
    """
    by_folder: dict[Path, list[Path]] = {}
    for p in map(Path, paths):
        by_folder.setdefault(p.parent, []).append(p)
    for folder, files in by_folder.items():
        doc = _read_manifest(folder)
        if doc is None:   # a run directory from before manifests keeps its files as ours
            doc = {"files": [n for n in os.listdir(folder) if n not in foreign_entries(folder)]
                   if (folder / "run.json").is_file() else []}
        stamps = dict(doc.get("stamps") or {})
        for f in files:
            stat = f.stat()
            stamps[f.name] = [stat.st_size, stat.st_mtime_ns]
        names = sorted(set(doc["files"]) | {f.name for f in files})
        with contextlib.suppress(OSError):  # unwritable: only costs the next --overwrite
            write_atomic(folder / MANIFEST, json.dumps({"tool": "edgecnn", "files": names,
                                                        "stamps": stamps}) + "\n",
                         even_if_interrupted=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False,
               option: str = "--out") -> Iterator[Path]:
    """Yield a temp directory that becomes ``path`` only when the block succeeds.

    An existing ``path`` that is entirely edgecnn's is replaced whole. With ``overwrite``, a
    folder holding other files keeps them: the new entries are moved in, replacing only entries
    of the same name. A manifest of the entries written is added, so a later run can tell them
    from the user's.
    """
    path = check_output_dir(path, overwrite, option)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        write_manifest(tmp, (p.name for p in tmp.iterdir()))
        _apply_umask_tree(tmp)
        interrupts.check()
        if path.exists() and foreign_entries(path):
            _merge_into(tmp, path)  # only with overwrite (checked above)
        elif path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_manifest(folder: Path, names: Iterable[str], *,
                   even_if_interrupted: bool = False) -> None:
    """List ``names`` as the entries of ``folder`` that edgecnn wrote (see :func:`foreign_entries`).

    File stamps recorded by :func:`record_output_file` for names still listed are kept.
    """
    files = sorted({n for n in names if n != MANIFEST})
    stamps = {k: v for k, v in (_read_manifest(folder) or {}).get("stamps", {}).items()
              if k in files}
    doc: dict = {"tool": "edgecnn", "files": files}
    if stamps:
        doc["stamps"] = stamps
    write_atomic(folder / MANIFEST, json.dumps(doc) + "\n",
                 even_if_interrupted=even_if_interrupted)


def _read_manifest(folder: Path) -> dict | None:
    try:
        doc = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        return None
    if not isinstance(doc.get("stamps", {}), dict):
        doc["stamps"] = {}
    return doc


def _merge_into(src: Path, dst: Path) -> None:
    for entry in src.iterdir():
        target = dst / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(entry, target)


def _apply_umask_tree(root: Path) -> None:
    apply_umask(root, directory=True)
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            apply_umask(Path(dirpath) / d, directory=True)
        for f in filenames:
            apply_umask(Path(dirpath) / f)


def ensure_writable_dir(folder: Path, fix: str = "choose a writable location") -> None:
    """Create ``folder`` if needed; UsageError (with ``fix`` as the hint) if it cannot be written.

    Commands call it before slow work, so a bad output path fails in a second, not after it.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create output folder {folder}: {err.strerror}", fix) from None
    if not os.access(folder, os.W_OK):
        raise UsageError(f"output folder {folder} is not writable", fix)
