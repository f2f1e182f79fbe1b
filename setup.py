"""Build: Cython extensions of ``alerts_core`` and the protobuf/gRPC modules of ``proto/``.

Generated code is never edited by hand and never committed:

* ``proto/alerts/v1/*.proto`` -> ``alerts/v1/*_pb2.py``, ``*_pb2.pyi``, ``*_pb2_grpc.py``
  (protoc from ``grpcio-tools``); the ``google/api`` and ``google/rpc`` protos are
  copied out of the installed ``googleapis-common-protos`` wheel into the
  git-ignored ``proto/include/`` so that protoc, ``buf`` and the Node.js client
  all read the same files. No step touches the network.
* ``alerts_core/*.pyx`` -> C extensions (warnings are errors).

``ALERTS_CORE_ANNOTATE=1`` writes Cython's HTML annotation next to each ``.pyx``;
``ALERTS_CORE_PROFILE=1`` builds with profiling hooks and line tracing.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from pathlib import Path
from typing import ClassVar

from setuptools import Command, Extension, setup

ROOT = Path(__file__).resolve().parent
PROTO_ROOT = ROOT / "proto"
PROTO_INCLUDE = PROTO_ROOT / "include"
GENERATED = ROOT / "alerts" / "v1"


def _copy_google_protos() -> None:
    """Copy google/api and google/rpc .proto files from googleapis-common-protos."""
    import google.api.annotations_pb2
    import google.rpc.status_pb2  # noqa: F401

    for sub in ("api", "rpc", "type"):
        module = __import__(f"google.{sub}", fromlist=["__path__"])
        src_dir = Path(next(iter(module.__path__)))
        dst_dir = PROTO_INCLUDE / "google" / sub
        dst_dir.mkdir(parents=True, exist_ok=True)
        for proto in src_dir.glob("*.proto"):
            shutil.copyfile(proto, dst_dir / proto.name)


def generate_protos() -> None:
    """Run protoc over proto/alerts/v1 into alerts/v1 (idempotent)."""
    import grpc_tools
    from grpc_tools import protoc

    _copy_google_protos()
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    sources = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "alerts").rglob("*.proto"))
    if not sources:
        raise RuntimeError("no .proto files under proto/alerts")
    GENERATED.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{PROTO_INCLUDE}",
        f"-I{well_known}",
        f"--python_out={ROOT}",
        f"--pyi_out={ROOT}",
        f"--grpc_python_out={ROOT}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))
    (GENERATED / "__init__.py").write_text(
        '"""Generated protobuf and gRPC modules of package alerts.v1 (do not edit)."""\n'
    )


class GenerateProtos(Command):
    """``python setup.py protos``: only regenerate alerts/v1 from proto/."""

    description = "generate the protobuf/gRPC modules"
    user_options: ClassVar[list] = []

    def initialize_options(self) -> None:
        pass

    def finalize_options(self) -> None:
        pass

    def run(self) -> None:
        generate_protos()


def extensions() -> list[Extension]:
    import numpy
    from Cython.Build import cythonize

    profile = os.environ.get("ALERTS_CORE_PROFILE") == "1"
    directives = {
        "language_level": 3,
        "boundscheck": False,
        "wraparound": False,
        "cdivision": True,
        "initializedcheck": False,
        "nonecheck": False,
        "embedsignature": True,
        "warn.unused": False,
        "profile": profile,
        "linetrace": profile,
    }
    compile_args = ["-O3", "-Werror", "-Wno-unused-function", "-Wno-unreachable-code",
                    "-fno-strict-aliasing"]
    if sys.platform.startswith("linux"):
        compile_args.append("-Wno-maybe-uninitialized")
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
    if profile:
        macros.append(("CYTHON_TRACE_NOGIL", "1"))
    exts = [
        Extension(
            f"alerts_core.{Path(pyx).stem}",
            [pyx],
            include_dirs=[numpy.get_include()],
            extra_compile_args=compile_args,
            define_macros=macros,
        )
        for pyx in sorted(glob.glob("alerts_core/*.pyx"))
    ]
    return cythonize(
        exts,
        compiler_directives=directives,
        annotate=os.environ.get("ALERTS_CORE_ANNOTATE") == "1",
        quiet=True,
    )


# Generated before setuptools looks for packages, so alerts.v1 is found and shipped
# by every kind of build (wheel, sdist, editable).
generate_protos()

setup(
    ext_modules=[] if sys.argv[1:] == ["protos"] else extensions(),
    cmdclass={"protos": GenerateProtos},
)
