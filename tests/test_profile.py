"""``curcor profile``: the report of a real run, and its errors.

Each test runs the command in a subprocess (the sampler, the runtime and the
report as a user gets them), with a bounded wait.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("matplotlib")

TIMEOUT = 60

APP = textwrap.dedent(
    """\
    import sys

    import curcor


    def burn(n):
        total = 0
        for i in range(n):
            total += i * i  # HOT
        return total


    async def cpu():
        for _ in range(100):
            burn(20_000)
            await curcor.sleep(0)


    async def garbage():
        for _ in range(4):
            junk = []
            for i in range(60_000):
                node = [i]
                node.append(node)
                junk.append(node)
            del junk
            await curcor.sleep(0.01)


    async def sleeper(i):
        await curcor.sleep(0.05 + i * 0.001)


    async def main():
        async with curcor.TaskGroup() as tg:
            tg.go(cpu())
            tg.go(garbage())
            for i in range(50):
                tg.go(sleeper(i))
        if sys.argv[1:] == ["fail"]:
            raise ValueError("the app failed")
    """
)
HOT_LINE = APP.splitlines().index("        total += i * i  # HOT") + 1
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _profile(cwd, *argv: str, python_code: str | None = None):
    """Run ``curcor profile ARGV`` in ``cwd``; ``python_code`` runs first."""
    code = (python_code or "") + (
        "\nimport sys\nfrom curcor.cli import main\nsys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, "profile", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


@pytest.fixture
def app(tmp_path):
    path = tmp_path / "app.py"
    path.write_text(APP)
    return path


def _images(html: str) -> list[bytes]:
    found = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    return [base64.b64decode(b) for b in found]


@pytest.mark.slow
def test_profile_writes_plots_and_names_the_hot_line(tmp_path, app):
    result = _profile(tmp_path, "-o", "report.html", str(app))
    assert result.returncode == 0, result.stderr
    report = tmp_path / "report.html"
    assert "curcor: profile written to " + str(report) in result.stderr
    html = report.read_text()
    images = _images(html)
    assert len(images) == 4
    assert all(image.startswith(PNG_SIGNATURE) for image in images)
    assert f"app.py:{HOT_LINE}</td><td>burn</td>" in html
    for title in ("Tasks", "Garbage collections", "Buffer pool", "Worker utilisation"):
        assert f"<h2>{title}" in html
    assert "gc collections (generation 0/1/2)" in html
    assert 'src="http' not in html  # self-contained


@pytest.mark.slow
def test_profile_takes_its_flags_after_the_target_and_passes_the_rest(tmp_path, app):
    result = _profile(tmp_path, str(app), "-o", "r.html", "--interval", "0.005", "fail")
    assert result.returncode == 1, result.stderr
    assert "ValueError: the app failed" in result.stderr
    html = (tmp_path / "r.html").read_text()
    assert '<td>exit status</td><td class="n">1</td>' in html
    assert len(_images(html)) == 4


def test_profile_missing_file_is_a_usage_error(tmp_path):
    result = _profile(tmp_path, "-o", "r.html", "nope.py")
    assert result.returncode == 2
    assert "curcor: can't open file 'nope.py': no such file" in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_profile_unwritable_output_fails_before_the_program_runs(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "app.py").write_text(
        f"async def main():\n    open({str(marker)!r}, 'w').close()\n"
    )
    result = _profile(tmp_path, "-o", "no/such/dir/r.html", "app.py")
    assert result.returncode == 2
    assert "cannot write the report to " in result.stderr
    assert "choose a writable path with -o" in result.stderr
    assert not marker.exists()

    result = _profile(tmp_path, "-o", str(tmp_path), "app.py")
    assert result.returncode == 2
    assert "is a directory; name a file" in result.stderr
    assert not marker.exists()


def test_profile_bad_interval_is_a_usage_error(tmp_path, app):
    result = _profile(tmp_path, "--interval", "fast", str(app))
    assert result.returncode == 2
    assert "--interval fast is not a sampling interval" in result.stderr


def test_profile_without_matplotlib_names_the_install_command(tmp_path, app):
    hide = "import sys\nsys.modules['matplotlib'] = None"
    result = _profile(tmp_path, str(app), python_code=hide)
    assert result.returncode == 1
    assert "install it with: python -m pip install 'curcor[profile]'" in result.stderr
    assert "scheduler booted" not in result.stderr  # the program did not run
