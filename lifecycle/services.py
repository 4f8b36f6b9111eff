import logging

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from csplatform.customers.models import Account
from csplatform.rules import CriteriaError, compile_criteria, load_criteria
from csplatform.sql import OneOf
from csplatform.tenancy.services import audit_record

from .models import AccountStage, Stage, StageTransition, TransitionKind
from .sla import day_number
from .templates import TEMPLATES_BY_KEY

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1000
STAGE_FIELDS = (
    "key",
    "name",
    "description",
    "colour",
    "position",
    "entry_criteria_text",
    "entered_from_any_earlier",
    "is_initial",
    "is_terminal",
    "outcome",
    "expected_days",
    "cycle_to",
)


def stage_snapshot(stage):
    """The audited view of a stage's configuration."""
    data = {name: getattr(stage, name) for name in STAGE_FIELDS if name != "cycle_to"}
    data["cycle_to"] = stage.cycle_to.key if stage.cycle_to_id else None
    return data


def criteria_compile(*, tenant, text, field="entry_criteria_text"):
    """`(json, canonical text)` of the criteria, `(None, "")` for none; a ValidationError on `field` if invalid."""
    text = (text or "").strip()
    if not text:
        return None, ""
    try:
        criteria = compile_criteria(text, subject="account", tenant=tenant)
    except CriteriaError as exc:
        raise ValidationError({field: str(exc)}) from exc
    return criteria.json, criteria.text


def _check_cycle_to(tenant, stage, cycle_to):
    if cycle_to is None:
        return
    if cycle_to.tenant_id != tenant.pk:
        raise ValidationError({"cycle_to": "Unknown stage."})
    if stage.pk is not None and cycle_to.pk == stage.pk:
        raise ValidationError({"cycle_to": "A stage cannot cycle back to itself."})


def _clear_other_initial(tenant, stage):
    Stage.objects.for_tenant(tenant).filter(is_initial=True).exclude(pk=stage.pk).update(is_initial=False)


@transaction.atomic
def stage_create(*, tenant, actor, key, name, entry_criteria_text="", position=None, cycle_to=None, **fields):
    """Add a stage. The tenant's first stage is where new accounts start."""
    stages = Stage.objects.for_tenant(tenant)
    if stages.filter(key=key).exists():
        raise ValidationError({"key": f"A stage with key {key!r} already exists."})
    entry_criteria, text = criteria_compile(tenant=tenant, text=entry_criteria_text)
    if position is None:
        position = (stages.aggregate(last=Max("position"))["last"] or 0) + 1
    stage = Stage(tenant=tenant, key=key, name=name, position=position, cycle_to=cycle_to, **fields)
    stage.entry_criteria, stage.entry_criteria_text = entry_criteria, text
    _check_cycle_to(tenant, stage, cycle_to)
    if not stages.exists():
        stage.is_initial = True
    if stage.is_initial:
        _clear_other_initial(tenant, stage)
    stage.full_clean(exclude=["tenant", "cycle_to"], validate_unique=False, validate_constraints=False)
    stage.save()
    audit_record(tenant=tenant, actor=actor, action="stage.created", obj=stage, after=stage_snapshot(stage))
    return stage


@transaction.atomic
def stage_update(*, tenant, stage, actor, **changes):
    """Change a stage's settings; the key stays, since criteria elsewhere refer to it."""
    before = stage_snapshot(stage)
    if "key" in changes and changes.pop("key") != stage.key:
        raise ValidationError({"key": "A stage's key cannot change; criteria and playbooks refer to it."})
    if "entry_criteria_text" in changes:
        stage.entry_criteria, stage.entry_criteria_text = criteria_compile(
            tenant=tenant, text=changes.pop("entry_criteria_text")
        )
    if "cycle_to" in changes:
        _check_cycle_to(tenant, stage, changes["cycle_to"])
    if changes.get("is_initial") is False and stage.is_initial:
        raise ValidationError({"is_initial": "Make another stage the initial stage instead."})
    for name, value in changes.items():
        setattr(stage, name, value)
    if stage.is_initial:
        _clear_other_initial(tenant, stage)
    stage.full_clean(exclude=["tenant", "cycle_to"], validate_unique=False, validate_constraints=False)
    stage.save()
    audit_record(
        tenant=tenant, actor=actor, action="stage.updated", obj=stage, before=before, after=stage_snapshot(stage)
    )
    return stage


