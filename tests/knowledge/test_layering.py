"""knowledge is a library: importing all of it never loads the application (voicebot)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import importlib, pkgutil, sys
import knowledge
for module in pkgutil.walk_packages(knowledge.__path__, "knowledge."):
    importlib.import_module(module.name)
loaded = sorted(name for name in sys.modules if name == "voicebot" or name.startswith("voicebot."))
print(",".join(loaded))
"""


def test_no_knowledge_module_imports_voicebot() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, check=True
    )
    assert result.stdout.strip() == "", f"knowledge loads the application: {result.stdout.strip()}"
