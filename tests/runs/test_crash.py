"""Crash consistency: real `blurgen make` processes killed with SIGKILL at many random (seeded)
moments, `blurgen inspect` after every kill, then `--resume` to the arrays of an uninterrupted run.
Also Ctrl-C (SIGINT): one line, exit 130, finished blocks kept."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time

import pytest
from fake_pairs import wait_for_a_block
from pairs_compare import assert_same_arrays

SMALL = ["--size", "32", "--kernel-size", "15", "--length-px", "10", "--seed", "11"]
COUNT_RE = re.compile(r"samples: (\d+)/(\d+|unknown) written")


def make_command(out, n: int, *extra: str) -> list[str]:
    return ["blurgen", "make", "--n", str(n), "--out", str(out), *SMALL, *extra]


def session_processes(session_id: int) -> list[int]:
    """Live processes of a session (the killed make and any worker it left behind)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def inspect_count(out) -> tuple[int, str]:
    """Run `blurgen inspect` on a possibly half-made output; returns (complete samples, report)."""
    done = subprocess.run(["blurgen", "inspect", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    counts = [int(m.group(1)) for m in COUNT_RE.finditer(done.stdout)]
    assert counts, done.stdout
    return counts[-1], done.stdout  # the run in progress (reported last) if there is one


def timed_run(command: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - began


def kill_and_resume(tmp_path, n: int, kills_wanted: int, seed: int) -> None:
    reference = tmp_path / "reference.h5"
    full_seconds = timed_run(make_command(reference, n, "--workers", "1", "--block-size", "8"))
    out = tmp_path / "pairs.h5"
    rng = random.Random(seed)
    kills, last_count, completions = 0, 0, 0
    flag = "--resume"
    while kills < kills_wanted:
        workers = rng.choice(["1", "2"])
        proc = subprocess.Popen(make_command(out, n, "--workers", workers, "--block-size", "8", flag),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        # Spread kills over start-up, block writing, assembly and clean-up.
        delay = rng.uniform(0.0, full_seconds * 1.2)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            deadline = time.monotonic() + 10
            while session_processes(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)  # workers get SIGKILL when their parent dies (PR_SET_PDEATHSIG)
            assert not session_processes(proc.pid), "workers outlived the killed make"
            if not os.path.exists(out) and not os.path.exists(str(out) + ".parts"):
                assert last_count == 0, "a kill must never lose a run that had started"
                print(f"killed after {delay:.2f} s (workers {workers}): during start-up, nothing made yet")
                continue  # killed in start-up, before the run created anything: nothing to inspect
            count, report = inspect_count(out)
            print(f"killed after {delay:.2f} s (workers {workers}): {count} complete")
            if flag == "--resume":
                assert count >= last_count, f"complete samples went back from {last_count}:\n{report}"
            last_count, flag = count, "--resume"
            continue
        stdout, stderr = proc.communicate()
        assert proc.returncode == 0, stderr.decode()
        completions += 1
        print(f"run completed ({flag}, workers {workers})")
        assert_same_arrays(reference, out)
        last_count, flag = n, "--overwrite"  # start again so that later kills hit a fresh run
    print(f"reference run {full_seconds:.1f} s; {kills} kills, {completions} completed runs")
    final = subprocess.run(make_command(out, n, "--workers", "2", "--block-size", "8", "--resume"),
                           capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    count, report = inspect_count(out)
    assert count == n and "(complete)" in report
    assert_same_arrays(reference, out)
    assert not os.path.exists(str(out) + ".parts")


def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_arrays(tmp_path):
    kill_and_resume(tmp_path, n=200, kills_wanted=10, seed=20240601)


@pytest.mark.slow
def test_sigkill_many_times_on_a_larger_run(tmp_path):
    kill_and_resume(tmp_path, n=2000, kills_wanted=40, seed=7)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_says_how_to_resume_in_one_line_and_keeps_finished_blocks(tmp_path, workers):
    out = tmp_path / "pairs.h5"
    command = make_command(out, 20000, "--workers", workers, "--block-size", "8")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    wait_for_a_block(proc, str(out) + ".parts")
    count, report = inspect_count(out)  # while it runs: exit 0, a count, "in progress"
    assert "in progress" in report and count > 0
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole foreground group
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert "--resume" in stderr and "/20000 pairs are kept" in stderr
    assert not out.exists()
    count, _ = inspect_count(out)
    assert count > 0


def test_a_second_make_on_an_output_being_made_is_refused(tmp_path):
    out = tmp_path / "pairs.h5"
    proc = subprocess.Popen(make_command(out, 20000, "--workers", "1", "--block-size", "8"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        parts = str(out) + ".parts"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (os.path.isdir(parts) and os.listdir(parts)):
            time.sleep(0.05)
        for flag, message in [(None, "being made by another"), ("--resume", "in use"),
                              ("--overwrite", "in use")]:
            second = subprocess.run(make_command(out, 20000, *([flag] if flag else [])),
                                    capture_output=True, text=True, timeout=120)
            assert second.returncode == 1, (flag, second.stderr)
            assert message in second.stderr and "Traceback" not in second.stderr
            assert len(second.stderr.strip().splitlines()) == 1
        assert proc.poll() is None, "the first run must be untouched"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 130


def test_ctrl_c_while_numba_computes_is_one_line_not_a_system_error(tmp_path):
    """A Ctrl-C that lands inside a Numba call comes out of it as ``SystemError: CPUDispatcher
    ... returned a result with an exception set`` (the KeyboardInterrupt only in its chain):
    `blurgen kernels` interrupted while drawing printed a 49-line traceback and exited 1."""
    out = tmp_path / "k.npy"
    # The child starts with Ctrl-C's default action whatever this process left it at: a process
    # started with SIGINT ignored keeps it ignored (Python then installs no KeyboardInterrupt), as
    # a shell's background job does.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)  # a child's is then SIG_DFL
    try:
        proc = subprocess.Popen(["blurgen", "kernels", "--n", "5000000", "--out", str(out), "--kernel-size", "15",
                                 "--length-px", "10"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    finally:
        if inherited is not None:
            signal.signal(signal.SIGINT, inherited)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if any(name.endswith(".tmp") for name in os.listdir(tmp_path)):
            break  # drawing the kernels now, batch after batch
        time.sleep(0.02)
    time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
        raise AssertionError(f"still running 60 s after Ctrl-C (this process's SIGINT handler: {inherited}); "
                             f"stderr: {stderr}") from None
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert os.listdir(tmp_path) == []  # neither the output nor its temporary
