"""Typed model of a topology file: the single source of truth every layer is derived from.

Only shape and local consistency live here (types, ranges, names that must exist). Rules about surviving the
loss of a data center live in `survivability`, because the policy pack applies them to declared resources too.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hivestack.topology.cell_engine import CELL_ENGINE_RTO_FLOOR

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, description="lower-case letters, digits and '-'")]
# Numbers and flags must be written as YAML numbers and booleans: pydantic's lax mode would read "3", true and 3.0
# as a count of 3, 1 and 3. The upper bounds below sit far beyond any platform; they keep every sum and product of
# the plan finite (a 400-digit count or a cost of 1e308 would overflow its floats).
Integer = Annotated[int, Field(strict=True)]
Number = Annotated[float, Field(strict=True)]
Flag = Annotated[bool, Field(strict=True)]

# Sizes are bounded before any work is done on them: hosts are expanded from `count`, and every check is linear in
# these. The 1,000-server sample has 6 DCs of at most 6 pools.
MAX_DATACENTERS = 64
MAX_POOLS_PER_DC = 64
MAX_SERVERS = 100_000
# Address space no DC can number its hosts in: "this network", the hosts' own loopback, link-local, multicast groups
# and the reserved class E (with the broadcast address).
UNUSABLE_SUBNETS = {
    "'this network'": ipaddress.IPv4Network("0.0.0.0/8"),
    "loopback": ipaddress.IPv4Network("127.0.0.0/8"),
    "link-local": ipaddress.IPv4Network("169.254.0.0/16"),
    "multicast": ipaddress.IPv4Network("224.0.0.0/4"),
    "reserved": ipaddress.IPv4Network("240.0.0.0/4"),
}


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a topology must not silently drop a setting. Numbers are finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Arch(StrEnum):
    arm64 = "arm64"
    amd64 = "amd64"

    @property
    def machine(self) -> str:
        """The name `uname -m` reports for this architecture."""
        return {"arm64": "aarch64", "amd64": "x86_64"}[self.value]


class Role(StrEnum):
    etcd = "etcd"
    db = "db"
    gateway = "gateway"
    app = "app"
    storage = "storage"
    k8s_control = "k8s-control"
    k8s_worker = "k8s-worker"


class RoutingKey(StrEnum):
    customer_id = "customer-id"
    hash_slot = "hash-slot"


class Objectives(Strict):
    rto_seconds: Number = Field(
        gt=0, le=86_400, description="every cell writable again within this after losing one DC"
    )
    rpo_writes: Integer = Field(ge=0, le=10**9, description="acknowledged writes that may be lost when one DC is lost")
    peak_transactions_per_day: Integer = Field(gt=0, le=10**13)
    peak_factor: Number = Field(
        default=3.0, ge=1, le=1000, description="peak second's rate divided by the peak day's average rate"
    )
    accounts: Integer = Field(gt=0, le=10**12)
    latency_budget_ms: Number = Field(
        gt=0, le=1000, description="largest one-way latency allowed between same-city DCs"
    )

    @field_validator("rto_seconds")
    @classmethod
    def _within_engine_reach(cls, rto: float) -> float:
        floor = CELL_ENGINE_RTO_FLOOR
        if rto < floor.seconds:
            raise ValueError(f"{rto:g} s is out of reach: {floor.describe()} (valid: at least {floor.seconds:g})")
        return rto

    @property
    def peak_tps(self) -> float:
        return self.peak_transactions_per_day / 86_400 * self.peak_factor


class RoleCapacity(Strict):
    tps_per_core: Number = Field(gt=0, le=10**7, description="transactions per second one core of this role carries")


class Capacity(Strict):
    max_utilization: Number = Field(default=0.7, gt=0, le=1)
    roles: dict[Role, RoleCapacity] = Field(
        default_factory=dict, description="roles whose servers carry the transaction load"
    )


class ServerPool(Strict):
    name: Name
    roles: list[Role] = Field(min_length=1, max_length=len(Role))
    arch: Arch
    count: Integer = Field(ge=1, le=MAX_SERVERS)
    cpu: Integer = Field(ge=1, le=1024, description="cores per server")
    memory_gb: Number = Field(gt=0, le=65_536, description="memory per server")
    unit_cost: Number = Field(ge=0, le=10**9, description="cost of one server per year, in the topology's currency")
    pods: Integer = Field(default=110, ge=1, le=10_000, description="pods one Kubernetes node of this pool may run")
    simulated: Flag = Field(
        default=False,
        description="Kubernetes workers simulated by their DC's kwok controller (no kubelet, no containers): nodes "
        "with the pool's labels and capacity but no server behind them, never made or reached over SSH",
    )

    @model_validator(mode="after")
    def _roles_unique(self) -> Self:
        if len(set(self.roles)) != len(self.roles):
            raise ValueError(f"roles repeat in {[r.value for r in self.roles]}")
        if self.simulated and self.roles != [Role.k8s_worker]:
            # Only a Kubernetes node can be simulated: every other role needs a server to run its service on.
            raise ValueError(f"a simulated pool has role k8s-worker only, not {[r.value for r in self.roles]}")
        return self


class DataCenter(Strict):
    name: Name
    subnet: ipaddress.IPv4Network
    latency_ms: Number = Field(default=0.5, ge=0, le=1000, description="one-way latency from this DC to the city core")
    remote: Flag = Field(default=False, description="a disaster-recovery site in another city")
    pools: list[ServerPool] = Field(default_factory=list, max_length=MAX_POOLS_PER_DC)

    @field_validator("subnet")
    @classmethod
    def _can_number_hosts(cls, subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        for kind, unusable in UNUSABLE_SUBNETS.items():
            if subnet.overlaps(unusable):
                raise ValueError(f"{subnet} is in {kind} address space ({unusable}), where hosts cannot be numbered")
        return subnet

    @property
    def same_city(self) -> bool:
        return not self.remote


class CustomerRange(Strict):
    """Half-open range [start, end) of routing keys."""

    start: Integer = Field(ge=0, le=2**32)
    end: Integer = Field(gt=0, le=2**32)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start})")
        return self


class Cell(Strict):
    name: Name
    home: Name = Field(description="the DC whose member writes while it is healthy")
    replicas: list[Name] = Field(
        max_length=MAX_DATACENTERS - 1,
        description="other same-city DCs holding a synchronous member, in failover order",
    )
    dr: Name | None = Field(default=None, description="remote DC holding an asynchronous copy")
    range: CustomerRange
    accounts: Integer = Field(gt=0, le=10**12)

    @property
    def member_dcs(self) -> list[str]:
        """DCs of the synchronous members, writer first then backups in failover order."""
        return [self.home, *self.replicas]


class Routing(Strict):
    key: RoutingKey = RoutingKey.customer_id
    # Gateways look customers up in an IPv4-keyed map (a range is a few CIDR prefixes): keys fit in 32 bits.
    space: Integer = Field(gt=0, le=2**32, description="routing keys run from 0 to space - 1")


class Currency(StrEnum):
    cny = "CNY"
    usd = "USD"
    eur = "EUR"


class Management(Strict):
    """Where operators come from: the hosts accept SSH from these only."""

    networks: list[ipaddress.IPv4Network] = Field(default_factory=list, description="management networks (CIDRs)")
    bastions: list[ipaddress.IPv4Address] = Field(default_factory=list, description="bastion hosts' addresses")


class Topology(Strict):
    name: Name
    city: Name
    currency: Currency = Currency.cny
    objectives: Objectives
    capacity: Capacity = Field(default_factory=Capacity)
    routing: Routing
    datacenters: list[DataCenter] = Field(min_length=1, max_length=MAX_DATACENTERS)
    cells: list[Cell] = Field(min_length=1, max_length=100)  # ports.MAX_CELLS: per-cell port blocks
    management: Management | None = Field(
        default=None, description="SSH sources; without it (and outside the lab) hosts accept SSH from anywhere"
    )

    @model_validator(mode="after")
    def _names_and_references(self) -> Self:
        _require_unique([(f"datacenters.{i}.name", dc.name) for i, dc in enumerate(self.datacenters)])
        _require_unique(
            [
                (f"datacenters.{i}.pools.{j}.name", p.name)
                for i, dc in enumerate(self.datacenters)
                for j, p in enumerate(dc.pools)
            ]
        )
        _require_unique([(f"cells.{i}.name", c.name) for i, c in enumerate(self.cells)])
        _require_servers_bounded(self.datacenters)
        _require_disjoint_subnets(self.datacenters)
        known = {dc.name: dc for dc in self.datacenters}
        for i, cell in enumerate(self.cells):
            for field, dc_name in [
                ("home", cell.home),
                *[(f"replicas.{j}", r) for j, r in enumerate(cell.replicas)],
            ]:
                dc = known.get(dc_name)
                if dc is None:
                    raise LocatedValueError(f"cells.{i}.{field}", f"unknown data center {dc_name!r}", sorted(known))
                if dc.remote:
                    raise LocatedValueError(
                        f"cells.{i}.{field}",
                        f"{dc_name!r} is a remote site: synchronous members must be in the same city",
                        [d for d in sorted(known) if known[d].same_city],
                    )
            if len(set(cell.member_dcs)) != len(cell.member_dcs):
                raise LocatedValueError(
                    f"cells.{i}.replicas", f"a DC appears twice in {cell.member_dcs}", ["one member per DC"]
                )
            if cell.dr is not None and (cell.dr not in known or not known[cell.dr].remote):
                remotes = sorted(d for d in known if known[d].remote)
                raise LocatedValueError(f"cells.{i}.dr", f"{cell.dr!r} is not a remote data center", remotes)
            if cell.range.end > self.routing.space:
                raise LocatedValueError(
                    f"cells.{i}.range.end",
                    f"{cell.range.end} is beyond the routing space",
                    [f"at most {self.routing.space}"],
                )
            ids = cell.range.end - cell.range.start
            if self.routing.key is RoutingKey.customer_id and cell.accounts > ids:
                # Every account is a customer id the gateways route to this cell: they must fit in its range.
                raise LocatedValueError(
                    f"cells.{i}.accounts",
                    f"{cell.accounts:,} accounts do not fit in the {ids:,} customer ids of the cell's range",
                    [f"at most {ids:,}, or a wider range"],
                )
        for r in self.capacity.roles:
            if not any(r in p.roles for p in self.pools):
                raise LocatedValueError(f"capacity.roles.{r.value}", "no server pool has this role", [])
        return self

    @property
    def pools(self) -> list[ServerPool]:
        return [p for dc in self.datacenters for p in dc.pools]

    @property
    def same_city_dcs(self) -> list[DataCenter]:
        return [dc for dc in self.datacenters if dc.same_city]

    def datacenter(self, name: str) -> DataCenter:
        return next(dc for dc in self.datacenters if dc.name == name)


class LocatedValueError(ValueError):
    """A validation error that knows where in the document it belongs (relative to the model it was raised in)."""

    def __init__(self, path: str, message: str, valid: list[str]) -> None:
        hint = f" (valid: {', '.join(valid)})" if valid else ""
        super().__init__(f"{message}{hint}")
        self.path = path
        self.message = f"{message}{hint}"


def _require_unique(named: list[tuple[str, str]]) -> None:
    seen: set[str] = set()
    for path, name in named:
        if name in seen:
            raise LocatedValueError(path, f"name {name!r} is used twice", ["a name not used elsewhere"])
        seen.add(name)


def _require_servers_bounded(dcs: list[DataCenter]) -> None:
    total = 0
    for i, dc in enumerate(dcs):
        for j, pool in enumerate(dc.pools):
            total += pool.count
            if total > MAX_SERVERS:
                raise LocatedValueError(
                    f"datacenters.{i}.pools.{j}.count",
                    f"the pools up to this one hold {total:,} servers, more than a topology may ({MAX_SERVERS:,})",
                    ["fewer servers, or one topology per platform"],
                )


def _require_disjoint_subnets(dcs: list[DataCenter]) -> None:
    """One pass over the subnets in address order, not every pair: two CIDR blocks either nest or are apart, so a
    subnet overlaps an earlier one exactly when it starts before the furthest end seen so far."""
    furthest: tuple[int, int] | None = None  # (last address, index of its DC)
    for j in sorted(range(len(dcs)), key=lambda k: (int(dcs[k].subnet.network_address), dcs[k].subnet.prefixlen)):
        subnet = dcs[j].subnet
        if furthest is not None and int(subnet.network_address) <= furthest[0]:
            first, later = sorted((furthest[1], j))
            raise LocatedValueError(
                f"datacenters.{later}.subnet",
                f"{dcs[later].subnet} overlaps {dcs[first].name}'s subnet {dcs[first].subnet}",
                ["a subnet no other data center uses"],
            )
        if furthest is None or int(subnet.broadcast_address) > furthest[0]:
            furthest = (int(subnet.broadcast_address), j)
