"""The network of one lab stack: a core router namespace, one router namespace per data center, host namespaces.

Nothing is added to the root namespace's interfaces or routes, so two stacks with identical subnets coexist. This
machine reaches hosts through the core namespace (`mgmt_command`), whose packets to hosts leave from the management
address. Same-city latency comes from the NFQUEUE delayer (`hivestack.lab.delayer`) in the core namespace; hosts
reach apt-cacher-ng, shared by all stacks in the root namespace, at http://100.64.0.1:3142 through a UNIX-socket
bridge (a path socket crosses network namespaces, the root namespace's loopback does not).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hivestack.lab.names import NETNS_PREFIX, RUN_ROOT, LabNames

MGMT_ADDRESS = "100.64.0.1"  # where management (SSH, Ansible) and the apt proxy come from, as hosts see it
APT_PROXY_PORT = 3142
WHEEL_PORT = 3141  # the hosts' PyPI: wheels built on this machine (`pip wheel -w WHEELHOUSE ...`), served flat
WHEELHOUSE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hivestack" / "wheels"
UPLINK = "uplink"  # a router's interface towards the core
BRIDGE = "br0"
DELAY_CHAIN = "HSDELAY"
DELAY_QUEUE = 0  # NFQUEUE numbers are per network namespace

_LINK_SPACE = ipaddress.IPv4Network("100.64.0.0/10")
_RESERVED = ipaddress.IPv4Network("10.255.0.0/16")  # the machine's DNS resolver
_NETNS_DIR = Path("/run/netns")
# A stack's namespaces start with its tag (LabNames.tag: the prefix and hex digits), then "-".
_LAB_NETNS = re.compile(re.escape(NETNS_PREFIX) + f"[0-9a-f]{{{len(LabNames('').tag) - len(NETNS_PREFIX)}}}-")
_APT_DIR = RUN_ROOT / "apt-cacher-ng"
_WHEEL_DIR = RUN_ROOT / "wheels"
_DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
_STOP_TIMEOUT_S = 3.0
_START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class DcSpec:
    name: str
    subnet: ipaddress.IPv4Network
    latency_ms: float  # one way, from the DC to the city core


def create_network(names: LabNames, dcs: list[DcSpec], latency: bool) -> None:
    """Build the stack's network, or bring an existing one back to this description."""
    _validate(dcs)
    _state_dir(names).mkdir(parents=True, exist_ok=True)
    core = names.core_ns
    _ensure_netns(core)
    _batch(core, ["link set dev lo up", f"addr replace {MGMT_ADDRESS}/32 dev lo"])
    for index, dc in enumerate(dcs):
        router = names.router_ns(index)
        _ensure_netns(router)
        link = _core_link(index)
        addrs = _addresses(router)
        cmds = ["link set dev lo up"]
        if UPLINK not in addrs:
            # The core's end may outlive a deleted router namespace for a moment (namespaces die asynchronously).
            _delete_link(core, _core_port(index))
            # Made inside the two namespaces at once: no name in the root namespace that another stack could clash with.
            cmds.append(f"link add name {UPLINK} type veth peer name {_core_port(index)} netns {core}")
        if BRIDGE not in addrs:
            cmds.append(f"link add name {BRIDGE} type bridge")
        cmds += _set_address(addrs, BRIDGE, f"{dc.subnet[1]}/{dc.subnet.prefixlen}")
        cmds += _set_address(addrs, UPLINK, f"{link[2]}/{link.prefixlen}")
        cmds += [f"link set dev {BRIDGE} up", f"link set dev {UPLINK} up", f"route replace default via {link[1]}"]
        _batch(router, cmds)
        _enable_forwarding(router)
    core_addrs = _addresses(core)  # read after the routers: their veths may be new
    core_cmds: list[str] = []
    for index, dc in enumerate(dcs):
        link = _core_link(index)
        core_cmds += _set_address(core_addrs, _core_port(index), f"{link[1]}/{link.prefixlen}")
        core_cmds += [
            f"link set dev {_core_port(index)} up",
            # Packets the core sends to hosts leave from the management address: one address for hosts' firewalls.
            f"route replace {dc.subnet} via {link[2]} dev {_core_port(index)} src {MGMT_ADDRESS}",
        ]
    _batch(core, core_cmds)
    _enable_forwarding(core)
    for index in router_indexes(names):
        if index >= len(dcs):
            _run(["ip", "netns", "delete", names.router_ns(index)])
    _delayer_config(names).write_text(
        json.dumps({"queue": DELAY_QUEUE, "latency_ms": {_core_port(i): dc.latency_ms for i, dc in enumerate(dcs)}})
    )
    set_latency(names, latency)
    ensure_apt_proxy()
    ensure_wheel_server()
    _start_bridge(names, "apt", APT_PROXY_PORT)
    _start_bridge(names, "wheels", WHEEL_PORT)


