"""The CI entry point must run the README's test command and fail when pytest collects nothing."""

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
