"""Minimal Pulumi Python language host (the `pulumirpc.LanguageRuntime` gRPC service).

The upstream Go `pulumi-language-python` cannot be fetched here, so the Pulumi CLI is pointed at a
`pulumi-language-python` launcher that runs this module instead. It covers what a deployment of a
local Python program needs: running the program through the SDK's `pulumi-language-python-exec`
runner, and running Python plugins (policy packs) for the engine. Dependency management is left to
our bootstrap, which provisions the interpreter this host runs under; programs and plugins run with
that same interpreter (`sys.executable`), whatever `virtualenv`/`toolchain` options Pulumi.yaml has.

Launched by the engine as `pulumi-language-python [flags...] [ENGINE_ADDRESS]`; prints its port on
the first line of stdout and serves until it is interrupted, terminated or its stdin pipe closes.
"""

from __future__ import annotations

import io
import json
import os
import platform
import queue
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from importlib import metadata

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2

PLUGIN_VERSION = "3.260.0"

EXEC_SCRIPT_NAME = "pulumi-language-python-exec"

# Set by the launcher when the exec runner does not sit next to `sys.argv[0]`.
EXEC_SCRIPT_ENV = "HIVESTACK_PULUMI_EXEC"

# `pulumi-language-python-exec` exits with this code after it has already reported the error to
# the engine; the engine is then told to bail instead of printing a second, generic error.
EXIT_CODE_ERROR_ALREADY_REPORTED = 32

# Go-style flags that take their value as the next argument (`-tracing X`); every other flag is
# treated as boolean or `-name=value`, so an unknown flag can never swallow the engine address.
FLAGS_WITH_VALUE = frozenset({"tracing", "root", "virtualenv", "typechecker", "toolchain"})

ENGINE_ADDRESS_PATTERN = re.compile(r"^\S+:\d+$")

# Same limit as the engine's own gRPC channels: large stacks send big property maps.
MAX_MESSAGE_BYTES = 400 * 1024 * 1024
GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]

# Each Run and RunPlugin call holds a worker for the child's lifetime (policy packs live for the
# whole deployment), so leave plenty of room for concurrent calls.
MAX_WORKERS = 32

TERMINATE_GRACE_SECONDS = 5.0
READ_CHUNK_BYTES = 64 * 1024


def parse_command_line(argv: list[str]) -> tuple[str | None, str | None]:
    """Return (engine address, tracing endpoint) from the engine-supplied arguments."""
    tracing: str | None = None
    positionals: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg.startswith("-") and len(arg) > 1:
            name, has_value, value = arg.lstrip("-").partition("=")
            if not has_value and name in FLAGS_WITH_VALUE and index + 1 < len(argv):
                index += 1
                value = argv[index]
            if name == "tracing":
                tracing = value or None
        else:
            positionals.append(arg)
        index += 1
    engine_address = positionals[-1] if positionals and ENGINE_ADDRESS_PATTERN.match(positionals[-1]) else None
    return engine_address, tracing


def find_exec_script() -> str:
    """Locate `pulumi-language-python-exec`: explicit env var, next to argv[0], then PATH."""
    configured = os.environ.get(EXEC_SCRIPT_ENV)
    if configured:
        if not os.path.isfile(configured):
            raise FileNotFoundError(f"{EXEC_SCRIPT_ENV}={configured} does not point to a file")
        return configured
    sibling = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), EXEC_SCRIPT_NAME)
    if os.path.isfile(sibling):
        return sibling
    on_path = shutil.which(EXEC_SCRIPT_NAME)
    if on_path:
        return on_path
    raise FileNotFoundError(
        f"cannot find {EXEC_SCRIPT_NAME}: set {EXEC_SCRIPT_ENV}, or install it next to {sys.argv[0]} or on PATH"
    )


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"was terminated by signal {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