def delete_network(names: LabNames) -> None:
    """Stop the stack's network processes and delete every namespace of the stack."""
    state = _state_dir(names)
    for pidfile in sorted(state.glob("*.pid")) if state.exists() else []:
        _stop(pidfile)
    if network_exists(names):
        # Only this module starts processes in the core namespace: catch any whose pid file was lost.
        for pid in _run(["ip", "netns", "pids", names.core_ns]).split():
            _terminate(int(pid), group=False)
    for ns in _namespaces():
        if ns.startswith(f"{names.tag}-"):
            _run(["ip", "netns", "delete", ns])
    if state.exists():
        for path in state.iterdir():
            path.unlink()
        state.rmdir()
    if names.run_dir.exists() and not any(names.run_dir.iterdir()):
        names.run_dir.rmdir()


def network_exists(names: LabNames) -> bool:
    return names.core_ns in _namespaces()


def list_lab_namespaces() -> list[str]:
    """Every network namespace made by any lab stack, for `hivestack lab clean`."""
    return sorted(ns for ns in _namespaces() if _LAB_NETNS.match(ns))


def router_indexes(names: LabNames) -> list[int]:
    """Indexes of the DC router namespaces that exist now."""
    pattern = re.compile(re.escape(names.router_ns(0).removesuffix("0")) + r"(\d+)$")
    return sorted(int(m.group(1)) for ns in _namespaces() if (m := pattern.match(ns)))


def mgmt_command(names: LabNames) -> list[str]:
    """Prefix that runs a command in the core namespace, from where every host of the stack is reachable."""
    return ["ip", "netns", "exec", names.core_ns]


def attach_host(names: LabNames, dc_index: int, host: str, address: ipaddress.IPv4Address | str, prefixlen: int) -> str:
    """Give a host its namespace with `eth0` on the DC's bridge; returns the namespace's name."""
    if re.fullmatch(r"core|r\d+", host):
        raise ValueError(f"host name {host!r} clashes with the lab's router namespaces")
    ns = names.host_ns(host)
    router = names.router_ns(dc_index)
    interface = ipaddress.IPv4Interface(f"{address}/{prefixlen}")
    _ensure_netns(ns)
    addrs = _addresses(ns)
    port = _host_port(host)
    if "eth0" not in addrs:
        _delete_link(router, port)  # the other half of a pair whose host namespace was recreated
        _batch(router, [f"link add name {port} type veth peer name eth0 netns {ns}"])
    _batch(router, [f"link set dev {port} alias {host} master {BRIDGE} up"])
    _batch(
        ns,
        [
            "link set dev lo up",
            *_set_address(addrs, "eth0", interface.with_prefixlen),
            "link set dev eth0 up",
            f"route replace default via {interface.network[1]}",
        ],
    )
    return ns


def detach_host(names: LabNames, host: str) -> None:
    ns = names.host_ns(host)
    if ns not in _namespaces():
        return
    # Deleting eth0 first removes the bridge port even while a container still holds the namespace.
    if "eth0" in _addresses(ns):
        _batch(ns, ["link delete dev eth0"])
    _run(["ip", "netns", "delete", ns])


