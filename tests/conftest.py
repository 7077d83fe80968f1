import os
import shutil

import mindspore as ms
import pytest

from ppt_ms.formulations import native
from ppt_ms.data import make_example_dataset


@pytest.fixture(scope="session")
def digits_subset(tmp_path_factory):
    """make(name, per_class) -> an ImageNet-style folder with the first per_class[split]
    digits images of every class (the full digits set is written once per session)."""
    digits = tmp_path_factory.getbasetemp() / "digits"
    make_example_dataset(str(digits))

    def make(name, per_class):
        root = tmp_path_factory.mktemp(name)
        for split, count in per_class.items():
            for label in range(10):
                source, target = digits / split / str(label), root / split / str(label)
                target.mkdir(parents=True)
                for file_name in sorted(os.listdir(source))[:count]:
                    shutil.copy(source / file_name, target / file_name)
        return root

    return make


MODES = {"graph": ms.GRAPH_MODE, "pynative": ms.PYNATIVE_MODE}


def _in_mode(mode):
    previous = ms.get_context("mode")
    ms.set_context(mode=mode)
    yield
    ms.set_context(mode=previous)


@pytest.fixture(params=list(MODES))
def mode(request):
    """Runs the test once in graph mode and once in PyNative; the value is the mode's name."""
    for _ in _in_mode(MODES[request.param]):
        yield request.param


@pytest.fixture
def pynative():
    yield from _in_mode(ms.PYNATIVE_MODE)


@pytest.fixture
def graph():
    yield from _in_mode(ms.GRAPH_MODE)


@pytest.fixture(scope="module")
def graph_module():
    """Graph mode for a whole test module: pytestmark = pytest.mark.usefixtures("graph_module")."""
    yield from _in_mode(ms.GRAPH_MODE)


@pytest.fixture(scope="session")
def cxx():
    """Skips the test on a machine without the C++ compiler the CPU kernels are built with."""
    if not native.compiler_available():
        pytest.skip("no C++ compiler (%s): the CPU kernels cannot be built here" % native.compiler())
    return native.compiler()
