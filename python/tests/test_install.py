"""The package installs with pip and imports from the installed copy (not the source tree)."""
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_pip_installs_the_package_and_it_imports_from_there(tmp_path):
    target = tmp_path / "site"
    # Build from a copy: setuptools writes build/ and *.egg-info beside the sources it builds.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__"))
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(source)]
    if importlib.util.find_spec("setuptools") is not None:
        command.insert(4, "--no-build-isolation")  # build with the installed setuptools, no download
    r = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    probe = (
        "import sightline_torch as s; print(s.__file__); "
        "print(all(hasattr(s, n) for n in ('load_weights', 'build_connector')))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    location, exported = r.stdout.split()
    assert pathlib.Path(location).resolve().is_relative_to(target.resolve()), location
    assert exported == "True"