def set_latency(names: LabNames, enabled: bool) -> None:
    """Switch the same-city latency between DCs on or off while the network runs."""
    core = names.core_ns
    if enabled:
        argv = [sys.executable, "-m", "hivestack.lab.delayer", "--config", str(_delayer_config(names))]
        _start(_state_dir(names), "delayer", argv, core, ready=_queue_bound)
        rule = f"-i dc+ -o dc+ -j NFQUEUE --queue-num {DELAY_QUEUE} --queue-bypass"
        # Management traffic is local to the core (INPUT/OUTPUT), so hooking FORWARD leaves it undelayed.
        replace_chain(core, DELAY_CHAIN, ["FORWARD"], [rule])
    else:
        remove_chain(core, DELAY_CHAIN, ["FORWARD"])
        _stop(_state_dir(names) / "delayer.pid")


def replace_chain(ns: str, chain: str, hooks: list[str], rules: list[str]) -> None:
    """Make `chain` (filter table) hold exactly `rules`, jumped to first from each hook, in one atomic step."""
    current = run_in_netns(ns, ["iptables", "-w", "-S"]).splitlines()
    lines = ["*filter", f":{chain} - [0:0]"]  # declares the chain, or flushes it (--noflush keeps the rest)
    lines += [f"-I {hook} -j {chain}" for hook in hooks if f"-A {hook} -j {chain}" not in current]
    lines += [f"-A {chain} {rule}" for rule in rules]
    run_in_netns(ns, ["iptables-restore", "-w", "--noflush"], "\n".join([*lines, "COMMIT", ""]))


def remove_chain(ns: str, chain: str, hooks: list[str]) -> None:
    current = run_in_netns(ns, ["iptables", "-w", "-S"]).splitlines()
    if f"-N {chain}" not in current:
        return
    lines = ["*filter", f":{chain} - [0:0]"]
    lines += [f"-D {hook} -j {chain}" for hook in hooks if f"-A {hook} -j {chain}" in current]
    lines += [f"-X {chain}", "COMMIT", ""]
    run_in_netns(ns, ["iptables-restore", "-w", "--noflush"], "\n".join(lines))


def run_in_netns(ns: str, argv: list[str], stdin: str | None = None) -> str:
    return _run(["ip", "netns", "exec", ns, *argv], stdin)


def ensure_apt_proxy() -> None:
    """Run apt-cacher-ng once for all stacks on 127.0.0.1:3142, without systemd; its cache outlives the stacks."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hivestack" / "apt-cacher-ng"
    cache.mkdir(parents=True, exist_ok=True)
    (_APT_DIR / "log").mkdir(parents=True, exist_ok=True)
    config = _APT_DIR / "acng.conf"
    wanted = _acng_config(cache)
    pidfile = _APT_DIR / "apt-cacher-ng.pid"
    running = _recorded_pid(pidfile) is not None
    if running and config.exists() and config.read_text() == wanted:
        return
    if running:
        _stop(pidfile)
    elif _port_open("127.0.0.1", APT_PROXY_PORT):
        raise RuntimeError(f"127.0.0.1:{APT_PROXY_PORT} is taken by a process that is not the lab's apt-cacher-ng")
    config.write_text(wanted)
    _start(
        _APT_DIR,
        "apt-cacher-ng",
        ["/usr/sbin/apt-cacher-ng", "-c", str(_APT_DIR)],
        ready=lambda _: _port_open("127.0.0.1", APT_PROXY_PORT),
    )


def ensure_wheel_server() -> None:
    """Serve the wheelhouse once for all stacks on 127.0.0.1:3141; hosts use it as pip's only index (find-links)."""
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    _WHEEL_DIR.mkdir(parents=True, exist_ok=True)
    if _recorded_pid(_WHEEL_DIR / "http.pid") is None and _port_open("127.0.0.1", WHEEL_PORT):
        raise RuntimeError(f"127.0.0.1:{WHEEL_PORT} is taken by a process that is not the lab's wheel server")
    argv = [sys.executable, "-m", "http.server", str(WHEEL_PORT), "--bind", "127.0.0.1", "--directory", str(WHEELHOUSE)]
    _start(_WHEEL_DIR, "http", argv, ready=lambda _: _port_open("127.0.0.1", WHEEL_PORT))


