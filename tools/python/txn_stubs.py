"""Python gRPC stubs for txn.v1, compiled from proto/ on first use (Debian's protoc and
grpc_python_plugin, python3-grpcio). Import this module, then `from txn.v1 import ...`."""
import glob
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("TXCOORD_BUILD_DIR", os.path.join(ROOT, "build"))


def generate(out=None):
    out = out or os.path.join(BUILD, "pygen")
    stamp = os.path.join(out, ".stamp")
    protos = sorted(glob.glob(os.path.join(ROOT, "proto", "txn", "v1", "*.proto")))
    newest = max(os.path.getmtime(p) for p in protos)
    if not os.path.exists(stamp) or os.path.getmtime(stamp) < newest:
        os.makedirs(out, exist_ok=True)
        plugin = shutil.which("grpc_python_plugin")
        if plugin is None:
            raise RuntimeError("grpc_python_plugin not found: apt-get install protobuf-compiler-grpc")
        subprocess.run(["protoc", "-I", os.path.join(ROOT, "proto"), "--python_out", out,
                        "--grpc_python_out", out, f"--plugin=protoc-gen-grpc_python={plugin}"]
                       + protos, check=True)
        for d in ("txn", os.path.join("txn", "v1")):
            open(os.path.join(out, d, "__init__.py"), "a").close()
        open(stamp, "w").close()
    if out not in sys.path:
        sys.path.insert(0, out)


generate()
