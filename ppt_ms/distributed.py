"""Data parallelism under msrun: detect the launcher, initialise communication, name this process."""
import os
from dataclasses import dataclass

import mindspore as ms
from mindspore.communication import get_group_size, get_rank, init


@dataclass(frozen=True)
class World:
    """This process's rank among group_size data-parallel processes (0 of 1 when single)."""
    rank: int = 0
    group_size: int = 1

    @property
    def is_main(self) -> bool:
        """Only the main process logs and writes files."""
        return self.rank == 0


MSRUN_ROLES = ("MS_WORKER", "MS_SCHED")


def launched_by_msrun(environ=os.environ) -> bool:
    """True in a process started by msrun for more than one worker: the workers and the scheduler,
    which runs the same script and serves the cluster from inside init()."""
    return environ.get("MS_ROLE") in MSRUN_ROLES and int(environ.get("MS_WORKER_NUM", "1")) > 1


def this_rank(environ=os.environ) -> int:
    """This process's rank after init_world (0 when single)."""
    return get_rank() if launched_by_msrun(environ) else 0


def init_world(environ=os.environ) -> World:
    """Single process -> World(0, 1). Under msrun: init() the collective backend (MCCL on CPU),
    set DATA_PARALLEL with gradient averaging, and return this worker's rank and the group size.
    Call after the device context is set."""
    if not launched_by_msrun(environ):
        return World()
    init()
    world = World(get_rank(), get_group_size())
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                 device_num=world.group_size)
    return world
