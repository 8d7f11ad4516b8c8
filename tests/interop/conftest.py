"""One `voicebot serve` subprocess for all interop tests (models load once), on free loopback ports."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.peers import VoicebotServer, free_sip_port_for_baresip, shared_index_dir

SHORT_GREETING = "Guten Tag, hier ist das Rathaus."


@pytest.fixture(scope="session")
def staff_port() -> int:
    """Where the hand-off target listens: the baresip "staff phone", later the sipp echo UAS."""
    return free_sip_port_for_baresip()


@pytest.fixture(scope="session")
def standesamt_port() -> int:
    """Where the Standesamt staff group's phone listens (hand-offs of Standesamt topics go there)."""
    return free_sip_port_for_baresip()


@pytest.fixture(scope="session")
def voicebot_server(
    tmp_path_factory: pytest.TempPathFactory, embedded_models_dir: Path, staff_port: int, standesamt_port: int
) -> Iterator[VoicebotServer]:
    for tool in ("baresip", "sipp", "espeak-ng", "sox"):
        assert shutil.which(tool), f"{tool} is required for the interop tests (see README: Debian packages)"
    server = VoicebotServer(
        tmp_path_factory.mktemp("voicebot-serve"),
        models_dir=embedded_models_dir,
        index_dir=shared_index_dir(),
        call__greeting=SHORT_GREETING,  # the default greeting is 7.8 s of espeak: too long to wait for in every test
        sip__staff_uri=f"sip:staff@127.0.0.1:{staff_port}",
        sip__rtp_inactivity_timeout_s="10",
        sip__transfer_timeout_s="8",
        sip__ring_s="0.5",  # a CANCEL right after 100 Trying must meet an unanswered call, not race the answer
        # Topic routing: Standesamt questions go to their group's phone; everything else to sip.staff_uri.
        handoff__groups=json.dumps(
            [
                {
                    "name": "standesamt",
                    "departments": ["Standesamt"],
                    "staff_uri": f"sip:standesamt@127.0.0.1:{standesamt_port}",
                }
            ]
        ),
    )
    server.start()
    yield server
    assert server.stop() == 0, f"voicebot serve did not shut down cleanly:\n{server.log_tail()}"
