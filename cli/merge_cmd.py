"""`blurgen merge`: join the shards of one dataset (`make --shard i/N`) into one pairs file (virtual
by default, or a standalone copy)."""

from __future__ import annotations

import contextlib
import os
import re

import click

from blurgen.cli.common import RegularFile, check_output
from blurgen.cli.output_options import normalize_out


@click.command()
@click.argument("shards", nargs=-1, required=True, type=RegularFile())
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Merged pairs file.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@click.option("--copy", "copy", is_flag=True,
              help="Copy every sample into a standalone file (default: a virtual file that reads the shards).")
def merge(shards, out, overwrite, copy):
    """Merge SHARDS made with `blurgen make --shard i/N` into one pairs file.

    The shards must come from one dataset (same settings and seed) and together cover every
    sample exactly once, in any order on the command line; the result equals one unsharded run
    array for array. By default OUT is an HDF5 virtual dataset file that references the shards
    (paths relative to OUT, written in O(metadata): keep the shards beside it; opening OUT with a
    shard missing is an error); --copy copies the compressed chunks as they are into a
    standalone file.

    \b
    Examples:
      blurgen make --n 10000 --out shard0.h5 --shard 0/2
      blurgen make --n 10000 --out shard1.h5 --shard 1/2
      blurgen merge shard*.h5 --out pairs.h5
      blurgen merge shard*.h5 --out standalone.h5 --copy
    """
    from blurgen.store.merge import merge_files

    out = normalize_out(out)  # 'pairs.h5/' is pairs.h5, as for make (it failed after merging)
    if any(os.path.abspath(s) == os.path.abspath(out) for s in shards):
        raise click.BadParameter(f"{out} is one of the shards", param_hint="--out")
    check_output(out, overwrite)
    command = "blurgen merge " + " ".join(shards) + f" --out {out}"
    # merge_files writes the temporary and renames it onto out; it deletes it on failure.
    n = merge_files(list(shards), _merge_tmp(out), out, command + (" --copy" if copy else ""), virtual=not copy)
    how = "copied" if copy else "virtual, reading the shards in place"
    click.echo(f"merged {len(shards)} shard(s), {n} pairs, into {out} ({how})")


def _merge_tmp(out: str) -> str:
    """This process's temporary for ``out`` (hidden, beside it), after removing those of merges
    that were killed (SIGKILL skips every clean-up, and each is as large as the result)."""
    directory, base = os.path.split(os.path.abspath(out))
    pattern = re.compile(rf"^\.{re.escape(base)}\.merge-(\d+)\.h5$")
    for name in os.listdir(directory):
        match = pattern.match(name)
        if match and not _alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))
    return os.path.join(directory, f".{base}.merge-{os.getpid()}.h5")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True
