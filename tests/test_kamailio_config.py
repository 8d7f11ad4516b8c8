"""deploy/kamailio/kamailio.cfg passes Kamailio's own check (``kamailio -c``) with the defines the interop test and
an operator use; the example dispatcher list names voicebots in set 1 with probing on."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from kamailio import EXAMPLE_DISPATCHER_LIST, KAMAILIO_CFG, kamailio_defines


def _check(*defines: str) -> subprocess.CompletedProcess[str]:
    assert shutil.which("kamailio"), (
        "kamailio is required (Debian package kamailio, installed by scripts/test)"
    )
    return subprocess.run(
        ["kamailio", "-c", "-f", str(KAMAILIO_CFG), *defines], capture_output=True, text=True, timeout=30
    )


def test_the_shipped_config_passes_kamailio_check_with_the_test_defines(tmp_path: Path) -> None:
    result = _check(*kamailio_defines(15999, tmp_path / "dispatcher.list", tmp_path / "ctl", 1))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "udp: 127.0.0.1 [127.0.0.1]:15999" in result.stderr + result.stdout


def test_the_shipped_config_passes_with_its_defaults_and_a_broken_define_fails() -> None:
    assert _check().returncode == 0
    broken = _check("-A", "DS_PING_INTERVAL=often")
    assert broken.returncode != 0


def test_the_example_dispatcher_list_probes_every_voicebot_of_set_1() -> None:
    entries = [
        line.split()
        for line in EXAMPLE_DISPATCHER_LIST.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(entries) >= 2
    for set_id, uri, flags, priority, attributes in entries:
        assert set_id == "1" and uri.startswith("sip:") and int(flags) & 8 and priority.isdigit()
        assert attributes.startswith("weight=")
