"""Typed model of a topology file: the single source of truth every layer is derived from.

Only shape and local consistency live here (types, ranges, names that must exist). Rules about surviving the
loss of a data center live in `survivability`, because the policy pack applies them to declared resources too.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, description="lower-case letters, digits and '-'")]


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a topology must not silently drop a setting."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
    rto_seconds: float = Field(gt=0, description="every cell writable again within this after losing one DC")
    rpo_writes: int = Field(ge=0, description="acknowledged writes that may be lost when one DC is lost")
    peak_transactions_per_day: int = Field(gt=0)
    peak_factor: float = Field(
        default=3.0, ge=1, description="peak second's rate divided by the peak day's average rate"
    )
    accounts: int = Field(gt=0)
    latency_budget_ms: float = Field(gt=0, description="largest one-way latency allowed between same-city DCs")

    @property
    def peak_tps(self) -> float:
        return self.peak_transactions_per_day / 86_400 * self.peak_factor


class RoleCapacity(Strict):
    tps_per_core: float = Field(gt=0, description="transactions per second one core of this role carries")


class Capacity(Strict):
    max_utilization: float = Field(default=0.7, gt=0, le=1)
    roles: dict[Role, RoleCapacity] = Field(
        default_factory=dict, description="roles whose servers carry the transaction load"
    )


class ServerPool(Strict):
    name: Name
    roles: list[Role] = Field(min_length=1)
    arch: Arch
    count: int = Field(ge=1)
    cpu: int = Field(ge=1, description="cores per server")
    memory_gb: float = Field(gt=0, description="memory per server")
    unit_cost: float = Field(ge=0, description="cost of one server per year, in the topology's currency")

    @model_validator(mode="after")
    def _roles_unique(self) -> Self:
        if len(set(self.roles)) != len(self.roles):
            raise ValueError(f"roles repeat in {[r.value for r in self.roles]}")
        return self


class DataCenter(Strict):
    name: Name
    subnet: ipaddress.IPv4Network
    latency_ms: float = Field(default=0.5, ge=0, description="one-way latency from this DC to the city core")
    remote: bool = Field(default=False, description="a disaster-recovery site in another city")
    pools: list[ServerPool] = Field(default_factory=list)

    @property
    def same_city(self) -> bool:
        return not self.remote


class CustomerRange(Strict):
    """Half-open range [start, end) of routing keys."""

    start: int = Field(ge=0)
    end: int = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start})")
        return self


class Cell(Strict):
    name: Name
    home: Name = Field(description="the DC whose member writes while it is healthy")
    replicas: list[Name] = Field(description="other same-city DCs holding a synchronous member, in failover order")
    dr: Name | None = Field(default=None, description="remote DC holding an asynchronous copy")
    range: CustomerRange
    accounts: int = Field(gt=0)

    @property
    def member_dcs(self) -> list[str]:
        """DCs of the synchronous members, writer first then backups in failover order."""
        return [self.home, *self.replicas]


class Routing(Strict):
    key: RoutingKey = RoutingKey.customer_id
    # Gateways look customers up in an IPv4-keyed map (a range is a few CIDR prefixes): keys fit in 32 bits.
    space: int = Field(gt=0, le=2**32, description="routing keys run from 0 to space - 1")


class Currency(StrEnum):
    cny = "CNY"
    usd = "USD"
    eur = "EUR"


class Topology(Strict):
    name: Name
    city: Name
    currency: Currency = Currency.cny
    objectives: Objectives
    capacity: Capacity = Field(default_factory=Capacity)
    routing: Routing
    datacenters: list[DataCenter] = Field(min_length=1)
    cells: list[Cell] = Field(min_length=1, max_length=100)  # ports.MAX_CELLS: per-cell port blocks

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


def _require_disjoint_subnets(dcs: list[DataCenter]) -> None:
    for i, a in enumerate(dcs):
        for j, b in enumerate(dcs[i + 1 :], start=i + 1):
            if a.subnet.overlaps(b.subnet):
                raise LocatedValueError(
                    f"datacenters.{j}.subnet",
                    f"{b.subnet} overlaps {a.name}'s subnet {a.subnet}",
                    ["a subnet no other data center uses"],
                )
