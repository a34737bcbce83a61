"""Capacity and cost planning derived from a topology."""

from hivestack.plan.capacity import REFERENCE, DcPlan, Plan, PoolPlan, plan

__all__ = ["REFERENCE", "DcPlan", "Plan", "PoolPlan", "plan"]
