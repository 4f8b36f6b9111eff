"""Lifecycle pages: the board, and moving an account to another stage by hand."""

import datetime as dt

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, F, Window
from django.db.models.functions import RowNumber
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from csplatform.customers.models import Account
from csplatform.tenancy.decorators import (
    can_change,
    form_errors_text,
    is_htmx,
    object_to_change,
    refuse_viewers,
    tenant_page,
)
from csplatform.tenancy.summaries import tenant_summaries_forget, tenant_summary
from csplatform.tenancy.timezones import tenant_today

from .forms import BoardMoveForm, MoveStageForm
from .models import AccountStage, StageTransition
from .selectors import kpi_median_days_in_stage, stages_in_order
from .services import account_move_stage
from .sla import days_in_stage, days_in_stage_expression, sla_status, sla_status_expression

CARDS_PER_STAGE = 12
# The account page shows the latest moves; the API pages through all of them.
TIMELINE_MOVES = 50
def _form_errors(form, exc):
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


def board_summary(tenant, owner=None):
    """Accounts per stage and colour, moves of the last 7 days, the median stay and which accounts
    make each column's cards; of `owner`'s accounts only, if given, but the median stay of every account,
    as the stage's own measure.

    One query each, computed at most once a minute (see tenancy.summaries).
    """
    # The owner's accounts, from rows that name their account and from the accounts themselves.
    mine, own = ({}, {}) if owner is None else ({"account__owner": owner}, {"owner": owner})
    counts = {}
    for row in (
        AccountStage.objects.for_tenant(tenant)
        .filter(**mine)
        .values("stage_id", "account__health__colour")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        per_colour = counts.setdefault(row["stage_id"], {})
        colour = row["account__health__colour"] or "unscored"
        per_colour[colour] = per_colour.get(colour, 0) + row["n"]
    week_ago = timezone.now() - dt.timedelta(days=7)
    moved_in, moved_out = {}, {}
    for row in (
        StageTransition.objects.for_tenant(tenant)
        .filter(at__gte=week_ago, **mine)
        .values("from_stage_id", "to_stage_id")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        moved_in[row["to_stage_id"]] = moved_in.get(row["to_stage_id"], 0) + row["n"]
        moved_out[row["from_stage_id"]] = moved_out.get(row["from_stage_id"], 0) + row["n"]
    medians = {row["stage"]: row["median_days"] for row in kpi_median_days_in_stage(tenant=tenant)}
    # Per stage the accounts in worst health first, numbered by a window so one query returns at most
    # CARDS_PER_STAGE of each column.
    card_ids = (
        Account.objects.for_tenant(tenant)
        .filter(lifecycle__isnull=False, **own)
        .annotate(
            place=Window(
                RowNumber(),
                partition_by=[F("lifecycle__stage_id")],
                order_by=[F("health__score").asc(nulls_last=True), F("name").asc(), F("pk").asc()],
            )
        )
        .filter(place__lte=CARDS_PER_STAGE)
        .values_list("pk", flat=True)
    )
    return {
        "counts": counts, "moved_in": moved_in, "moved_out": moved_out, "medians": medians, "card_ids": list(card_ids)
    }


def board_cards(tenant, card_ids):
    """{stage id: the cards}, worst health first: the accounts of `card_ids` as they are now (one query)."""
    cards = (
        Account.objects.for_tenant(tenant)
        .filter(pk__in=card_ids, lifecycle__isnull=False)
        .select_related("health", "owner", "lifecycle")
        # A card shows the score, not how it was made.
        .defer("health__breakdown")
        .annotate(
            days_in_stage=days_in_stage_expression(tenant, "lifecycle__"),
            sla_status=sla_status_expression(tenant, "lifecycle__"),
        )
    )
    by_stage = {}
    for account in sorted(cards, key=worst_health_first):
        account.move_form = None  # set on the card a failed move came from
        column = by_stage.setdefault(account.lifecycle.stage_id, [])
        # An account the pipeline moved since the ids were taken shows in its new column, within the limit.
        if len(column) < CARDS_PER_STAGE:
            column.append(account)
    return by_stage


def worst_health_first(account):
    score = getattr(getattr(account, "health", None), "score", None)
    return (score is None, score or 0, account.name, account.pk)


def board_scope(request):
    """The board's scope: "mine" for the member's own accounts, else "all". A move's form carries it along."""
    return "mine" if (request.GET.get("scope") or request.POST.get("scope")) == "mine" else "all"


def board_context(request, *, failed_move=None, moved=None):
    """1. The stages in order (one query); none yet means the empty state.
    2. The figures of every account, or of the member's own ("My accounts"): accounts per stage and colour,
       moves of the last 7 days, the median stay (board_summary, at most a minute old).
    3. The cards those figures name, read as they are now (one query).
    """
    tenant = request.tenant
    stages = stages_in_order(tenant=tenant)
    scope = board_scope(request)
    context = {"stages": stages, "can_change": can_change(request), "moved": moved, "scope": scope}
    if not stages:
        return context
    if scope == "mine":
        owner = request.user
        summary = tenant_summary(tenant, f"board:{owner.pk}", lambda: board_summary(tenant, owner))
    else:
        summary = tenant_summary(tenant, "board", lambda: board_summary(tenant))
    counts = summary["counts"]
    by_stage = board_cards(tenant, summary["card_ids"])
    failed_card = None
    if failed_move is not None:
        for account in (account for cards in by_stage.values() for account in cards):
            if failed_move.data.get("account") == str(account.pk):
                account.move_form = failed_card = failed_move
    if failed_move is not None and failed_card is None:
        # The account has no card on the board (unknown, or beyond a column's first cards): say so on top.
        context["move_errors"] = [error for errors in failed_move.errors.values() for error in errors]
    columns = []
    for stage in stages:
        per_colour = counts.get(stage.pk, {})
        total = sum(per_colour.values())
        cards = by_stage.get(stage.pk, [])
        columns.append(
            {
                "stage": stage,
                "total": total,
                "colours": [(colour, per_colour.get(colour, 0)) for colour in ("green", "yellow", "red", "unscored")],
                "median_days": summary["medians"].get(stage.key),
                "moved_in": summary["moved_in"].get(stage.pk, 0),
                "moved_out": summary["moved_out"].get(stage.pk, 0),
                "cards": cards,
                "more": max(total - len(cards), 0),
                # Where a card of this column can move: every other stage.
                "move_stages": [other for other in stages if other.pk != stage.pk],
            }
        )
    context["columns"] = columns
    context["empty"] = not any(column["total"] for column in columns)
    return context


@tenant_page
def board(request):
    return render(request, "lifecycle/board.html", board_context(request))


@tenant_page
@require_POST
def board_move(request):
    refuse_viewers(request)
    tenant = request.tenant
    form = BoardMoveForm(request.POST, tenant=tenant)
    moved = None
    if form.is_valid():
        account, stage = form.cleaned_data["account"], form.cleaned_data["stage"]
        try:
            account_move_stage(
                tenant=tenant, account=account, to_stage=stage, actor=request.user, reason=form.cleaned_data["reason"]
            )
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            tenant_summaries_forget(tenant)
            moved = f"Moved {account.name} to {stage.name}."
    failed = form if form.errors else None
    if not is_htmx(request):
        if failed is None:
            messages.success(request, moved)
            board_url = reverse("board", args=[tenant.slug])
            return redirect(f"{board_url}?scope=mine" if board_scope(request) == "mine" else board_url)
        return render(request, "lifecycle/board.html", board_context(request, failed_move=failed), status=400)
    # htmx swaps the board in place; a failed move shows its errors on the card it came from.
    return render(request, "lifecycle/_board.html", board_context(request, failed_move=failed, moved=moved))


def account_lifecycle_context(request, account, *, form=None, stages=None):
    """The account page's lifecycle section: current stage, the move form and the stage timeline."""
    tenant = request.tenant
    stages = stages if stages is not None else stages_in_order(tenant=tenant)
    # Every stage of the tenant is loaded already: named from these, the account's stage and its moves need no
    # join, which would cost more to plan than this (a stage added since is read on its own). The one row's
    # days in stage and SLA are computed here too.
    stage_by_id = {stage.pk: stage for stage in stages}
    state = AccountStage.objects.for_tenant(tenant).filter(account=account).first()
    if state is not None:
        state.stage = stage_by_id.get(state.stage_id) or state.stage
        state.days_in_stage = days_in_stage(state.entered_day, tenant_today(tenant))
        state.sla_status = sla_status(state.days_in_stage, state.stage.expected_days)
    timeline = list(
        StageTransition.objects.for_tenant(tenant)
        .filter(account=account)
        .select_related("by_user")
        .order_by("-at", "-id")[:TIMELINE_MOVES]
    )
    for move in timeline:
        move.from_stage = stage_by_id.get(move.from_stage_id) or move.from_stage
        move.to_stage = stage_by_id.get(move.to_stage_id) or move.to_stage
    if form is None and state is not None:
        # Offer the next stage, or for the last one the first other stage: never where the account already is.
        others = [stage for stage in stages if stage.pk != state.stage_id]
        following = next((stage for stage in others if stage.position > state.stage.position), others[0] if others else None)
        form = MoveStageForm(tenant=tenant, stages=stages, initial={"stage": following.key if following else None})
    elif form is None:
        form = MoveStageForm(tenant=tenant, stages=stages)
    return {
        "account": account,
        "state": state,
        "timeline": timeline,
        "timeline_limit": TIMELINE_MOVES,
        "stages": stages,
        "move_form": form,
        "can_change": can_change(request),
    }


@tenant_page
@require_POST
def account_move(request, account_id):
    tenant = request.tenant
    account = object_to_change(request, Account.objects.for_tenant(tenant), account_id)
    stages = stages_in_order(tenant=tenant)
    form = MoveStageForm(request.POST, tenant=tenant, stages=stages)
    if form.is_valid():
        stage = form.cleaned_data["stage"]
        try:
            account_move_stage(
                tenant=tenant, account=account, to_stage=stage, actor=request.user, reason=form.cleaned_data["reason"]
            )
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            tenant_summaries_forget(tenant)
            if not is_htmx(request):
                messages.success(request, f"Moved {account.name} to {stage.name}.")
                return redirect("account-detail", tenant_slug=tenant.slug, account_id=account.pk)
            context = account_lifecycle_context(request, account, stages=stages)
            context["moved"] = f"Moved to {stage.name}."
            return render(request, "lifecycle/_account_lifecycle.html", context)
    if is_htmx(request):
        context = account_lifecycle_context(request, account, form=form, stages=stages)
        return render(request, "lifecycle/_account_lifecycle.html", context)
    messages.error(request, "The account was not moved: " + form_errors_text(form))
    return redirect("account-detail", tenant_slug=tenant.slug, account_id=account.pk)
