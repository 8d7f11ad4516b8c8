"""`voicebot serve` as a subprocess for the browser tests (free ports; SIP listens too, unused here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from interop.peers import VoicebotServer, shared_index_dir


@pytest.fixture(scope="module")
def web_server(
    tmp_path_factory: pytest.TempPathFactory, embedded_models_dir: Path
) -> Iterator[VoicebotServer]:
    server = VoicebotServer(
        tmp_path_factory.mktemp("voicebot-web"),
        models_dir=embedded_models_dir,
        index_dir=shared_index_dir(),
        call__greeting="Guten Tag, hier ist das Rathaus. Wie kann ich helfen?",
        call__silence_timeout_s="4",  # the silent-call test waits for prompt + goodbye
    )
    server.start()
    yield server
    assert server.stop() == 0, server.log_tail()
