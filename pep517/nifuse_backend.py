"""The PEP 517 build backend of nifuse: maturin's, tagging wheels manylinux.

maturin's PEP 517 hooks build with `--compatibility off` unless the caller
passes a `--compatibility` of its own, and that overrides
`[tool.maturin] compatibility`: `pip wheel .` would give a wheel tagged plain
`linux_x86_64`. This module adds `--compatibility pypi` to MATURIN_PEP517_ARGS
when it names no compatibility, so maturin checks the binary's glibc symbols
and libraries and tags the wheel with the lowest manylinux policy it meets (or
fails). Everything else is maturin's: the hooks are re-exported unchanged, and
`MATURIN_PEP517_ARGS="--compatibility off" pip wheel .` still gives a plain one.
"""
import os
import shlex

from maturin import (  # noqa: F401 (the PEP 517 hooks, re-exported)
    build_editable,
    build_sdist,
    build_wheel,
    get_requires_for_build_editable,
    get_requires_for_build_sdist,
    get_requires_for_build_wheel,
    prepare_metadata_for_build_editable,
    prepare_metadata_for_build_wheel,
)

_args = shlex.split(os.environ.get("MATURIN_PEP517_ARGS", ""))
if not any(a.split("=")[0] in ("--compatibility", "--manylinux") for a in _args):
    os.environ["MATURIN_PEP517_ARGS"] = shlex.join([*_args, "--compatibility", "pypi"])
