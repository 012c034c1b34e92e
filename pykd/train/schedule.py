"""Newbob learning-rate control (in the manner of Kaldi nnet1's train_scheduler.sh).

Rules, applied after every epoch's cross-validation (CV) pass:

* an epoch whose CV loss is not lower than the best accepted loss is *rejected* (the caller
  restores the previous weights);
* the relative improvement ``(best - new) / best`` is measured against the best accepted CV
  loss (negative for a rejected epoch); once it falls below ``start_halving_impr`` halving
  starts and the learning rate is multiplied by ``halving_factor`` after every later epoch;
* while halving, an improvement below ``end_halving_impr`` (a rejected epoch included) stops
  training once ``min_epochs`` are done; ``max_epochs`` always stops it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class NewbobConfig:
    """Thresholds of the newbob schedule (Kaldi nnet1 defaults)."""

    start_halving_impr: float = 0.01
    end_halving_impr: float = 0.001
    halving_factor: float = 0.5
    min_epochs: int = 0
    max_epochs: int = 20
    keep_lr_epochs: int = 0  # epochs at the initial lr before halving may start


@dataclass
class NewbobDecision:
    """What to do after an epoch."""

    accept: bool
    stop: bool
    lr: float
    rel_impr: float
    reason: str = ""


class NewbobScheduler:
    """Stateful newbob controller; ``state_dict``/``load_state_dict`` make it resumable."""

    def __init__(self, lr: float, cfg: NewbobConfig | None = None) -> None:
        self.cfg = cfg or NewbobConfig()
        self.lr = float(lr)
        self.halving = False
        self.best_loss: float | None = None
        self.epochs_done = 0

    def set_initial(self, cv_loss: float) -> None:
        """Record the CV loss of the untrained (or loaded) model."""
        self.best_loss = float(cv_loss)

    def step(self, cv_loss: float) -> NewbobDecision:
        """Decide on the epoch just finished, whose CV loss is ``cv_loss``."""
        if self.best_loss is None:
            raise RuntimeError("NewbobScheduler.set_initial() must be called before step()")
        cfg = self.cfg
        self.epochs_done += 1
        cv_loss = float(cv_loss)
        accept = cv_loss < self.best_loss
        rel_impr = (self.best_loss - cv_loss) / abs(self.best_loss) if self.best_loss else 0.0
        if accept:
            self.best_loss = cv_loss
        stop = False
        reason = ""
        past_min = self.epochs_done >= cfg.min_epochs
        if self.halving and rel_impr < cfg.end_halving_impr and past_min:
            stop, reason = True, f"relative improvement {rel_impr:.5f} < end_halving_impr"
        elif self.epochs_done >= cfg.max_epochs:
            stop, reason = True, f"max_epochs {cfg.max_epochs} reached"
        if not stop:
            if rel_impr < cfg.start_halving_impr and self.epochs_done > cfg.keep_lr_epochs:
                self.halving = True
            if self.halving:
                self.lr *= cfg.halving_factor
        return NewbobDecision(
            accept=accept, stop=stop, lr=self.lr, rel_impr=rel_impr, reason=reason
        )

    def state_dict(self) -> dict[str, Any]:
        """Serialisable state."""
        return {
            "cfg": asdict(self.cfg),
            "lr": self.lr,
            "halving": self.halving,
            "best_loss": self.best_loss,
            "epochs_done": self.epochs_done,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (the thresholds stay as configured now)."""
        self.lr = float(state["lr"])
        self.halving = bool(state["halving"])
        self.best_loss = state["best_loss"]
        self.epochs_done = int(state["epochs_done"])
