"""`render_metrics` parses as Prometheus text and says what a person watching needs to know."""

from __future__ import annotations

import os
import stat
from datetime import date, datetime, timedelta
from pathlib import Path

from ops_world import ops_world
from prometheus_client.parser import text_string_to_metric_families

from rotator.demo import LONDON
from rotator.metrics import (
    Family,
    format_families,
    record_successful_run,
    render_metrics,
    write_metrics_file,
)

STRIPE = "BANDOFBAKERS_STRIPE_SECRET_KEY"
RESEND = "BANDOFBAKERS_RESEND_API_KEY"


def _parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def _one(samples: dict, name: str, **labels: str) -> float:
    found = [v for lab, v in samples[name] if all(lab.get(k) == x for k, x in labels.items())]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


def test_metrics_parse_and_describe_each_secret(state_dir: Path, tmp_path: Path) -> None:
    with ops_world(tmp_path, start=date(2026, 12, 20), notify_email=False) as world:
        world.at(date(2027, 1, 1))
        engine = world.engine()
        engine.run()
        text = render_metrics(engine)
        samples = _parse(text)

        units = {
            (lab["secret"], lab["scope"]) for lab, _ in samples["rotator_secret_has_current_value"]
        }
        assert (RESEND, "shared") in units
        assert {("GOOGLE_CLIENT_SECRET", e) for e in ("local", "staging", "production")} <= units
        assert all(lab["provider"] for lab, _ in samples["rotator_secret_value_age_seconds"])

        # Imported on 20 December at 02:30 London, measured on 1 January at 02:30 (give or
        # take the simulated seconds that retries and polls slept).
        age = _one(samples, "rotator_secret_value_age_seconds", secret=STRIPE)
        assert abs(timedelta(seconds=age) - timedelta(days=12)) < timedelta(minutes=5)

        # Stripe waits for a person to supply a key: flagged, no gate to count down.
        assert _one(samples, "rotator_secret_state", secret=STRIPE, state="awaiting-supply") == 1
        assert _one(samples, "rotator_secret_needs_person", secret=STRIPE) == 1
        assert not [lab for lab, _ in samples.get("rotator_secret_next_gate_seconds", [])
                    if lab["secret"] == STRIPE]  # fmt: skip

        # Resend was generated and staged today; validation opens on 1 February.
        assert _one(samples, "rotator_secret_state", secret=RESEND, state="staged") == 1
        assert _one(samples, "rotator_secret_needs_person", secret=RESEND) == 0
        february = datetime(2027, 2, 1, tzinfo=LONDON)
        gate = _one(samples, "rotator_secret_next_gate_seconds", secret=RESEND)
        assert gate == (february - world.sim()).total_seconds()
        assert _one(samples, "rotator_secret_rotations_failed", secret=RESEND) == 0

        assert _one(samples, "rotator_last_successful_run_timestamp_seconds") == 0
        record_successful_run(engine)
        samples = _parse(render_metrics(engine))
        last = _one(samples, "rotator_last_successful_run_timestamp_seconds")
        assert last == world.sim().timestamp()

        for value in world.issued_values():
            assert value not in text


def test_an_idle_secret_counts_down_to_the_next_quarter(state_dir: Path, tmp_path: Path) -> None:
    with ops_world(tmp_path, start=date(2026, 11, 10), notify_email=False) as world:
        engine = world.engine()
        engine.run()
        samples = _parse(render_metrics(engine))
        assert _one(samples, "rotator_secret_state", secret=RESEND, state="idle") == 1
        january = datetime(2027, 1, 1, tzinfo=LONDON)
        gate = _one(samples, "rotator_secret_next_gate_seconds", secret=RESEND)
        assert gate == (january - world.sim()).total_seconds()

        # On 1 January before the run has planned the cycle, the gate is open now.
        world.at(date(2027, 1, 1), hour=1, minute=0)
        samples = _parse(render_metrics(world.engine()))
        assert _one(samples, "rotator_secret_next_gate_seconds", secret=RESEND) == 0


def test_label_values_are_escaped() -> None:
    family = Family("rotator_test", "gauge", "A test.")
    family.add({"secret": 'a"b\\c\nd'}, 1.5)
    (parsed,) = text_string_to_metric_families(format_families([family]))
    assert parsed.samples[0].labels == {"secret": 'a"b\\c\nd'}
    assert parsed.samples[0].value == 1.5


def test_the_metrics_file_is_replaced_atomically(tmp_path: Path) -> None:
    target = tmp_path / "textfile" / "rotator.prom"
    write_metrics_file("rotator_x 1\n", target)
    first = target.stat().st_ino
    write_metrics_file("rotator_x 2\n", target)
    assert target.read_text() == "rotator_x 2\n"
    assert target.stat().st_ino != first  # a new file renamed over, never rewritten in place
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(target.parent) == ["rotator.prom"]
