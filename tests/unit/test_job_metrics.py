"""The metrics plugin's own series expose as prometheus-client's would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from vq_plugins.observers.metrics import Family, JobMetrics


def _exposed(*families: Family) -> str:
    registry = CollectorRegistry()
    registry.register(JobMetrics(families))
    return generate_latest(registry).decode()


def test_a_histogram_counts_a_value_in_the_bucket_it_does_not_exceed() -> None:
    family = Family("t_seconds", "Test.", ("job_type",), (0.1, 1.0))
    series = family.child("doubt")
    for value in (0.1, 0.5, 1.0, 7.0):  # a bound itself falls in its bucket
        series.observe(value)
    text = _exposed(family)
    assert 't_seconds_bucket{job_type="doubt",le="0.1"} 1.0' in text
    assert 't_seconds_bucket{job_type="doubt",le="1.0"} 3.0' in text
    assert 't_seconds_bucket{job_type="doubt",le="+Inf"} 4.0' in text
    assert 't_seconds_count{job_type="doubt"} 4.0' in text
    assert 't_seconds_sum{job_type="doubt"} 8.6' in text


def test_a_counter_is_exposed_with_its_total_suffix_per_label_set() -> None:
    family = Family("t_jobs", "Test.", ("job_type", "outcome"))
    family.child("doubt", "completed").inc()
    family.child("doubt", "completed").inc()
    family.child("diagram", "failed").inc()
    text = _exposed(family)
    assert "# TYPE t_jobs_total counter" in text
    assert 't_jobs_total{job_type="doubt",outcome="completed"} 2.0' in text
    assert 't_jobs_total{job_type="diagram",outcome="failed"} 1.0' in text


def test_a_family_without_series_exposes_no_sample() -> None:
    text = _exposed(Family("t_idle", "Test.", ("job_type",)))
    assert "t_idle_total{" not in text
