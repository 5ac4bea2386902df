"""The demo refuses to start only when its ports stay in use: Mixer's monitor port (42422) is in Linux's ephemeral
range, where a short-lived client connection can hold it for a moment."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e import demo


async def test_a_port_held_for_a_moment_does_not_stop_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [["127.0.0.1:42422"], ["127.0.0.1:42422"], []]
    monkeypatch.setattr(demo, "_ports_in_use", lambda _state_dir: answers.pop(0))
    monkeypatch.setattr(demo, "_PORT_CHECK_SECONDS", 0.0)
    assert await demo._ports_still_in_use(Path("/nonexistent")) == []
    assert answers == []


async def test_a_port_that_stays_in_use_stops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []

    def busy(state_dir: Path) -> list[str]:
        calls.append(state_dir)
        return ["127.0.0.1:15010"]

    monkeypatch.setattr(demo, "_ports_in_use", busy)
    monkeypatch.setattr(demo, "_PORT_CHECK_SECONDS", 0.0)
    assert await demo._ports_still_in_use(Path("/state")) == ["127.0.0.1:15010"]
    assert len(calls) == demo._PORT_CHECKS
