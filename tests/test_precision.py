"""`precision=auto` on a CPU: bf16 only where bf16 matmuls are measured faster than fp32."""

import pytest
import torch

from electra.train import precision as P

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _fresh_probe():
    P.cpu_bf16_speedup.cache_clear()
    yield
    P.cpu_bf16_speedup.cache_clear()


def _machine(monkeypatch, native: bool, fp32_s: float, bf16_s: float) -> list:
    calls = []

    def seconds(dtype, n, reps):
        calls.append(dtype)
        return bf16_s if dtype == torch.bfloat16 else fp32_s
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(P, "_matmul_seconds", seconds)
    return calls


def test_bf16_is_chosen_where_it_is_measured_faster(monkeypatch):  # e.g. AMX
    _machine(monkeypatch, native=True, fp32_s=1.0, bf16_s=0.25)
    assert P.resolve_precision("auto", CPU) == "bf16"
    assert "x4.00 fp32" in P.describe("auto", "bf16", CPU)


def test_native_bf16_that_is_slower_than_fp32_is_not_chosen(monkeypatch):
    # measured on an AVX512-BF16 CPU without AMX: bf16 matmuls at 0.54x the fp32 rate
    _machine(monkeypatch, native=True, fp32_s=1.0, bf16_s=1.85)
    assert P.resolve_precision("auto", CPU) == "fp32"
    assert "x0.54 fp32" in P.describe("auto", "fp32", CPU)


def test_a_marginal_bf16_gain_does_not_pay_for_autocast(monkeypatch):
    _machine(monkeypatch, native=True, fp32_s=1.0, bf16_s=1.0 / (P.BF16_MIN_SPEEDUP - 0.1))
    assert P.resolve_precision("auto", CPU) == "fp32"


def test_no_probe_without_native_bf16(monkeypatch):
    calls = _machine(monkeypatch, native=False, fp32_s=1.0, bf16_s=0.1)
    assert P.resolve_precision("auto", CPU) == "fp32"
    assert calls == []
    assert "without native bf16" in P.describe("auto", "fp32", CPU)


def test_the_probe_runs_once_per_process(monkeypatch):
    calls = _machine(monkeypatch, native=True, fp32_s=1.0, bf16_s=0.5)
    for _ in range(3):
        P.resolve_precision("auto", CPU)
    assert len(calls) == 2  # one fp32 and one bf16 timing


def test_an_explicit_precision_is_kept(monkeypatch):
    calls = _machine(monkeypatch, native=True, fp32_s=1.0, bf16_s=0.1)
    assert P.resolve_precision("fp32", CPU) == "fp32"
    assert P.resolve_precision("bf16", CPU) == "bf16"
    assert calls == []


def test_the_real_probe_returns_a_ratio():
    speedup = P.cpu_bf16_speedup()
    assert speedup == 0.0 if not P.cpu_has_native_bf16() else speedup > 0.0


def test_the_probe_leaves_the_global_random_stream_alone(monkeypatch):
    # it runs on the first `auto` resolution of a process, after the run has seeded: drawing its
    # matrices from the global generator shifted that run's dropout and masks, so the seed
    # fine-tuned first in `electra evaluate` scored differently from the same seed fine-tuned later
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: True)  # the probe runs on any machine
    torch.manual_seed(7)
    expected = torch.rand(4)
    torch.manual_seed(7)
    assert P.resolve_precision("auto", CPU) in ("fp32", "bf16")
    assert torch.equal(torch.rand(4), expected)
