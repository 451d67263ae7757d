"""The scale table: upstream measured where it fits, extrapolated only beside a measured row."""

from __future__ import annotations

from typing import Any

from bench.nsbench.report.tables import scale_table

MIB = 2**20


def _upstream(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "impl": "upstream",
        "n": n,
        "start_returned_s": n * 0.027,
        "all_open_s": n * 0.028,
        "cpu_s": n * 0.04,
        "requests": {},
        "open_watches": n + 1,
        "tree": {"processes": n + 4, "threads": n + 6, "rss": n * 180 * MIB, "pss": n * 14 * MIB},
        "repeat": 0,
        **extra,
    }


def test_upstream_too_big_for_memory_is_measured_at_the_largest_n_that_fits_beside_its_extrapolation() -> (
    None
):
    results = {
        "scale": [
            _upstream(10),
            _upstream(100),
            {"impl": "upstream", "n": 1000, "skipped": "1000 x 14 MiB > half, which holds 785"},
            _upstream(785, largest_fit_for=1000),
        ]
    }

    rows, by_n = scale_table(results)

    measured = by_n[785]["upstream"]
    assert not measured.get("extrapolated")
    assert "largest N that fits in half the memory (for N=1000)" in next(r[1] for r in rows if r[0] == "785")
    extrapolated = by_n[1000]["upstream"]
    assert extrapolated["extrapolated"]
    # The fit runs through every measured size, the largest one included.
    assert abs(extrapolated["all_open_s"] - 28.0) < 0.01
    assert [r[0] for r in rows] == ["10", "100", "785", "1000"]
