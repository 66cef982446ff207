"""The CI entry point must run the README's test command and fail when pytest collects nothing."""

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert block, "README.md must open with a code block of commands"
    return [
        ln.split("#")[0].strip() for ln in block.group(1).splitlines() if ln.split("#")[0].strip()
    ]


def test_readme_opens_with_two_commands_and_ci_runs_the_test_one():
    commands = readme_commands()
    assert len(commands) == 2
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()
    makefile = (ROOT / "Makefile").read_text()
    assert "test: setup lint pytest" in makefile


def test_make_fails_when_pytest_collects_no_tests(tmp_path):
    # The pytest step of CI's make target, pointed at an empty selection: pytest exits 5 and
    # make must fail with it.
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "pytest", "PYTEST_ARGS=-k no_such_test_name_xyz"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode != 0
    assert "no tests ran" in result.stdout + result.stderr
    assert "Error 5" in result.stderr


def run_ci(workdir: Path, shared: Path, make_exit: int) -> subprocess.CompletedProcess:
    """``.ci/run`` with ``make`` replaced by a stub that records its arguments in
    ``workdir/make.args`` and exits ``make_exit``, the public tables looked for in ``shared``."""
    stub = workdir / "bin"
    stub.mkdir(parents=True)
    (stub / "make").write_text(f'#!/bin/sh\necho "$@" > "{workdir}/make.args"\nexit {make_exit}\n')
    (stub / "make").chmod(0o755)
    env = os.environ | {"PATH": f"{stub}:{os.environ['PATH']}"}
    env["BAYESCALE_SHARED_DATA"] = str(shared)
    return subprocess.run(
        ["bash", str(ROOT / ".ci" / "run")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_ci_refuses_to_run_without_the_public_tables(tmp_path):
    # Without the check the real-data tests would skip and CI would pass without them.
    missing = tmp_path / "no-shared" / "data"
    result = run_ci(tmp_path, missing, make_exit=0)
    assert result.returncode == 1
    assert str(missing) in result.stderr and "missing" in result.stderr
    assert not (tmp_path / "make.args").exists()  # make test never started


def test_ci_runs_make_test_and_fails_with_it(tmp_path):
    shared = tmp_path / "data"
    shared.mkdir()
    assert run_ci(tmp_path / "passing", shared, make_exit=0).returncode == 0
    assert (tmp_path / "passing" / "make.args").read_text().split() == ["test"]
    assert run_ci(tmp_path / "failing", shared, make_exit=2).returncode == 2
