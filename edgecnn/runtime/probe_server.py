"""The model probe's server: forks one short-lived child per model to load and run it.

Run as a script (``python probe_server.py MODULE``) by :mod:`edgecnn.runtime.modelcheck`, never
imported: it imports only the interpreter module and numpy, once, so each probe costs a
``fork`` (milliseconds) instead of a Python start-up (a second or more on a Raspberry Pi).

Protocol on stdin/stdout, one request at a time: the client writes a JSON line
``{"size", "threads", "timeout", "memory"}`` followed by ``size`` bytes of flatbuffer; the
server answers one JSON line ``{"status": "ok" | "error" | "crash" | "timeout", "detail"}``.
The forked child sets its memory limit, builds the interpreter the way the runtime does
(XNNPACK) and the way ``inspect`` does (builtin kernels only), allocates, reads every tensor
detail and invokes once on zeros, and reports how much its resident memory grew. A native abort kills only the child; the server reports it.
The server exits when its stdin closes.
"""

import sys

if __name__ == "__main__":
    # Run as a script, this folder is sys.path[0], and its types.py would stand in for the
    # standard library's ``types`` (json -> re -> enum import it): the server died at start-up
    # wherever site-packages had not imported ``types`` before, as in a plain venv on a Pi.
    del sys.path[0]

import importlib  # noqa: E402 - after the path fix above
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402


def _run_child(module, flatbuffer: bytes, threads: int, memory: int) -> dict:
    import numpy as np

    mapped = _status_bytes("VmSize")
    start_rss = _status_bytes("VmHWM")
    if memory > 0 and mapped > 0:  # Linux; elsewhere the static arena cap has to do
        # The limit is on address space: what this process already maps, plus the allowance.
        resource.setrlimit(resource.RLIMIT_AS, (mapped + memory, mapped + memory))
    resolver = getattr(module, "OpResolverType", None)
    variants = [{"num_threads": threads}]
    if resolver is not None:
        variants.append({"num_threads": 1, "experimental_op_resolver_type":
                         resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES})
    for kwargs in variants:
        try:
            interp = module.Interpreter(model_content=flatbuffer, **kwargs)
            interp.allocate_tensors()
            interp.get_tensor_details()
            interp.get_output_details()
            interp.get_signature_list()
            for d in interp.get_input_details():
                if np.dtype(d["dtype"]).kind in "biuf":
                    interp.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
            interp.invoke()
        except MemoryError:
            return {"status": "error", "detail": "it needs more memory than the probe allows"}
        except Exception as err:  # noqa: BLE001 - any refusal is reported, not raised
            lines = str(err).strip().splitlines() or [type(err).__name__]
            return {"status": "error", "detail": f"{type(err).__name__}: {lines[0][:300]}"}
    peak = _status_bytes("VmHWM")
    return {"status": "ok", "detail": "", "peak_growth": max(0, peak - start_rss)}


def _status_bytes(key: str) -> int:
    """A ``/proc/self/status`` figure (VmSize: address space, VmHWM: peak RSS); 0 if unknown."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _probe(module, request: dict, flatbuffer: bytes) -> dict:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: load, report, exit without running the server's cleanup
        os.close(read_end)
        code = 0
        try:
            result = _run_child(module, flatbuffer, int(request["threads"]),
                                int(request["memory"]))
            os.write(write_end, json.dumps(result).encode())
        except BaseException:  # noqa: BLE001 - the exit code tells the server
            code = 3
        os._exit(code)
    os.close(write_end)
    deadline = time.monotonic() + float(request["timeout"])
    chunks = []
    timed_out = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([read_end], [], [], left)[0]:
            timed_out = True
            os.kill(pid, signal.SIGKILL)
            break
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if timed_out:
        return {"status": "timeout", "detail": f"no answer within {request['timeout']} s"}
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return {"status": "crash", "detail": f"the interpreter died ({signal.Signals(sig).name})"}
    try:
        return json.loads(b"".join(chunks).decode())
    except ValueError:
        return {"status": "crash", "detail": f"the interpreter exited with code "
                                             f"{os.WEXITSTATUS(status)}"}


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the client decides when the server stops
    module = importlib.import_module(sys.argv[1])
    import numpy  # noqa: F401 - imported once here, not in every child

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(b'{"status": "ready"}\n')
    stdout.flush()
    while True:
        line = stdin.readline()
        if not line:
            return
        request = json.loads(line)
        flatbuffer = stdin.read(int(request["size"]))
        result = _probe(module, request, flatbuffer)
        stdout.write(json.dumps(result).encode() + b"\n")
        stdout.flush()


if __name__ == "__main__":
    main()
