"""Progress lines of a training run: loss, lr, throughput and time left."""
import time

from ..progress import format_duration


class ProgressMeter:
    """Measures throughput over the steps since the last report and estimates the time left."""

    def __init__(self, total_steps: int, global_batch: int, epochs: int, steps_per_epoch: int, clock=time.perf_counter):
        self.total_steps = total_steps
        self.global_batch = global_batch
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.clock = clock
        self.restart()

    def restart(self, global_step: int = 0):
        """Start a new measuring window at `global_step` (call after compiling or evaluating)."""
        self.window_start = self.clock()
        self.window_step = global_step

    def line(self, global_step: int, loss: float, lr: float) -> str:
        """'epoch e/E  step s/S  loss ..  lr ..  images/s ..  ETA h:mm:ss' after `global_step` steps."""
        elapsed = self.clock() - self.window_start
        steps = global_step - self.window_step
        per_step = elapsed / steps if steps > 0 and elapsed > 0 else float("nan")
        images_per_s = self.global_batch / per_step if steps > 0 and elapsed > 0 else float("nan")
        eta = format_duration(per_step * (self.total_steps - global_step)) if steps > 0 else "?"
        epoch, step = divmod(global_step - 1, self.steps_per_epoch)
        self.restart(global_step)
        return ("epoch %d/%d  step %d/%d  loss %.4f  lr %.3e  images/s %.1f  ETA %s"
                % (epoch + 1, self.epochs, step + 1, self.steps_per_epoch, loss, lr, images_per_s, eta))
