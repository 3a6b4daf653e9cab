"""Journey reads: per-step counts for the diagram, a recipient's runs with their paths."""

from collections import defaultdict

from django.db.models import Count, Q

from apps.journeys import engine
from apps.journeys.models import Journey, JourneyRun, JourneyRunStep
from apps.messaging.models import Message

PASSED = Q(outcome__in=["passed", "matched", "timeout", "default"]) | Q(outcome__startswith="path ")
ENDED = Q(outcome__in=["exited", "cancelled", "failed"])
COUNTS = ("entered", "waiting", "passed", "exited", "sent", "conversions")


def journey_step_counts(*, journey: Journey) -> dict[str, dict[str, int]]:
    """Step id → entered, waiting now, passed, exited, messages sent, conversions (runs through
    the step that converted), over every version of the journey (steps are matched by id)."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    visits = JourneyRunStep.objects.filter(step__version__journey=journey)
    for row in visits.values("step__key").annotate(
            entered=Count("id"), passed=Count("id", filter=PASSED), exited=Count("id", filter=ENDED),
            waiting=Count("id", filter=Q(left_at__isnull=True, run__status__in=engine.LIVE)),
            conversions=Count("run", filter=Q(run__converted_at__isnull=False), distinct=True)):
        counts[row["step__key"]].update({k: row[k] for k in COUNTS if k in row})
    sent = Message.objects.filter(journey_step__version__journey=journey, status__in=["sent", "delivered"])
    for row in sent.values("journey_step__key").annotate(n=Count("id")):
        counts[row["journey_step__key"]]["sent"] = row["n"]
    return dict(counts)


def recipient_runs(*, recipient, limit: int = 20) -> list[JourneyRun]:
    """A recipient's latest runs, each with its path (step by step) prefetched."""
    return list(JourneyRun.objects.filter(tenant_id=recipient.tenant_id, recipient=recipient)
                .select_related("journey", "version").prefetch_related("path__step").order_by("-id")[:limit])
