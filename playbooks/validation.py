"""Checks of a playbook definition before it is saved.

Errors are raised as one ValidationError whose keys are field paths such as
`steps[2].config.html`, so the API answer names the step and the reason.
"""

from django.core.exceptions import ValidationError

from csplatform.rules import CriteriaError, compile_criteria

from .models import StepKind, TriggerType
from .rendering import TemplateError, template_check

DATE_FIELDS = ("trial_ends_at", "renewal_date", "card_expires_at")
COLOURS = ("green", "yellow", "red")
ON_FAIL_ACTIONS = ("create_task", "raise_alert", "send_email", "goto")
SEVERITIES = ("info", "warning", "critical")
MAX_DELAY_MINUTES = 366 * 24 * 60


class Problems:
    """Collects errors by field path and raises them all at once."""

    def __init__(self):
        self.errors = {}

    def add(self, path, message):
        self.errors.setdefault(path, []).append(message)

    def raise_any(self):
        if self.errors:
            raise ValidationError(self.errors)


def criteria_text(problems, path, text, *, tenant, subject):
    """`(json, canonical text)` of optional criteria; a parse error is recorded at `path`."""
    text = (text or "").strip()
    if not text:
        return None, ""
    try:
        criteria = compile_criteria(text, subject=subject, tenant=tenant)
    except CriteriaError as exc:
        problems.add(path, f"The criteria do not parse: {exc}")
        return None, text
    return criteria.json, criteria.text


def _int(problems, path, value, *, low, high, default=None):
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.add(path, f"Give a whole number from {low} to {high}.")
        return default
    return value


def _text(problems, path, config, name, *, required=False, html=False, default=""):
    value = config.get(name, default)
    if value is None:
        value = ""
    if not isinstance(value, str):
        problems.add(f"{path}.{name}", "Give a text template.")
        return ""
    if required and not value.strip():
        problems.add(f"{path}.{name}", "This template is required.")
        return value
    try:
        template_check(value, html=html)
    except TemplateError as exc:
        problems.add(f"{path}.{name}", f"The template does not render: {exc}")
    return value


def _email_templates(problems, path, config, *, required=True):
    return {
        "subject": _text(problems, path, config, "subject", required=required),
        "text": _text(problems, path, config, "text", required=required),
        "html": _text(problems, path, config, "html", html=True),
    }


def trigger_validate(problems, trigger_type, config, *, tenant):
    config = config if isinstance(config, dict) else {}
    path = "trigger_config"
    if trigger_type in (TriggerType.STAGE_ENTERED, TriggerType.STAGE_LEFT):
        from lifecycle.models import Stage

        key = config.get("stage")
        if not isinstance(key, str) or not Stage.objects.for_tenant(tenant).filter(key=key).exists():
            problems.add(f"{path}.stage", f"Name one of the tenant's stage keys (got {key!r}).")
        return {"stage": key}
    if trigger_type in (TriggerType.HEALTH_BELOW, TriggerType.HEALTH_ABOVE):
        value = config.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
            problems.add(f"{path}.value", "Give a health score from 0 to 100.")
        return {"value": value}
    if trigger_type == TriggerType.HEALTH_COLOUR_CHANGED:
        if config.get("colour") not in COLOURS:
            problems.add(f"{path}.colour", f"Give one of {', '.join(COLOURS)}.")
        return {"colour": config.get("colour")}
    if trigger_type == TriggerType.SEGMENT_ENTERED:
        from alerts.models import Segment

        key = config.get("segment")
        if not isinstance(key, str) or not Segment.objects.for_tenant(tenant).filter(key=key).exists():
            problems.add(f"{path}.segment", f"Name one of the tenant's segment keys (got {key!r}).")
        return {"segment": key}
    if trigger_type == TriggerType.EVENT_RECEIVED:
        if not isinstance(config.get("event"), str) or not config["event"]:
            problems.add(f"{path}.event", "Name the usage event.")
        return {"event": config.get("event")}
    if trigger_type == TriggerType.DATE_RELATIVE:
        if config.get("field") not in DATE_FIELDS:
            problems.add(f"{path}.field", f"Give one of {', '.join(DATE_FIELDS)}.")
        days = _int(problems, f"{path}.days_before", config.get("days_before"), low=0, high=365)
        return {"field": config.get("field"), "days_before": days}
    if trigger_type == TriggerType.MANUAL:
        return {}
    problems.add("trigger_type", f"Unknown trigger {trigger_type!r}; use one of {', '.join(TriggerType.values)}.")
    return {}


def _send_email(problems, path, config, tenant, count):
    result = _email_templates(problems, path, config)
    result["requires_review"] = bool(config.get("requires_review", False))
    # False for notices that may go out at any hour; customer emails wait for business hours by default.
    result["quiet_hours"] = bool(config.get("quiet_hours", True))
    return result


def _schedule_demo(problems, path, config, tenant, count):
    result = _email_templates(problems, path, config, required=False)
    result["days_ahead"] = _int(problems, f"{path}.days_ahead", config.get("days_ahead"), low=0, high=60, default=2)
    result["duration_minutes"] = _int(
        problems, f"{path}.duration_minutes", config.get("duration_minutes"), low=15, high=240, default=30
    )
    result["title"] = _text(problems, path, config, "title", default="Personalised demo")
    return result