class ChildProcesses:
    """Tracks running programs/plugins so Cancel and host shutdown can stop them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self.cancelled = threading.Event()

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._running.add(proc)

    def remove(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._running.discard(proc)

    def terminate_all(self) -> list[threading.Thread]:
        """Start stopping every child; the returned threads finish once they are all gone."""
        with self._lock:
            running = list(self._running)
        return [terminate_in_background(proc) for proc in running]


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the child ignores it, so a stuck child can never hang the host."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=TERMINATE_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()


def terminate_in_background(proc: subprocess.Popen[bytes]) -> threading.Thread:
    # gRPC runs cancellation callbacks on its own threads, which must not block for the grace period.
    thread = threading.Thread(target=terminate, args=(proc,), daemon=True)
    thread.start()
    return thread


def pump(stream: io.BufferedReader, kind: str, sink: queue.Queue[tuple[str, bytes | None]]) -> None:
    """Copy a child's pipe into `sink` as data arrives (not line by line: a plugin's port line must
    reach the engine immediately), then signal EOF with None."""
    try:
        while chunk := stream.read1(READ_CHUNK_BYTES):
            sink.put((kind, chunk))
    finally:
        stream.close()
        sink.put((kind, None))


class LanguageHost(language_pb2_grpc.LanguageRuntimeServicer):
    def __init__(self, engine_address: str | None, tracing: str | None) -> None:
        self.engine_address = engine_address
        self.tracing = tracing
        self.root_directory: str | None = None
        self.program_directory: str | None = None
        self.children = ChildProcesses()

    def Handshake(
        self, request: language_pb2.LanguageHandshakeRequest, context: grpc.ServicerContext
    ) -> language_pb2.LanguageHandshakeResponse:
        if request.engine_address:
            self.engine_address = request.engine_address
        if request.HasField("root_directory"):
            self.root_directory = request.root_directory
        if request.HasField("program_directory"):
            self.program_directory = request.program_directory
        return language_pb2.LanguageHandshakeResponse()

    def GetPluginInfo(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> plugin_pb2.PluginInfo:
        return plugin_pb2.PluginInfo(version=PLUGIN_VERSION)

    # Every provider plugin is installed locally by our bootstrap; reporting none keeps the engine
    # from trying to download anything.
    def GetRequiredPlugins(
        self, request: language_pb2.GetRequiredPluginsRequest, context: grpc.ServicerContext
    ) -> language_pb2.GetRequiredPluginsResponse:
        return language_pb2.GetRequiredPluginsResponse()

    def GetRequiredPackages(
        self, request: language_pb2.GetRequiredPackagesRequest, context: grpc.ServicerContext
    ) -> language_pb2.GetRequiredPackagesResponse:
        return language_pb2.GetRequiredPackagesResponse()

    # The interpreter's environment is provisioned by our bootstrap, never by the CLI.
    def InstallDependencies(
        self, request: language_pb2.InstallDependenciesRequest, context: grpc.ServicerContext
    ) -> Iterator[language_pb2.InstallDependenciesResponse]:
        return iter(())

    def GetProgramDependencies(
        self, request: language_pb2.GetProgramDependenciesRequest, context: grpc.ServicerContext
    ) -> language_pb2.GetProgramDependenciesResponse:
        versions: dict[str, str] = {}
        for dist in metadata.distributions():
            name = dist.metadata["Name"]
            if name:
                versions.setdefault(name, dist.version)
        return language_pb2.GetProgramDependenciesResponse(
            dependencies=[
                language_pb2.DependencyInfo(name=name, version=version)
                for name, version in sorted(versions.items(), key=lambda item: item[0].lower())
            ]
        )

    def About(self, request: language_pb2.AboutRequest, context: grpc.ServicerContext) -> language_pb2.AboutResponse:
        return language_pb2.AboutResponse(executable=sys.executable, version=platform.python_version())

    # The engine calls this on Ctrl-C and before closing the host, in both cases only after the
    # analyzers/providers running under us were stopped, so every remaining child can go.
    def Cancel(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> empty_pb2.Empty:
        self.children.cancelled.set()
        self.children.terminate_all()
        return empty_pb2.Empty()

    def Run(self, request: language_pb2.RunRequest, context: grpc.ServicerContext) -> language_pb2.RunResponse:
        try:
            exec_script = find_exec_script()
        except FileNotFoundError as err:
            return language_pb2.RunResponse(error=str(err))

        info = request.info
        program_directory = info.program_directory or request.pwd or self.program_directory or os.getcwd()
        entry_point = info.entry_point or request.program or "."
        program = os.path.normpath(os.path.join(program_directory, entry_point))
        pwd = request.pwd or program_directory
        root_directory = info.root_directory or self.root_directory or pwd

        argv = [
            sys.executable,
            "-u",
            exec_script,
            f"--monitor={request.monitor_address}",
            f"--project={request.project}",
            f"--root_directory={root_directory}",
            f"--stack={request.stack}",
            f"--pwd={pwd}",
            f"--dry_run={'true' if request.dryRun else 'false'}",
            f"--parallel={request.parallel}",
        ]
        # Optional settings are omitted rather than sent empty so the SDK keeps its own defaults.
        if self.engine_address:
            argv.append(f"--engine={self.engine_address}")
        if request.organization:
            argv.append(f"--organization={request.organization}")
        if self.tracing:
            argv.append(f"--tracing={self.tracing}")
        argv += [program, *request.args]

        # The exec runner loads config from these variables (pulumi.runtime.config). `config` holds
        # the textual values; the deprecated `configPropertyMap` is not needed.
        env = dict(os.environ)
        env["PULUMI_CONFIG"] = json.dumps(dict(request.config))
        env["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(list(request.configSecretKeys))

        # stdout/stderr are inherited: the engine already streams this host's output to the user.
        try:
            proc = subprocess.Popen(argv, cwd=pwd, env=env)
        except OSError as err:
            return language_pb2.RunResponse(error=f"failed to start Python program {program}: {err}")
        self.children.add(proc)
        context.add_callback(lambda: terminate_in_background(proc))
        try:
            returncode = proc.wait()
        finally:
            self.children.remove(proc)

        if returncode == 0:
            return language_pb2.RunResponse()
        if returncode == EXIT_CODE_ERROR_ALREADY_REPORTED:
            return language_pb2.RunResponse(bail=True)
        if self.children.cancelled.is_set():
            return language_pb2.RunResponse(error=f"Python program {program} was cancelled")
        return language_pb2.RunResponse(error=f"Python program {program} {describe_exit(returncode)}")

    def RunPlugin(
        self, request: language_pb2.RunPluginRequest, context: grpc.ServicerContext
    ) -> Iterator[language_pb2.RunPluginResponse]:
        info = request.info
        if info.program_directory:
            plugin_path = os.path.normpath(os.path.join(info.program_directory, info.entry_point or "."))
        elif request.program:
            plugin_path = request.program
        else:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "RunPlugin needs info.program_directory or program")

        if request.kind == "analyzer":
            # The SDK's policy-pack runner takes `[flags] ENGINE_ADDRESS PROGRAM` and sets up the
            # Pulumi runtime before running the pack's __main__.py.
            argv = [sys.executable, "-u", "-m", "pulumi.policy", *request.args, plugin_path]
        else:
            argv = [sys.executable, "-u", plugin_path, *request.args]

        # The engine sends its full environment as KEY=VALUE; overlay it on ours so anything the
        # launcher set for this host survives.
        env = dict(os.environ)
        for entry in request.env:
            key, _, value = entry.partition("=")
            env[key] = value

        try:
            proc = subprocess.Popen(
                argv,
                cwd=request.pwd or None,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as err:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"failed to start Python plugin {plugin_path}: {err}")
        self.children.add(proc)
        # The engine cancels the stream to stop the plugin (e.g. when the deployment ends).
        context.add_callback(lambda: terminate_in_background(proc))

        output: queue.Queue[tuple[str, bytes | None]] = queue.Queue()
        for stream, kind in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
            threading.Thread(target=pump, args=(stream, kind, output), daemon=True).start()

        try:
            open_streams = 2
            while open_streams:
                kind, chunk = output.get()
                if chunk is None:
                    open_streams -= 1
                elif kind == "stdout":
                    yield language_pb2.RunPluginResponse(stdout=chunk)
                else:
                    yield language_pb2.RunPluginResponse(stderr=chunk)
            yield language_pb2.RunPluginResponse(exitcode=proc.wait())
        finally:
            self.children.remove(proc)


def watch_stdin(stop: threading.Event) -> None:
    """The engine holds our stdin pipe open for its lifetime; EOF means it is gone."""
    while os.read(sys.stdin.fileno(), READ_CHUNK_BYTES):
        pass
    stop.set()


def main() -> None:
    engine_address, tracing = parse_command_line(sys.argv[1:])
    host = LanguageHost(engine_address, tracing)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=MAX_WORKERS), options=GRPC_OPTIONS)
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(host, server)
    port = server.add_insecure_port("127.0.0.1:0")
    if port == 0:
        sys.exit("pulumi-language-python: could not bind a port on 127.0.0.1")
    server.start()

    stop = threading.Event()
    # The engine stops plugins with SIGINT to the process group, then SIGKILL after a grace period.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    # Only watch a real pipe: a terminal or /dev/null on stdin says nothing about the engine.
    if stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
        threading.Thread(target=watch_stdin, args=(stop,), daemon=True).start()

    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()

    stop.wait()
    for thread in host.children.terminate_all():
        thread.join()
    server.stop(grace=TERMINATE_GRACE_SECONDS).wait()


if __name__ == "__main__":
    main()
