"""Training survives Ctrl-C: a SIGINT (or SIGTERM) saves the finished iteration and resuming gives the
same model as an uninterrupted run; a time interval saves too. Progress off a terminal is logged."""

from __future__ import annotations

import logging
import os
import signal

import pytest
import torch

from dgflow.progress import LogProgress, eta_line, progress_bar
from dgflow.training import GANTraining, train_gan
from dgflow.training.checkpointing import SaveOnSignal
from test_train_gan import TinyD, TinyG, _data


class SignalAt(TinyG):
    """A generator that sends its own process ``sig`` during its ``at``-th forward pass."""

    def __init__(self, at: int, sig: int = signal.SIGINT):
        super().__init__()
        self.calls, self.at, self.sig = 0, at, sig

    def forward(self, z, y=None):
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), self.sig)
        return super().forward(z, y)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_the_iteration_and_resuming_matches_an_uninterrupted_run(tmp_path, sig):
    x, _ = _data()
    s = GANTraining(iterations=6, batch_size=16, n_dis=1, log_every=1, sample_every=100, checkpoint_every=100)
    torch.manual_seed(0)
    g, d = TinyG(), TinyD()
    full = train_gan(g, d, x, 4, s, tmp_path / "full", progress=False)

    torch.manual_seed(0)
    torch.manual_seed(0)
    g2, d2 = SignalAt(at=5, sig=sig), TinyD()  # 2 forward passes per iteration: the signal comes in iteration 3
    before = signal.getsignal(sig)
    with pytest.raises(KeyboardInterrupt, match="saved iteration 3"):
        train_gan(g2, d2, x, 4, s, tmp_path / "part", progress=False, save_every_seconds=None)
    assert signal.getsignal(sig) is before  # the handlers are put back
    ck = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=False)
    assert ck["training"]["iteration"] == 3

    torch.manual_seed(1)
    g3, d3 = TinyG(), TinyD()
    resumed = train_gan(g3, d3, x, 4, s, tmp_path / "part", progress=False)
    assert [e["iteration"] for e in resumed] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(full, resumed):
        assert a["loss_g"] == pytest.approx(b["loss_g"], rel=1e-5, abs=1e-6)
    for p, q in zip(g.parameters(), g3.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_a_larger_iterations_continues_a_finished_run(tmp_path, capsys):
    x, _ = _data()
    s = GANTraining(iterations=2, batch_size=16, n_dis=1, log_every=1, sample_every=100, checkpoint_every=100)
    train_gan(TinyG(), TinyD(), x, 4, s, tmp_path, progress=False)
    log = train_gan(TinyG(), TinyD(), x, 4, GANTraining(**{**s.__dict__, "iterations": 3}), tmp_path, progress=True)
    assert [e["iteration"] for e in log] == [1, 2, 3]
    assert "resuming" in capsys.readouterr().out
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["training"]["iteration"] == 3


def test_the_time_interval_saves_between_scheduled_checkpoints():
    saved = []
    clock = SaveOnSignal(saved.append, every_seconds=0.0)
    with clock:
        clock.step(1)
        clock.step(2, saved=True)  # the loop saved this one itself
    assert saved == [1]
    never = SaveOnSignal(saved.append, every_seconds=None)
    with never:
        never.step(3)
    assert saved == [1]


def test_progress_off_a_terminal_is_logged_every_tenth(caplog):
    with caplog.at_level(logging.INFO, logger="dgflow.progress"):
        for _ in progress_bar(range(50), desc="work"):  # pytest's stderr is not a terminal
            pass
    lines = [r.getMessage() for r in caplog.records]
    percents = [line for line in lines if "%" in line]
    assert len(percents) == 10 and percents[-1].startswith("work: 100% (50/50)")
    assert any("steps left at" in line for line in lines)  # the one ETA line


def test_progress_quiet_and_inner_bars_say_nothing(caplog):
    with caplog.at_level(logging.INFO, logger="dgflow.progress"):
        for _ in progress_bar(range(10), desc="quiet", disable=True):
            pass
        for _ in progress_bar(range(10), desc="inner", leave=False):
            pass
    assert caplog.records == []


def test_eta_line_extrapolates_the_measured_rate():
    line = eta_line("GAN", done=10, total=810, elapsed=29.0, initial=0)
    assert "800 of 810 steps left at 2.9 s/step: about 38.7 min" in line
    bar = LogProgress(total=100, desc="x", initial=40)
    assert bar.n == 40


def test_transient_bars_off_a_terminal_log_only_when_they_take_long(caplog, monkeypatch):
    """refine / select / guide use ``leave=False``: quiet when short, a line with the time left every 30 s."""
    import dgflow.progress as progress

    with caplog.at_level(logging.INFO, logger="dgflow.progress"):
        for _ in progress_bar(range(10), desc="short", leave=False):
            pass
        assert caplog.records == []
        monkeypatch.setattr(progress, "LOG_EVERY_SECONDS", 0.0)  # every step "takes long"
        with progress_bar(total=4, desc="long", leave=False) as bar:
            for _ in range(4):
                bar.update(1)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 and lines[0].startswith("long: 25% (1/4)") and "left" in lines[0]


def test_refine_piped_to_a_file_logs_its_progress(caplog, monkeypatch):
    import dgflow
    import dgflow.progress as progress

    monkeypatch.setattr(progress, "LOG_EVERY_SECONDS", 0.0)
    with caplog.at_level(logging.INFO, logger="dgflow.progress"):
        dgflow.refine(lambda z: z, lambda x: -(x**2).sum(1), n=8, latent_shape=(2,), steps=2, batch_size=4,
                      save_interval=None)
    assert any(r.getMessage().startswith("refine (dgflow): 100% (16/16)") for r in caplog.records)
