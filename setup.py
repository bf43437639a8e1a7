"""Ship the repository's ``configs/*.yml`` inside the wheel as ``dgflow/configs/`` (package data).

``configs/`` at the repository root stays the one copy: the README's commands and the tests use it,
and ``dgflow refine --config pkg:configs/NAME.yml`` finds the same files in an installed wheel
(:func:`dgflow.cli.config_file` falls back to the root folder in a source checkout).
Everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent


class BuildWithConfigs(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "dgflow" / "configs"
        self.mkpath(str(target))
        for config in sorted((ROOT / "configs").glob("*.yml")):
            self.copy_file(str(config), str(target / config.name))


setup(cmdclass={"build_py": BuildWithConfigs})
