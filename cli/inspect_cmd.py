"""`blurgen inspect`: what a pairs file (or a run in progress) holds, and what is wrong with it."""

from __future__ import annotations

import os
import sys

import click

from blurgen.cli.common import check_not_same_file, check_output
from blurgen.core.common import atomic_path


@click.command()
@click.argument("path", type=click.Path())
@click.option("--png", "png", type=click.Path(dir_okay=False),
              help="Also write a contact sheet: rows of blurred | sharp | kernel.")
@click.option("--rows", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Samples on the --png sheet (spread over the file).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --png.")
@click.option("--quick", is_flag=True, help="Skip reading every stored chunk to check its checksum.")
def inspect(path, png, rows, overwrite, quick):
    """Report schema, counts, shapes, compression, parameter ranges and problems of PATH.

    PATH is a pairs file, or one being made (its PATH.parts folder): then the report says how
    many samples are complete so far (n_written/n_planned) and exits 0. Every stored chunk is
    read so its checksum is checked, unless --quick. PATH may also be a finished folders or LMDB
    output (OUT) or WebDataset tars (PREFIX, PREFIX.tar or PREFIX.json): every image is decoded
    and the names, keys and meta_info.txt lines checked (--quick: image headers only).

    Exits 1 after the report when it lists damage (an incomplete dataset alone exits 0), so
    `blurgen inspect pairs.h5 && ...` goes on only with sound data.

    \b
    Examples:
      blurgen inspect pairs.h5
      blurgen inspect pairs.h5 --png sheet.png
      blurgen inspect pairs.h5 --quick
      blurgen inspect train_lmdb --png sheet.png
      blurgen inspect shards/train.tar
    """
    found: list[str] = []  # the report's problems, once known
    try:
        _inspect(path, png, rows, overwrite, quick, found)
    except BrokenPipeError:
        _quiet_broken_pipe(found)


def _quiet_broken_pipe(problems: list[str]) -> None:
    """The reader of stdout went away (``blurgen inspect f.h5 | head -1``): stop quietly, with
    exit 1 if the report found damage and 0 otherwise; stdout goes to /dev/null so the
    interpreter's final flush does not complain either."""
    from blurgen.inspect import damage

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(1 if damage(problems) else 0)


def _inspect(path, png, rows, overwrite, quick, found: list[str]) -> None:
    from blurgen.inspect.preview import sheet_from_parts
    from blurgen.inspect.clip_outputs import find_output
    from blurgen.inspect.report import describe_file, describe_parts, resolve_inspect_target

    view = find_output(path)  # a finished folders, LMDB or WebDataset output
    if view is not None:
        _inspect_output(view, png, rows, overwrite, quick, found)
        return
    pairs_path, parts_dir = resolve_inspect_target(path)  # e.g. some other folder: exit 1, one line
    if pairs_path is None and parts_dir is None:
        raise click.BadParameter(f"{path!r} does not exist (nor {path}.parts)", param_hint="PATH")
    if png:
        check_not_same_file(png, path, "--png")
        check_output(png, overwrite)
    try:
        problems = []
        if pairs_path is not None:
            lines, problems = describe_file(pairs_path, verify=not quick)
            found.extend(problems)
            click.echo("\n".join(lines))
        if parts_dir is not None:
            lines, n_written, n_planned = describe_parts(parts_dir)
            click.echo("\n".join(lines))
        if pairs_path is not None:
            _echo_problems(problems)
        if png:
            sheet = _sheet_or_strip(pairs_path, rows) if pairs_path else sheet_from_parts(parts_dir, rows)
            _write_sheet(png, sheet)
    except ValueError as exc:  # e.g. nothing complete to draw yet
        raise click.ClickException(str(exc)) from None
    _exit_if_damaged(path, problems)


def _inspect_output(view, png, rows, overwrite, quick, found: list[str]) -> None:
    from blurgen.inspect.outputs_report import describe_output, sheet_from_output

    if png:
        check_not_same_file(png, view.path, "--png")
        check_output(png, overwrite)
    lines, problems = describe_output(view, verify=not quick)
    found.extend(problems)
    click.echo("\n".join(lines))
    _echo_problems(problems)
    if png:
        try:
            _write_sheet(png, sheet_from_output(view, rows))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    _exit_if_damaged(view.path, problems)


def _echo_problems(problems: list[str]) -> None:
    click.echo("problems: " + ("none found" if not problems else ""))
    for problem in problems:
        click.echo(f"  - {problem}")


def _exit_if_damaged(path: str, problems: list[str]) -> None:
    """Exit 1 (DESIGN's "corrupt files") when the report listed damage; incompleteness alone is
    not (a run in progress, a shard)."""
    from blurgen.inspect import damage

    damaged = damage(problems)
    if damaged:
        shown = path if path.isprintable() else repr(path)  # one line, whatever the name holds
        raise click.ClickException(f"{shown}: damaged ({len(damaged)} problem(s) listed above)")


def _sheet_or_strip(path: str, rows: int):
    """The contact sheet of a pairs file, the frame strip of a clips file (schema 3)."""
    from blurgen.inspect.clip_strip import strip_from_file
    from blurgen.inspect.preview import sheet_from_file
    from blurgen.store.reader import PairsFile

    with PairsFile(path) as f:
        clips = f.frames is not None
    return strip_from_file(path, clips=rows) if clips else sheet_from_file(path, rows)


def _write_sheet(png: str, sheet) -> None:
    from blurgen.core.imageio import write_png

    with atomic_path(png, ".png") as tmp:
        write_png(tmp, sheet)
    click.echo(f"wrote contact sheet {png}")