@transaction.atomic
def stage_delete(*, tenant, stage, actor, move_to=None):
    """Delete a stage. Accounts in it move to `move_to` first; without one they block the delete."""
    stage = Stage.objects.for_tenant(tenant).select_for_update().get(pk=stage.pk)
    states = list(AccountStage.objects.for_tenant(tenant).select_for_update().filter(stage=stage))
    if states and move_to is None:
        raise ValidationError(
            {"move_to": f"{len(states)} account(s) are in {stage.name}; name the stage to move them to."}
        )
    if move_to is not None and move_to.pk == stage.pk:
        raise ValidationError({"move_to": "Move the accounts to another stage than the one being deleted."})
    if stage.is_initial and Stage.objects.for_tenant(tenant).exclude(pk=stage.pk).exists():
        raise ValidationError({"is_initial": "New accounts start in this stage; make another stage initial first."})
    if states:
        _record_moves(
            tenant,
            [(state, move_to, None) for state in states],
            kind=TransitionKind.MANUAL,
            reason=f"Stage {stage.name} was deleted.",
            by_user=actor,
        )
    before = stage_snapshot(stage)
    audit_record(tenant=tenant, actor=actor, action="stage.deleted", obj=stage, before=before)
    stage.delete()


@transaction.atomic
def stages_reorder(*, tenant, keys, actor):
    """Put the stages in the order of `keys`, which must name each stage exactly once."""
    stages = {stage.key: stage for stage in Stage.objects.for_tenant(tenant).select_for_update()}
    if len(keys) != len(set(keys)) or set(keys) != set(stages):
        missing = sorted(set(stages) - set(keys))
        unknown = sorted(set(keys) - set(stages))
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing)}")
        if unknown:
            detail.append(f"unknown {', '.join(unknown)}")
        if len(keys) != len(set(keys)):
            detail.append("some keys repeat")
        raise ValidationError({"keys": f"List every stage key exactly once ({'; '.join(detail)})."})
    before = sorted(stages, key=lambda key: stages[key].position)
    for position, key in enumerate(keys, start=1):
        stages[key].position = position
    Stage.objects.for_tenant(tenant).bulk_update(stages.values(), ["position"])
    audit_record(
        tenant=tenant, actor=actor, action="stages.reordered", obj=tenant, before={"keys": before}, after={"keys": keys}
    )
    return [stages[key] for key in keys]


@transaction.atomic
def stages_apply_template(*, tenant, template_key, actor, mapping=None):
    """Replace the tenant's stages with a template's.

    1. Stages whose key the template also has are updated in place, so their
       accounts stay where they are.
    2. Accounts in any other stage move to the template stage that `mapping`
       names for it ({old key: template key}); without a mapping for an
       occupied stage nothing changes and the error says which stages.
    3. Stages the template does not have are then deleted.
    """
    template = TEMPLATES_BY_KEY.get(template_key)
    if template is None:
        raise ValidationError({"template": f"Unknown template {template_key!r}."})
    mapping = mapping or {}
    template_keys = [spec.key for spec in template.stages]
    existing = {stage.key: stage for stage in Stage.objects.for_tenant(tenant).select_for_update()}
    vanishing = [key for key in existing if key not in template_keys]
    occupied = dict(
        AccountStage.objects.for_tenant(tenant)
        .filter(stage__key__in=vanishing)
        .values("stage__key")
        .annotate(n=Count("pk"))
        .values_list("stage__key", "n")
    )
    unmapped = [key for key in occupied if mapping.get(key) not in template_keys]
    if unmapped:
        listed = ", ".join(f"{key} ({occupied[key]} accounts)" for key in sorted(unmapped))
        raise ValidationError(
            {
                "mapping": f"Accounts are in stages the template does not have: {listed}. Map each to one of: "
                f"{', '.join(template_keys)}."
            }
        )
    before = [stage_snapshot(stage) for stage in sorted(existing.values(), key=lambda s: s.position)]

    # The one-initial-stage constraint holds at every statement, so clear it before setting the new one.
    Stage.objects.for_tenant(tenant).update(is_initial=False)
    stages = {}
    for position, spec in enumerate(template.stages, start=1):
        entry_criteria, text = criteria_compile(tenant=tenant, text=spec.criteria, field=f"stages.{spec.key}")
        stage = existing.get(spec.key) or Stage(tenant=tenant, key=spec.key)
        stage.name, stage.description, stage.colour = spec.name, spec.description, spec.colour
        stage.position, stage.entry_criteria, stage.entry_criteria_text = position, entry_criteria, text
        stage.entered_from_any_earlier = spec.entered_from_any_earlier
        stage.is_initial, stage.is_terminal, stage.outcome = position == 1, spec.is_terminal, spec.outcome
        stage.expected_days, stage.cycle_to = spec.expected_days, None
        stage.save()
        stages[spec.key] = stage
    for spec in template.stages:
        if spec.cycle_to:
            stages[spec.key].cycle_to = stages[spec.cycle_to]
            stages[spec.key].save(update_fields=["cycle_to"])

    moving = list(
        AccountStage.objects.for_tenant(tenant)
        .select_for_update(of=("self",))
        .filter(stage__key__in=vanishing)
        .select_related("stage")
    )
    _record_moves(
        tenant,
        [(state, stages[mapping[state.stage.key]], None) for state in moving],
        kind=TransitionKind.MANUAL,
        reason=f"Stages replaced by the template {template.name}.",
        by_user=actor,
    )
    Stage.objects.for_tenant(tenant).filter(key__in=vanishing).delete()
    ordered = [stages[key] for key in template_keys]
    audit_record(
        tenant=tenant,
        actor=actor,
        action="stages.template_applied",
        obj=tenant,
        before={"stages": before},
        after={"template": template.key, "stages": [stage_snapshot(stage) for stage in ordered]},
    )
    return ordered


