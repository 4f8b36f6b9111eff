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


LIBRARY_BY_KEY = {"onboarding_welcome": onboarding_welcome}
