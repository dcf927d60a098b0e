"""Issue 23, F3/F4/F6/F8 for kernel files: FIFOs and HDF5 links never hang a read, small files
declaring huge arrays are refused from their headers, and every refusal is one line that never
advises unsafe loading."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import zlib

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from blurgen.cli import main
from blurgen.motion.bank import KernelBank, KernelBankError

SMALL_MAKE = ["make", "--n", "2", "--size", "32", "--workers", "1"]


def _one_line_failure(result, code, *fragments):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ---------------------------------------------------------------------------------------- F3

_F3_SCRIPT = textwrap.dedent("""
    import os, sys, h5py, numpy as np
    from blurgen.motion.bank import KernelBank, KernelBankError
    folder = sys.argv[1]
    def fifo(name):
        path = os.path.join(folder, name); os.mkfifo(path); return path
    cases = [fifo("k.npy"), fifo("k.npz"), fifo("k.mat"), fifo("k.png")]
    link = os.path.join(folder, "link.mat")
    with h5py.File(link, "w") as f:
        f["k"] = h5py.ExternalLink(fifo("target.h5"), "/k")
    raw = os.path.join(folder, "raw.mat")
    with h5py.File(raw, "w") as f:
        f.create_dataset("k", (3, 3), "f8", external=[("/etc/passwd", 0, 72)])
    cases += [link, raw]
    for path in cases:
        try:
            KernelBank.from_file(path)
            print("LOADED", path)
        except KernelBankError as exc:
            print("refused |", exc)
""")


def test_f3_fifos_and_hdf5_links_in_kernel_files_are_refused_without_hanging(tmp_path):
    done = subprocess.run([sys.executable, "-c", _F3_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 6 and all(line.startswith("refused |") for line in lines), done.stdout
    assert sum("not a regular file" in line for line in lines) == 4, done.stdout
    assert "external link" in lines[4] and "another file" in lines[5], done.stdout


def test_f3_make_kernels_on_a_fifo_is_one_line_not_a_hang(tmp_path):
    os.mkfifo(tmp_path / "k.npy")
    done = subprocess.run(["blurgen", *SMALL_MAKE, "--out", str(tmp_path / "o.h5"), "--kernels",
                           str(tmp_path / "k.npy")], capture_output=True, text=True, timeout=60)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(err) == 1 and "not a regular file" in err[0], done.stderr


# ---------------------------------------------------------------------------------------- F4


def _npz_bomb(path):
    """A .npz whose one member declares a 20000x20000 float64 array (3.2 GB) in a few bytes."""
    import io
    import zipfile

    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False, "shape": (20000, 20000)})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("k.npy", head.getvalue() + bytes(1 << 16))


def _mat_v5_bomb(path, rows=8000, cols=9000):
    """A v5 .mat whose compressed variable inflates to rows*cols doubles (576 MB) from ~0.6 MB."""
    def element(kind, data):
        return struct.pack("<II", kind, len(data)) + data + bytes(-len(data) % 8)
    body = (element(6, struct.pack("<II", 6, 0)) + element(5, struct.pack("<ii", rows, cols)) + element(1, b"k")
            + struct.pack("<II", 9, rows * cols * 8))
    squeeze = zlib.compressobj(9)
    parts = [squeeze.compress(struct.pack("<II", 14, len(body) + rows * cols * 8) + body)]
    zeros = bytes(1 << 22)
    for _ in range(rows * cols * 8 // len(zeros)):
        parts.append(squeeze.compress(zeros))
    parts.append(squeeze.compress(bytes(rows * cols * 8 % len(zeros))) + squeeze.flush())
    data = b"".join(parts)
    head = b"MATLAB 5.0 MAT-file".ljust(116) + bytes(8) + struct.pack("<H", 0x0100) + b"IM"
    with open(path, "wb") as f:
        f.write(head + struct.pack("<II", 15, len(data)) + data)


def _png_bomb(path, side=30000):
    """A 16-bit grayscale PNG header declaring side x side pixels (1.8 GB decoded)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    idat = zlib.compress(bytes(side * 2 + 1) * 64)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0))
                + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