def _record_moves(tenant, moves, *, kind, reason="", by_user=None, now=None):
    """Move accounts and record each move: `moves` is [(AccountStage, to_stage, explanation dict)].

    An AccountStage without a pk is an account's first placement. Several
    moves of one account are recorded in the order given and leave it in the
    last stage.
    """
    now = now or timezone.now()
    today = day_number(now, tenant)
    transitions = []
    for state, to_stage, explanation in moves:
        from_stage = state.stage if state.stage_id else None
        transitions.append(
            StageTransition(
                tenant=tenant,
                account_id=state.account_id,
                from_stage=from_stage,
                to_stage=to_stage,
                from_key=from_stage.key if from_stage else "",
                to_key=to_stage.key,
                at=now,
                by_user=by_user if getattr(by_user, "pk", None) else None,
                kind=kind,
                reason=reason,
                explanation=explanation,
            )
        )
        state.stage, state.entered_at, state.entered_day = to_stage, now, today
    StageTransition.objects.bulk_create(transitions)
    states = {id(state): state for state, _, _ in moves}.values()
    # The moves share their moment, so the states that existed take one UPDATE per stage they end in.
    existing_by_stage = {}
    for state in states:
        if state.pk is not None:
            existing_by_stage.setdefault(state.stage_id, []).append(state.pk)
    AccountStage.objects.bulk_create([state for state in states if state.pk is None])
    for stage_id, pks in existing_by_stage.items():
        AccountStage.objects.for_tenant(tenant).filter(OneOf("pk", pks)).update(
            stage_id=stage_id, entered_at=now, entered_day=today
        )
    return transitions


def _explain(criteria, account):
    return criteria.explain(account).as_dict() if criteria is not None else None


def _stage_criteria(tenant, stage):
    """The stage's compiled entry criteria, or None when it is entered only by hand."""
    if stage.entry_criteria is None:
        return None
    try:
        return load_criteria(stage.entry_criteria, subject="account", tenant=tenant)
    except CriteriaError:
        # A metric the criteria use was deleted: the stage can no longer be entered
        # automatically until an admin fixes the criteria; the other stages still work.
        logger.warning("Entry criteria of stage %s (tenant %s) no longer compile", stage.key, tenant.pk, exc_info=True)
        return None


def lifecycle_advance(*, tenant, account_ids, chunk_size=CHUNK_SIZE, now=None):
    """Place new accounts and move accounts forward; returns the ids of accounts that moved.

    `now` stamps the moves; a replay of past days passes the end of each day.

    Safe to run twice and concurrently: each chunk locks its accounts first,
    so two runs over the same accounts take turns and the second finds
    nothing left to do.
    """
    stages = list(Stage.objects.for_tenant(tenant).select_related("cycle_to").order_by("position", "id"))
    initial = next((stage for stage in stages if stage.is_initial), None)
    if initial is None:
        return set()
    criteria = {stage.pk: _stage_criteria(tenant, stage) for stage in stages}
    account_ids = sorted(set(account_ids))
    moved = set()
    for start in range(0, len(account_ids), chunk_size):
        moved |= _advance_chunk(tenant, account_ids[start : start + chunk_size], stages, initial, criteria, now)
    return moved


