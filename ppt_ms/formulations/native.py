"""C++ code (kernels for MindSpore's AOT custom operator, the eval resize called through ctypes):
compiled on first use, cached by content.

ppt_ms ships a few CPU kernels as C++ source (`*.cc` beside the code that uses them).  The
first time one is needed it is compiled with the system C++ compiler ($CXX, else g++) and kept
in $PPT_MS_KERNEL_CACHE (else ~/.cache/ppt_ms) under the hash of its source and flags, so an
edited source is rebuilt and processes share the result.  Loops marked VECTOR_CLONES carry
clones for several x86-64 instruction-set levels (COMPILE_FLAGS), so a cached library also
fits another CPU.
"""
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile

# On x86-64, functions marked VECTOR_CLONES are built for several instruction-set levels and one is
# picked at load time, so a cached library also fits another CPU; elsewhere the mark is empty.
VECTOR_CLONES = ('-DVECTOR_CLONES=__attribute__((target_clones("arch=x86-64-v4","arch=x86-64-v3","default")))'
                 if platform.machine().lower() in ("x86_64", "amd64") else "-DVECTOR_CLONES=")
# -fno-trapping-math lets the compiler vectorise loops with selects and divisions; it changes no value
COMPILE_FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-pthread", "-fno-trapping-math", VECTOR_CLONES)
CACHE_ENV = "PPT_MS_KERNEL_CACHE"


def cache_dir() -> str:
    """Where compiled kernels are kept: $PPT_MS_KERNEL_CACHE, else ~/.cache/ppt_ms."""
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "ppt_ms")


def compiler() -> str:
    return os.environ.get("CXX", "g++")


def compiler_available() -> bool:
    return shutil.which(compiler()) is not None


@functools.lru_cache(maxsize=None)
def compiled_library(source: str, setting: str) -> str:
    """Path of the shared library built from `source`, compiling it if this source has not
    been compiled yet; `setting` names the config key that asked for it, for the errors.
    The library is written under a temporary name and renamed, so processes starting
    together (msrun workers) never load a half-written file."""
    cxx = compiler()
    if not compiler_available():
        raise RuntimeError("%s needs a C++ compiler to build %s, and %r was not found (set CXX, or install "
                           "g++); or set %s: false" % (setting, source, cxx, setting))
    with open(source, "rb") as f:
        digest = hashlib.sha256(f.read() + " ".join((cxx,) + COMPILE_FLAGS).encode()).hexdigest()[:16]
    directory = cache_dir()
    stem = os.path.splitext(os.path.basename(source))[0]
    library = os.path.join(directory, "%s_%s.so" % (stem, digest))
    if os.path.exists(library):
        return library
    os.makedirs(directory, exist_ok=True)
    fd, partial = tempfile.mkstemp(suffix=".so", dir=directory)
    os.close(fd)
    try:
        result = subprocess.run([cxx, *COMPILE_FLAGS, "-o", partial, source], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError("compiling %s for %s failed:\n%s" % (source, setting, result.stderr.strip()))
        os.replace(partial, library)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return library
