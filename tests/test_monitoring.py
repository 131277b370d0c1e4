"""The failure-mode monitor and the signal handling, on hand-made numbers."""

from __future__ import annotations

import math
import signal

import pytest
import torch
from torch import nn

from ganforge.training.interrupts import StopRequests
from ganforge.training.monitoring import (
    D_WINS_BELOW,
    D_WINS_PATIENCE,
    EXPLODING_FACTOR,
    GRAD_NORM_HISTORY,
    Diverged,
    TrainingMonitor,
    gradient_norm,
    non_finite_tensors,
)

HEALTHY = {"d_loss": 1.2, "g_loss": 0.8, "d_real": 0.6, "d_fake": 0.4}


def test_discriminator_winning_warns_once_after_the_patience_and_again_after_recovery():
    monitor = TrainingMonitor()
    losing = {**HEALTHY, "d_fake": D_WINS_BELOW / 2}
    warned_at = [
        step for step in range(1, 2 * D_WINS_PATIENCE) if monitor.observe_step(step, losing, {})
    ]
    assert warned_at == [D_WINS_PATIENCE]
    assert monitor.observe_step(1000, HEALTHY, {}) == []  # recovered: the episode ends
    warnings = [monitor.observe_step(1000 + s, losing, {}) for s in range(D_WINS_PATIENCE)]
    assert sum(map(len, warnings)) == 1
    assert "discriminator is winning outright" in warnings[-1][0]


def test_exploding_gradient_norm_is_measured_against_the_recent_median():
    monitor = TrainingMonitor()
    for step in range(GRAD_NORM_HISTORY):
        assert monitor.observe_step(step, HEALTHY, {"d": 1.0 + step % 3, "g": 2.0}) == []
    # The median of the D history is 2: 100× that is the line.
    assert monitor.observe_step(100, HEALTHY, {"d": 2.0 * EXPLODING_FACTOR * 0.99}) == []
    warnings = monitor.observe_step(101, HEALTHY, {"d": 2.0 * EXPLODING_FACTOR * 1.01, "g": None})
    assert len(warnings) == 1 and "discriminator's gradient norm is exploding: 202" in warnings[0]
    assert monitor.observe_step(102, HEALTHY, {"g": math.inf}) == [
        "step 102: the generator's gradient norm is inf"
    ]


def test_no_exploding_warning_before_there_is_a_history():
    monitor = TrainingMonitor()
    assert monitor.observe_step(1, HEALTHY, {"d": 1.0}) == []
    assert monitor.observe_step(2, HEALTHY, {"d": 1e6}) == []


def test_mode_collapse_is_coverage_falling_under_half_the_classes():
    monitor = TrainingMonitor()
    # Early samples cover few classes: that is not a collapse (seen on the gan preset at 500).
    assert monitor.observe_evaluation(500, 1, 10) == []
    assert monitor.observe_evaluation(1000, 5, 10) == []
    (warning,) = monitor.observe_evaluation(1000, 4, 10)
    assert warning == (
        "step 1000: mode collapse: the samples cover only 4 of 10 classes, down from 5 (a "
        "class counts with at least 2% of the samples)"
    )
    assert monitor.observe_evaluation(1500, 3, 10) == []  # the same episode
    assert monitor.observe_evaluation(2000, 9, 10) == []
    assert len(monitor.observe_evaluation(2500, 2, 10)) == 1


def test_state_round_trips_so_that_a_resumed_run_warns_alike():
    monitor = TrainingMonitor()
    for step in range(30):
        monitor.observe_step(step, {**HEALTHY, "d_fake": 0.0}, {"d": 1.0, "g": 1.0})
    copy = TrainingMonitor()
    copy.load_state_dict(monitor.state_dict())
    assert copy.state_dict() == monitor.state_dict()
    losing = {**HEALTHY, "d_fake": 0.0}
    for step in range(30, D_WINS_PATIENCE + 5):
        assert copy.observe_step(step, losing, {}) == monitor.observe_step(step, losing, {})


def test_check_step_names_the_step_the_network_and_the_tensor():
    generator, discriminator = nn.Linear(2, 2), nn.Linear(2, 1)
    TrainingMonitor().check_step(3, HEALTHY, generator, discriminator)  # all finite: no error
    with torch.no_grad():
        generator.bias[0] = math.nan
    with pytest.raises(Diverged) as error:
        TrainingMonitor().check_step(7, {**HEALTHY, "g_loss": math.nan}, generator, discriminator)
    assert str(error.value) == (
        "step 7: the generator loss became NaN or Inf; the generator's weights hold NaN or Inf "
        "(bias)"
    )
    assert non_finite_tensors(discriminator) == []


def test_skip_mode_tolerates_nans_until_a_streak_of_skipped_updates():
    generator, discriminator = nn.Linear(2, 2), nn.Linear(2, 1)
    monitor = TrainingMonitor()
    skipped = {**HEALTHY, "d_loss": math.nan, "skipped_updates": 1}
    for step in range(1, 50):
        monitor.check_step(step, skipped, generator, discriminator)
    monitor.check_step(50, {**HEALTHY, "skipped_updates": 0}, generator, discriminator)
    for step in range(51, 100):
        monitor.check_step(step, skipped, generator, discriminator)
    with pytest.raises(Diverged, match="step 100: each of the last 50 steps"):
        monitor.check_step(100, skipped, generator, discriminator)
    assert monitor.skipped_total == 99


def test_gradient_norm_is_the_norm_of_all_gradients():
    model = nn.Linear(3, 2)
    assert gradient_norm(model) is None
    model.weight.grad = torch.full((2, 3), 2.0)
    model.bias.grad = torch.tensor([3.0, 4.0])
    assert gradient_norm(model) == pytest.approx(math.sqrt(6 * 4 + 9 + 16))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stop_requests_record_the_first_signal_and_restore_the_handlers(signum):
    before = signal.getsignal(signum)
    with StopRequests() as stop:
        assert not stop.requested
        # raise_signal runs the handler before it returns; os.kill may deliver the signal to
        # another thread, and the handler then runs some instructions later.
        signal.raise_signal(signum)
        assert stop.requested and stop.signum == signum
    assert signal.getsignal(signum) is before


def test_a_second_ctrl_c_interrupts_at_once():
    # The second Ctrl-C acts as the handler from before StopRequests does: make that Python's
    # own, whatever earlier tests in this process left installed.
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), StopRequests():
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, before)