@transaction.atomic
def _advance_chunk(tenant, account_ids, stages, initial, criteria, now):
    """1. Lock the chunk's accounts (in id order, so concurrent runs cannot deadlock). FOR NO KEY
       UPDATE keeps other stage changes out, yet lets ingest's foreign-key checks through: they
       take KEY SHARE locks on the same accounts as their transactions commit, in their own order.
    2. Place accounts without a stage in the initial stage.
    3. For each stage in order, one query finds which accounts in the stage
       before it (in any earlier stage, for a stage entered from any) meet its
       entry criteria; those move, and may move again at the next stage in the
       same pass.
    4. Record the transitions and the new states in bulk.
    """
    account_ids = list(
        Account.objects.for_tenant(tenant)
        .filter(OneOf("pk", account_ids))
        .order_by("pk")
        .select_for_update(no_key=True)
        .values_list("pk", flat=True)
    )
    # Stage ids only: most accounts stay where they are, and only the movers need their state rows.
    held = AccountStage.objects.for_tenant(tenant).filter(OneOf("account_id", account_ids))
    current = dict(held.values_list("account_id", "stage_id"))
    now = now or timezone.now()
    new = [AccountStage(tenant=tenant, account_id=pk) for pk in account_ids if pk not in current]
    _record_moves(tenant, [(state, initial, None) for state in new], kind=TransitionKind.INITIAL, now=now)
    for state in new:
        current[state.account_id] = state.stage_id

    steps = []
    for index, stage in enumerate(stages[1:], start=1):
        stage_criteria = criteria[stage.pk]
        if stage_criteria is None:
            continue
        earlier = stages[:index] if stage.entered_from_any_earlier else stages[index - 1 : index]
        leaving = {previous.pk for previous in earlier if not previous.is_terminal}
        candidates = [pk for pk, stage_id in current.items() if stage_id in leaving]
        if not candidates:
            continue
        movers = stage_criteria.filter(
            Account.objects.for_tenant(tenant).filter(OneOf("pk", candidates)), now=now
        ).values_list("pk", flat=True)
        for pk in movers:
            current[pk] = stage.pk
            steps.append((pk, stage))
    if not steps:
        return {state.account_id for state in new}

    moving = {pk for pk, _ in steps}
    states = {state.account_id: state for state in new if state.account_id in moving}
    states.update(
        (state.account_id, state)
        for state in AccountStage.objects.for_tenant(tenant)
        .filter(OneOf("account_id", moving - states.keys()))
        .select_related("stage")
    )
    # Read with what explaining each stage's criteria reads, so the explanations take no query each.
    explainable = Account.objects.for_tenant(tenant)
    for stage_criteria in criteria.values():
        if stage_criteria is not None:
            explainable = stage_criteria.with_related(explainable)
    accounts = explainable.in_bulk(moving)
    moves = [(states[pk], stage, _explain(criteria[stage.pk], accounts[pk])) for pk, stage in steps]
    # The kind says why: a reason would only repeat it.
    _record_moves(tenant, moves, kind=TransitionKind.AUTOMATIC, now=now)
    return {state.account_id for state in new} | {pk for pk, _ in steps}


@transaction.atomic
def account_move_stage(*, tenant, account, to_stage, actor, reason, kind=TransitionKind.MANUAL, now=None):
    """Move an account to any stage by hand; the reason is required and recorded. `now` stamps a move of the
    past, as a replay of the tenant's history makes."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why the account moves; the reason is kept in its history."})
    if account.tenant_id != tenant.pk or to_stage.tenant_id != tenant.pk:
        raise ValidationError({"stage": "Unknown stage or account."})
    state = AccountStage.objects.for_tenant(tenant).select_for_update(of=("self",)).select_related("stage").filter(
        account=account
    ).first() or AccountStage(tenant=tenant, account=account)
    if state.stage_id == to_stage.pk:
        raise ValidationError({"stage": f"The account is already in {to_stage.name}."})
    criteria = _stage_criteria(tenant, to_stage)
    (transition,) = _record_moves(
        tenant, [(state, to_stage, _explain(criteria, account))], kind=kind, reason=reason, by_user=actor, now=now
    )
    return transition


@transaction.atomic
def account_renew(*, tenant, account, actor, reason="Renewed."):
    """A renewed account in a renewal stage re-enters the cycle at that stage's `cycle_to`."""
    state = (
        AccountStage.objects.for_tenant(tenant)
        .select_for_update(of=("self",))
        .select_related("stage__cycle_to")
        .filter(account=account)
        .first()
    )
    if state is None or state.stage.cycle_to_id is None:
        raise ValidationError({"stage": "The account is not in a renewal stage that cycles back."})
    return account_move_stage(
        tenant=tenant,
        account=account,
        to_stage=state.stage.cycle_to,
        actor=actor,
        reason=reason,
        kind=TransitionKind.CYCLE,
    )
