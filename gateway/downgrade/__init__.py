"""Build once, deliver everywhere: capability profiles and the one downgrade engine."""

from __future__ import annotations

from gateway.downgrade.choices import Choice, match_choice
from gateway.downgrade.engine import Downgrade, Plan, plan, shorten
from gateway.downgrade.profile import (
    ButtonsProfile,
    CarouselProfile,
    ListProfile,
    Profile,
    QuickRepliesProfile,
)
from gateway.downgrade.table import PlanError

__all__ = [
    "ButtonsProfile",
    "CarouselProfile",
    "Choice",
    "Downgrade",
    "ListProfile",
    "Plan",
    "PlanError",
    "Profile",
    "QuickRepliesProfile",
    "match_choice",
    "plan",
    "shorten",
]
