"""The one settings registry: every domain's keys, each default valid under its own parser."""

from pvetop.policy.registry import settings_registry


def test_every_domain_is_registered_and_every_default_passes_its_own_validation():
    registry = settings_registry()
    keys = {spec.key for spec in registry}
    assert {"balancer.mode", "balancer.threshold", "migrations.max_parallel", "migrations.max_per_target"} <= keys
    assert any(key.startswith("power.") for key in keys)
    for spec in registry:
        assert spec.validate(spec.default) == spec.default, spec.key