_F4_SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from blurgen.motion.bank import KernelBank, KernelBankError
    with open("/proc/self/status") as f:
        size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
    limit = size + 2**30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for path in sys.argv[1:]:
        try:
            KernelBank.from_file(path)
            print("LOADED", path)
        except KernelBankError as exc:
            print("refused |", exc)
    try:
        KernelBank(np.ones((1025, 1025)), scale_range=(10, 10)).kernels(1)
        print("LOADED scaled")
    except KernelBankError as exc:
        print("refused |", exc)
""")


def test_f4_small_files_declaring_huge_arrays_are_refused_from_their_headers(tmp_path):
    with h5py.File(tmp_path / "v73.mat", "w") as f:  # chunks never written: ~2 KB on disk
        f.create_dataset("k", (20000, 20000), "f8", chunks=(1000, 1000), compression="gzip")
    _npz_bomb(tmp_path / "k.npz")
    _mat_v5_bomb(tmp_path / "v5.mat")
    _png_bomb(tmp_path / "k.png")
    paths = [str(tmp_path / name) for name in ("v73.mat", "k.npz", "v5.mat", "k.png")]
    assert max(os.path.getsize(p) for p in paths) < 3 * 10**6
    done = subprocess.run([sys.executable, "-c", _F4_SCRIPT, *paths], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 5 and all(line.startswith("refused |") for line in lines), done.stdout
    assert all("MiB" in line and "more than" in line for line in lines[:3]), done.stdout
    assert "30000x30000" in lines[3] and "larger than the largest kernel" in lines[3], done.stdout
    assert "use a high end of at most" in lines[4], done.stdout


# ---------------------------------------------------------------------------------- F6 / F8


def test_f6_bank_edge_cases_on_the_command_line_are_usage_or_one_line_errors(tmp_path):
    runner = CliRunner()
    np.save(tmp_path / "one.npy", np.ones((4, 1, 1), np.float32))
    result = runner.invoke(main, [*SMALL_MAKE, "--out", str(tmp_path / "a.h5"), "--kernels", str(tmp_path / "one.npy")])
    assert result.exit_code == 0, result.output
    for size in ("8", "2001"):
        result = runner.invoke(main, [*SMALL_MAKE, "--out", str(tmp_path / "b.h5"), "--kernels",
                                      str(tmp_path / "one.npy"), "--kernel-size", size])
        assert result.exit_code == 2 and "Traceback" not in result.output and "--kernel-size" in result.output
    np.save(tmp_path / "big.npy", np.ones((1025, 1025), np.float32))
    result = runner.invoke(main, [*SMALL_MAKE, "--out", str(tmp_path / "c.h5"), "--kernels",
                                  str(tmp_path / "big.npy"), "--kernel-scale", "10,10"])
    _one_line_failure(result, 1, "big.npy", "at most")
    (tmp_path / "empty.mat").write_bytes(b"")
    with pytest.raises(KernelBankError, match="empty.mat"):
        KernelBank.from_file(tmp_path / "empty.mat")


def test_f7_bank_options_without_a_bank_are_usage_errors(tmp_path):
    for extra in (["--kernel-scale", "0.5,2"], ["--kernel-augment"]):
        result = CliRunner().invoke(main, [*SMALL_MAKE, "--out", str(tmp_path / "o.h5"), *extra])
        assert result.exit_code == 2 and "applies only with --kernels" in result.output, result.output


def test_f8_kernel_file_messages_name_the_problem_and_never_advise_unsafe_loading(tmp_path):
    from scipy import sparse
    from scipy.io import savemat

    np.save(tmp_path / "huge.npy", np.full((3, 3), 1e308))
    assert abs(KernelBank.from_file(tmp_path / "huge.npy").kernel(0).sum() - 1) < 1e-6
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(KernelBankError) as info:
        KernelBank.from_file(tmp_path / "objects.npy")
    assert "pickle" in str(info.value) and "allow_pickle" not in str(info.value)
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = sparse.csc_matrix(np.eye(3))
    savemat(tmp_path / "sparse.mat", {"k": cell})
    with pytest.raises(KernelBankError, match="sparse matrix"):
        KernelBank.from_file(tmp_path / "sparse.mat")
    with h5py.File(tmp_path / "loop.mat", "w") as f:
        ds = f.create_dataset("k", (1, 1), dtype=h5py.ref_dtype)
        ds.attrs["MATLAB_class"] = np.bytes_(b"cell")
        ds[0, 0] = ds.ref
    with pytest.raises(KernelBankError, match="refer"):
        KernelBank.from_file(tmp_path / "loop.mat")
