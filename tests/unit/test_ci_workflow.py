"""The public CI workflow runs make targets and nothing else, so CI and a developer's machine run
the same commands and a failure there can be reproduced here with the same line."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).parents[2]


def test_every_ci_command_is_a_make_target_of_the_makefile() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", (REPO / "Makefile").read_text(), re.MULTILINE))

    commands = {
        job: [step["run"] for step in spec["steps"] if "run" in step]
        for job, spec in workflow["jobs"].items()
    }

    assert commands == {"test": ["make test"], "k3s": ["make k3s"]}
    assert {"test", "k3s"} <= targets
    ci_run = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci_run == "make test"
