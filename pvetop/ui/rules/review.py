"""Reviews the user confirms before anything changes: reconcile and pin suggestions."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from pvetop.policy.reconcile import reconcile
from pvetop.policy.suggestions import PinSuggestion, suggest_pins
from pvetop.ui.rules.controller import RulesController
from pvetop.ui.rules.dialogs import ReviewDialog

if TYPE_CHECKING:
    from pvetop.ui.app import PvetopApp


class ClusterReviewDialog(ReviewDialog):
    """A review computed from the latest snapshot; until the first refresh there is nothing to review."""

    if TYPE_CHECKING:
        app: PvetopApp  # opened by the dashboard app only

    def load(self):
        controller = RulesController(self.app, self.app.store)
        if controller.snapshot is None:
            return [], "no cluster data yet: wait for the first refresh"
        return self.proposals(controller, controller.snapshot)

    def proposals(self, controller: RulesController, snapshot):
        """(label, proposal) pairs for ``snapshot``, and the text shown when there are none."""
        raise NotImplementedError


class ReconcileDialog(ClusterReviewDialog):
    """Rules naming vanished guests, reused vmids or missing nodes; all proposed, none applied yet."""

    HEADING = "Reconcile rules with the cluster"
    EXPLAIN = "These stored rules no longer match the cluster. Selected changes are applied and journaled."
    PRESELECT = True

    def proposals(self, controller, snapshot):
        try:
            changes = reconcile(snapshot, controller.store.rules(controller.cluster))
        except ValueError as exc:
            return [], str(exc)
        return [
            (f"[{c.kind} {c.target}] {c.detail}", c) for c in changes
        ], "every rule matches the cluster: nothing to reconcile"

    def apply(self, chosen: list) -> None:
        controller = RulesController(self.app, self.app.store)
        outcome = controller.change("reconcile", lambda store, cluster: store.apply_reconcile(cluster, chosen))
        if outcome is None:
            return
        applied = sum(1 for _, done in outcome if done)
        skipped = len(outcome) - applied
        note = f"; {skipped} changed meanwhile and were left alone" if skipped else ""
        self.app.notify(f"reconcile: {applied} change(s) applied{note}", timeout=4)


class SuggestionsDialog(ClusterReviewDialog):
    """Pins read from ProxLB plb_pin_ tags and HA node-affinity rules; none selected until chosen."""

    HEADING = "Suggested pins"
    EXPLAIN = "From ProxLB plb_pin_<node> tags and PVE HA node-affinity rules. Select the ones to pin."
    PRESELECT = False

    def proposals(self, controller, snapshot):
        suggestions = suggest_pins(snapshot, self.app.ruleset.pins)
        items = []
        for s in suggestions:
            replaces = f" (now pinned to {', '.join(sorted(s.replaces))})" if s.replaces is not None else ""
            items.append((f"{s.vmid} {s.name or '-'} → {', '.join(sorted(s.nodes))}{replaces}  · {s.reason}", s))
        return items, "nothing to suggest: no plb_pin_ tags or HA node-affinity rules beyond the current pins"

    def apply(self, chosen: list[PinSuggestion]) -> None:
        controller = RulesController(self.app, self.app.store)
        twice = [vmid for vmid, count in Counter(s.vmid for s in chosen).items() if count > 1]
        if twice:
            self.app.notify(
                f"choose one suggestion per guest ({', '.join(map(str, twice))} chosen twice): nothing pinned",
                severity="error",
                timeout=6,
            )
            return

        def pin(s: PinSuggestion) -> object:
            return controller.change(
                "pin",
                lambda store, cluster: store.pin_guest(
                    cluster, s.vmid, s.name, s.nodes, note=s.note, who=controller.who
                ),
            )

        pinned = [s for s in chosen if pin(s)]
        if pinned:
            self.app.notify(f"pinned {', '.join(str(s.vmid) for s in pinned)}", timeout=4)