def _usage_check(problems, path, config, tenant, count):
    criteria, text = criteria_text(
        problems, f"{path}.criteria", config.get("criteria"), tenant=tenant, subject="account"
    )
    if criteria is None and not problems.errors.get(f"{path}.criteria"):
        problems.add(f"{path}.criteria", "Say what usage to check, e.g. metric.events_7d >= 10.")
    on_pass = config.get("on_pass", "continue")
    if on_pass not in ("continue", "end"):
        problems.add(f"{path}.on_pass", "Give continue or end.")
    on_fail = config.get("on_fail") if isinstance(config.get("on_fail"), dict) else {}
    action = on_fail.get("action", "create_task")
    fail = {"action": action}
    fail_path = f"{path}.on_fail"
    if action == "create_task":
        fail["title"] = _text(problems, fail_path, on_fail, "title", default="Low usage: {{ account.name }}")
        fail["due_in_days"] = _int(
            problems, f"{fail_path}.due_in_days", on_fail.get("due_in_days"), low=0, high=365, default=1
        )
    elif action == "raise_alert":
        fail["title"] = _text(problems, fail_path, on_fail, "title", default="Low usage: {{ account.name }}")
        fail["severity"] = on_fail.get("severity", "warning")
        if fail["severity"] not in SEVERITIES:
            problems.add(f"{fail_path}.severity", f"Give one of {', '.join(SEVERITIES)}.")
    elif action == "send_email":
        fail.update(_email_templates(problems, fail_path, on_fail))
    elif action == "goto":
        fail["step"] = _int(problems, f"{fail_path}.step", on_fail.get("step"), low=0, high=max(count - 1, 0))
    else:
        problems.add(f"{fail_path}.action", f"Give one of {', '.join(ON_FAIL_ACTIONS)}.")
    return {"criteria": text, "criteria_json": criteria, "on_pass": on_pass, "on_fail": fail}


def _nps_survey(problems, path, config, tenant, count):
    return {
        "subject": _text(problems, path, config, "subject", default="How likely are you to recommend us?"),
        "text": _text(problems, path, config, "text", default="Hi {{ contact.first_name }}, one click tells us."),
        "expires_days": _int(problems, f"{path}.expires_days", config.get("expires_days"), low=1, high=90, default=14),
    }


def _flag_expansion(problems, path, config, tenant, count):
    return {
        "title": _text(problems, path, config, "title", default="Expansion opportunity: {{ account.name }}"),
        "note": _text(problems, path, config, "note"),
    }


def _create_task(problems, path, config, tenant, count):
    return {
        "title": _text(problems, path, config, "title", required=True),
        "description": _text(problems, path, config, "description"),
        "due_in_days": _int(problems, f"{path}.due_in_days", config.get("due_in_days"), low=0, high=365, default=1),
    }


def _call_webhook(problems, path, config, tenant, count):
    payload = config.get("payload", {})
    if not isinstance(payload, dict):
        problems.add(f"{path}.payload", "Give a JSON object.")
        payload = {}
    event_type = config.get("event_type", "playbook.step_completed")
    if event_type != "playbook.step_completed":
        problems.add(f"{path}.event_type", "Playbooks emit playbook.step_completed.")
    return {"event_type": event_type, "payload": payload}


def _update_account(problems, path, config, tenant, count):
    stage, attribute = config.get("stage"), config.get("attribute")
    if bool(stage) == bool(attribute):
        problems.add(path, "Give either stage (a stage key) or attribute (with value), not both.")
        return {}
    if stage:
        from lifecycle.models import Stage

        if not Stage.objects.for_tenant(tenant).filter(key=stage).exists():
            problems.add(f"{path}.stage", f"Unknown stage {stage!r}.")
        return {"stage": stage, "reason": str(config.get("reason") or "Moved by a playbook.")}
    if not isinstance(attribute, str) or not attribute.isidentifier():
        problems.add(f"{path}.attribute", "Give an attribute name (letters, digits, underscores).")
    return {"attribute": attribute, "value": config.get("value")}


VALIDATORS = {
    StepKind.SEND_EMAIL: _send_email,
    StepKind.SCHEDULE_DEMO: _schedule_demo,
    StepKind.USAGE_CHECK: _usage_check,
    StepKind.NPS_SURVEY: _nps_survey,
    StepKind.FLAG_EXPANSION: _flag_expansion,
    StepKind.CREATE_TASK: _create_task,
    StepKind.CALL_WEBHOOK: _call_webhook,
    StepKind.UPDATE_ACCOUNT: _update_account,
}


def steps_validate(problems, steps, *, tenant):
    """Normalised `[{kind, delay_minutes, config}]`; problems land at `steps[i]...`."""
    if not isinstance(steps, list) or not steps:
        problems.add("steps", "A playbook needs at least one step.")
        return []
    cleaned = []
    for index, step in enumerate(steps):
        path = f"steps[{index}]"
        if not isinstance(step, dict):
            problems.add(path, "Give an object with kind, delay_minutes and config.")
            continue
        kind = step.get("kind")
        validator = VALIDATORS.get(kind)
        if validator is None:
            problems.add(f"{path}.kind", f"Unknown step kind {kind!r}; use one of {', '.join(StepKind.values)}.")
            continue
        config = step.get("config") or {}
        if not isinstance(config, dict):
            problems.add(f"{path}.config", "Give a JSON object.")
            continue
        delay = _int(
            problems, f"{path}.delay_minutes", step.get("delay_minutes", 0), low=0, high=MAX_DELAY_MINUTES, default=0
        )
        cleaned.append(
            {
                "kind": kind,
                "delay_minutes": delay,
                "config": validator(problems, f"{path}.config", config, tenant, len(steps)),
            }
        )
    return cleaned