def stop_shared_services() -> None:
    """Stop the apt proxy and the wheel server every stack shares (their caches stay)."""
    _stop(_APT_DIR / "apt-cacher-ng.pid")
    _stop(_WHEEL_DIR / "http.pid")


def _acng_config(cache: Path) -> str:
    uris = [
        uri for line in _DEBIAN_SOURCES.read_text().splitlines() if line.startswith("URIs:") for uri in line.split()[1:]
    ]
    remaps = []
    for name, suffix, extra in (("debrep", "/debian", "file:deb_mirror*.gz "), ("secdeb", "/debian-security", "")):
        backends = [uri.rstrip("/") for uri in uris if uri.rstrip("/").endswith(suffix)]
        if backends:
            # Requests for this repository under the names apt uses here go to the mirror this machine uses, not
            # to the package's default remap target, which does not resolve here.
            prefixes = " ".join(b.split("://", 1)[1] for b in backends)
            remaps.append(f"Remap-{name}: {extra}{suffix} {prefixes} ; {' '.join(b + '/' for b in backends)}")
    if not remaps:
        raise RuntimeError(f"no Debian mirror in {_DEBIAN_SOURCES}")
    # Other repositories are not remapped: apt-cacher-ng fetches those URLs as given (plain HTTP only).
    return "\n".join(
        [
            f"CacheDir: {cache}",
            f"LogDir: {_APT_DIR / 'log'}",
            "SupportDir: /usr/lib/apt-cacher-ng",
            f"Port: {APT_PROXY_PORT}",
            "BindAddress: 127.0.0.1",
            f"SocketPath: {_APT_DIR / 'socket'}",
            # Not self-daemonizing: started like the lab's other processes, with the pid recorded by the lab.
            "ForeGround: 1",
            "ReportPage: acng-report.html",
            *remaps,
            "",
        ]
    )


def _start_bridge(names: LabNames, label: str, port: int) -> None:
    """Make 127.0.0.1:port of this machine answer at MGMT_ADDRESS:port in the stack's core namespace.

    The core cannot reach this machine's loopback; a UNIX socket crosses namespaces."""
    state = _state_dir(names)
    sock = state / f"{label}.sock"
    upstream = f"TCP:127.0.0.1:{port}"
    _start(
        state,
        f"{label}-root",
        ["socat", f"UNIX-LISTEN:{sock},fork,unlink-early", upstream],
        ready=lambda _: sock.exists(),
    )
    listen = f"TCP-LISTEN:{port},bind={MGMT_ADDRESS},fork,reuseaddr"
    _start(state, f"{label}-core", ["socat", listen, f"UNIX-CONNECT:{sock}"], names.core_ns)


def _start(
    state: Path, name: str, argv: list[str], ns: str | None = None, ready: Callable[[int], bool] | None = None
) -> None:
    """Start a long-running process (in `ns`) unless it already runs; record its pid and command line in `state`.

    Its pid is recorded, so it is stopped by pid, never by name; `ready` says when it serves (default: it runs).
    """
    pidfile = state / f"{name}.pid"
    if _recorded_pid(pidfile) is not None:
        return
    prefix = ["ip", "netns", "exec", ns] if ns else []
    with (state / f"{name}.log").open("ab") as log:
        # A session of its own: it outlives the caller (a CLI run), and stopping its group ends socat's forks too.
        process = subprocess.Popen(
            [*prefix, *argv], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    # `ip netns exec` execs the command, so the pid is the command's and its command line is `argv`.
    pidfile.write_text(json.dumps({"pid": process.pid, "argv": argv}))
    is_ready = ready or (lambda pid: _cmdline(pid) == argv)
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not is_ready(process.pid):
        if process.poll() is not None:
            tail = (state / f"{name}.log").read_text()[-2000:]
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} not ready after {_START_TIMEOUT_S} s; see {state / f'{name}.log'}")
        time.sleep(0.01)


