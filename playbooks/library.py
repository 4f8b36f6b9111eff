"""Ready-made playbooks a tenant can install (playbook_templates_install)."""

from .steps import email_template

DAY = 24 * 60


def onboarding_welcome():
    """Seed 001: welcome email on entering Onboarding, a personalised demo 2 days later, a usage check 5 days later."""
    return {
        "key": "onboarding_welcome",
        "name": "Onboarding: welcome, demo, usage check",
        "description": "For each customer entering Onboarding: a welcome email, two days later a personalised "
        "demo, five days later a look at their usage.",
        "trigger_type": "stage_entered",
        "trigger_config": {"stage": "onboarding"},
        "enrollment_policy": "once",
        "steps": [
            {
                "kind": "send_email",
                "delay_minutes": 0,
                "config": {
                    "subject": email_template("onboarding_welcome_subject.txt").strip(),
                    "text": email_template("onboarding_welcome.txt"),
                    "html": email_template("onboarding_welcome.html"),
                },
            },
            {"kind": "schedule_demo", "delay_minutes": 2 * DAY, "config": {"days_ahead": 2, "duration_minutes": 30}},
            {
                "kind": "usage_check",
                "delay_minutes": 3 * DAY,
                "config": {
                    "criteria": "metric.events_7d >= 10",
                    "on_pass": "continue",
                    "on_fail": {
                        "action": "create_task",
                        "title": "Low usage after onboarding demo: {{ account.name }}",
                        "due_in_days": 1,
                    },
                },
            },
        ],
    }


def expansion_near_limit():
    """Seed 004: in the Expansion stage, usage near the plan's limit flags an opportunity and asks the CSM to act.

    The check runs daily while the account stays in the stage (entering
    Expansion says usage is high, not yet that the plan is nearly full); the
    first time it holds the opportunity is flagged, once.
    """
    return {
        "key": "expansion_near_limit",
        "name": "Expansion: usage near the plan's limit",
        "description": "For each customer in the Expansion stage: once usage passes 80% of their plan's limit "
        "(the account attribute plan_usage_percent), flag an expansion opportunity and give the CSM a task to "
        "start the qualified-lead process with sales.",
        "trigger_type": "stage_entered",
        "trigger_config": {"stage": "expansion"},
        "enrollment_policy": "once",
        "steps": [
            {
                "kind": "usage_check",
                "delay_minutes": DAY,
                "config": {
                    "criteria": "account.attributes.plan_usage_percent >= 80",
                    "on_pass": "continue",
                    # Not near the limit yet: look again tomorrow, from this same step.
                    "on_fail": {"action": "goto", "step": 0},
                },
            },
            {
                "kind": "flag_expansion",
                "delay_minutes": 0,
                "config": {
                    "title": "Near the plan's limit: {{ account.name }}",
                    "note": "Usage passed 80% of the {{ account.plan }} plan's limit in the Expansion stage.",
                },
            },
            {
                "kind": "create_task",
                "delay_minutes": 0,
                "config": {
                    "title": "Talk to {{ account.name }} about a bigger plan; qualify the lead with sales",
                    "due_in_days": 2,
                },
            },
        ],
    }


def churned_exit_and_win_back():
    """A customer who left: its owner learns why while it is fresh, and looks for a way back two months later,
    unless the customer came back first (the run's exit criteria)."""
    return {
        "key": "churned_exit_and_win_back",
        "name": "Churned: exit interview, then a win-back check",
        "description": "For each customer entering Churned: a task for its owner to hold an exit interview within "
        "three days and note why they left, and, two months later unless they came back, a task to check in and "
        "look for a way back.",
        "trigger_type": "stage_entered",
        "trigger_config": {"stage": "churned"},
        # A customer won back who leaves again is asked again.
        "enrollment_policy": "again_after_days",
        "again_after_days": 30,
        "exit_criteria_text": 'stage != "churned"',
        "steps": [
            {
                "kind": "create_task",
                "delay_minutes": 0,
                "config": {
                    "title": "Exit interview: ask {{ account.name }} why they left",
                    "description": "Note what they say on the account page; the reasons feed the next win-back.",
                    "due_in_days": 3,
                },
            },
            {
                "kind": "create_task",
                "delay_minutes": 60 * DAY,
                "config": {
                    "title": "Win-back: check in with {{ account.name }}",
                    "description": "Two months on: has what made them leave changed? Offer a call or a trial.",
                    "due_in_days": 7,
                },
            },
        ],
    }


LIBRARY_BY_KEY = {
    "onboarding_welcome": onboarding_welcome,
    "expansion_near_limit": expansion_near_limit,
    "churned_exit_and_win_back": churned_exit_and_win_back,
}
