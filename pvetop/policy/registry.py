"""Every setting pvetop knows, in one registry: the CLI, the UI and the workers all read this one.

Each domain declares its own specs next to the code that uses them (``balance.BALANCER_SETTINGS``,
``power.POWER_SETTINGS``); the shared migration queue's limits and the rules store's ProxLB import
switch are declared here. Add a domain by adding its tuple to ``DOMAINS``.
"""

from __future__ import annotations

from pvetop.policy.balance import BALANCER_SETTINGS
from pvetop.policy.power import POWER_SETTINGS
from pvetop.policy.settings import SettingSpec, SettingsRegistry, boolean, number

# One queue runs every migration (the user's, the balancer's, the power policy's): these bound it.
MIGRATION_SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("migrations.max_parallel", 2, "migrations at once, cluster-wide", number(1, 64, integer=True)),
    SettingSpec(
        "migrations.max_per_source",
        1,
        "automatic migrations leaving one node at once",
        number(1, 64, integer=True),
    ),
    SettingSpec(
        "migrations.max_per_target",
        1,
        "automatic migrations arriving on one node at once",
        number(1, 64, integer=True),
    ),
)

RULES_SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "import_proxlb_tags",
        False,
        "treat ProxLB tags (plb_pin_*, plb_ignore*, plb_(anti_)affinity_*) as rules everywhere, "
        "not only in the balancer (balancer.proxlb_tags)",
        boolean,
    ),
)

DOMAINS: tuple[tuple[SettingSpec, ...], ...] = (MIGRATION_SETTINGS, RULES_SETTINGS, BALANCER_SETTINGS, POWER_SETTINGS)


def settings_registry() -> SettingsRegistry:
    """A registry of every known setting (a new one each call: callers may not share mutations)."""
    return SettingsRegistry(spec for domain in DOMAINS for spec in domain)