def _queue_bound(pid: int) -> bool:
    queues = Path(f"/proc/{pid}/net/netfilter/nfnetlink_queue")
    return queues.exists() and any(line.split()[0] == str(DELAY_QUEUE) for line in queues.read_text().splitlines())


def _stop(pidfile: Path) -> None:
    pid = _recorded_pid(pidfile)
    if pid is not None:
        _terminate(pid)
    pidfile.unlink(missing_ok=True)


def _recorded_pid(pidfile: Path) -> int | None:
    """The recorded pid if that process still runs the recorded command (a pid can be reused)."""
    if not pidfile.exists():
        return None
    record = json.loads(pidfile.read_text())
    return record["pid"] if _cmdline(record["pid"]) == record["argv"] else None


def _cmdline(pid: int) -> list[str] | None:
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    if status.rsplit(")", 1)[1].split()[0] == "Z":
        return None
    return raw.decode(errors="replace").split("\0")[:-1]


def _terminate(pid: int, group: bool = True) -> None:
    """SIGTERM (the delayer then releases the packets it holds), SIGKILL if it lingers; reap it if it is our child."""
    kill = os.killpg if group else os.kill
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:
                if _cmdline(pid) is None:
                    return
            time.sleep(0.01)


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _validate(dcs: list[DcSpec]) -> None:
    if not 1 <= len(dcs) <= 254:
        raise ValueError(f"a lab stack has 1 to 254 data centers, not {len(dcs)}")
    for i, dc in enumerate(dcs):
        if dc.subnet.prefixlen > 30:
            raise ValueError(f"DC {dc.name}: subnet {dc.subnet} has no room for hosts")
        for other in (_RESERVED, _LINK_SPACE, *(d.subnet for d in dcs[:i])):
            if dc.subnet.overlaps(other):
                raise ValueError(f"DC {dc.name}: subnet {dc.subnet} overlaps {other}")


def _core_link(dc_index: int) -> ipaddress.IPv4Network:
    """Link net between the core (.1) and DC `dc_index`'s router (.2)."""
    return ipaddress.IPv4Network(f"100.64.{dc_index + 1}.0/30")


def _core_port(dc_index: int) -> str:
    return f"dc{dc_index}"


def _host_port(host: str) -> str:
    """The router's end of a host's veth; interface names are short, so hashed (the alias carries the host name)."""
    return "h" + hashlib.sha1(host.encode()).hexdigest()[:12]


def _state_dir(names: LabNames) -> Path:
    return names.run_dir / "network"


def _delayer_config(names: LabNames) -> Path:
    return _state_dir(names) / "delayer.json"


def _namespaces() -> list[str]:
    return os.listdir(_NETNS_DIR) if _NETNS_DIR.is_dir() else []


def _ensure_netns(ns: str) -> None:
    if ns not in _namespaces():
        _run(["ip", "netns", "add", ns])


def _enable_forwarding(ns: str) -> None:
    run_in_netns(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])


def _addresses(ns: str) -> dict[str, list[str]]:
    """IPv4 addresses per interface in `ns`."""
    links = json.loads(_run(["ip", "-n", ns, "-j", "addr", "show"]))
    return {
        link["ifname"]: [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a["family"] == "inet"]
        for link in links
    }


def _set_address(current: dict[str, list[str]], dev: str, cidr: str) -> list[str]:
    if current.get(dev) == [cidr]:
        return []
    return [f"addr flush dev {dev}", f"addr add {cidr} dev {dev}"]


def _delete_link(ns: str, dev: str) -> None:
    result = subprocess.run(["ip", "-n", ns, "link", "delete", "dev", dev], capture_output=True, text=True, check=False)
    if result.returncode != 0 and "Cannot find device" not in result.stderr:
        raise RuntimeError(f"deleting {dev} in {ns}: {result.stderr.strip()}")


def _batch(ns: str, commands: list[str]) -> None:
    if commands:
        _run(["ip", "-n", ns, "-batch", "-"], "\n".join(commands) + "\n")


def _run(argv: list[str], stdin: str | None = None) -> str:
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout
