"""Ready-made stage sets a tenant can start from.

Each follows a lifecycle described in customer success practice, with entry
criteria over the built-in metrics that a tenant then tunes to its product.
A stage without criteria is entered only by hand (or is where accounts start).
A renewal stage is entered by date from whichever stage an account is in:
a customer renews whether or not it ever expanded. Every set ends with
Churned, where a customer who leaves is moved by hand with the reason, so
that the board and the portfolio tell it from the customers still there and
the reports count who left and why.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StageSpec:
    key: str
    name: str
    description: str
    colour: str
    criteria: str = ""
    expected_days: int | None = None
    entered_from_any_earlier: bool = False
    is_terminal: bool = False
    outcome: str = ""
    cycle_to: str = ""


@dataclass(frozen=True)
class StageTemplate:
    key: str
    name: str
    description: str
    stages: list[StageSpec] = field(default_factory=list)

    def as_dict(self):
        return {
            "key": self.key,
            "name": self.name,
            "description": self.description,
            "stages": [
                {
                    "key": s.key,
                    "name": s.name,
                    "description": s.description,
                    "colour": s.colour,
                    "entry_criteria_text": s.criteria,
                    "expected_days": s.expected_days,
                    "entered_from_any_earlier": s.entered_from_any_earlier,
                    "is_initial": index == 0,
                    "is_terminal": s.is_terminal,
                    "outcome": s.outcome,
                    "cycle_to": s.cycle_to or None,
                }
                for index, s in enumerate(self.stages)
            ],
        }


CHURNED = StageSpec(
    key="churned",
    name="Churned",
    description="The customer left the cycle. Entered by hand when a customer cancels or does not renew.",
    colour="#6b7280",
    is_terminal=True,
    outcome="churned",
)

TEMPLATES = [
    StageTemplate(
        key="success_lifecycle",
        name="Five stages of the customer success lifecycle",
        description="Onboarding, adoption, usage, value realization and advocacy; renewal is the outcome of them all.",
        stages=[
            StageSpec(
                "onboarding",
                "Onboarding",
                "Welcome the customer and get them set up: installation, data import, configuration. "
                "Time to onboard is the KPI to bring down.",
                "#3b82f6",
                expected_days=30,
            ),
            StageSpec(
                "adoption",
                "Adoption",
                "Setup is done and end users start to work with the product; educate them and watch usage closely.",
                "#06b6d4",
                "metric.days_since_signup >= 14 and metric.active_contacts_30d >= 2",
                expected_days=60,
            ),
            StageSpec(
                "usage",
                "Usage",
                "End users use the full breadth of the features they need; watch for renewal risk and growth.",
                "#10b981",
                "metric.active_contacts_30d >= 5 and metric.events_30d >= 200",
                expected_days=90,
            ),
            StageSpec(
                "value_realization",
                "Value realization",
                "The product met the business case the customer bought it for; the time for cross-sells and upsells.",
                "#84cc16",
                "metric.days_since_signup >= 90 and metric.events_90d >= 1000 and metric.active_contacts_30d >= 5",
                expected_days=120,
            ),
            StageSpec(
                "advocacy",
                "Advocacy",
                "Happy customers tell their peers: ask for reviews, testimonials, case studies and referrals.",
                "#f59e0b",
                "metric.days_since_signup >= 180 and metric.active_contacts_30d >= 10 and metric.events_30d >= 500",
            ),
            CHURNED,
        ],
    ),
    StageTemplate(
        key="onboarding_to_renewal",
        name="Onboarding, adopting, expanding, renewal",
        description="Four stages that tell a new user who needs setup help from a mature one ready for more.",
        stages=[
            StageSpec(
                "onboarding",
                "Onboarding",
                "A new customer setting up the account: welcome email, a personalised demo, then a usage check.",
                "#3b82f6",
                expected_days=14,
            ),
            StageSpec(
                "adopting",
                "Adopting",
                "Users are learning the product; point them to the features they have not used yet.",
                "#10b981",
                "metric.active_contacts_7d >= 2 and metric.events_7d >= 20",
                expected_days=60,
            ),
            StageSpec(
                "expanding",
                "Expanding",
                "A mature customer using the product widely, interested in advanced features or a bigger plan.",
                "#8b5cf6",
                "metric.active_contacts_30d >= 5 and metric.events_30d >= 300",
            ),
            StageSpec(
                "renewal",
                "Renewal",
                "The renewal is near: make sure billing is in order and the value is visible before the decision.",
                "#f59e0b",
                "metric.days_to_renewal <= 90",
                expected_days=90,
                entered_from_any_earlier=True,
            ),
            CHURNED,
        ],
    ),
    StageTemplate(
        key="implementation_to_mature_adoption",
        name="Pre-onboarding to mature adoption",
        description="Five stages with explicit entry criteria, from the first conversation to expert use.",
        stages=[
            StageSpec(
                "pre_onboarding",
                "Pre-onboarding",
                "The customer success team is involved before the deal closes: implementation and onboarding "
                "planning, introductions. No entry criteria.",
                "#94a3b8",
                expected_days=30,
            ),
            StageSpec(
                "onboarding",
                "Onboarding",
                "Entered when the prospect becomes a customer: meet the CSM, outline the implementation roadmap "
                "and the success criteria.",
                "#3b82f6",
                "metric.days_since_signup >= 0",
                expected_days=14,
            ),
            StageSpec(
                "implementation",
                "Implementation",
                "Technical and process work to connect, integrate and set up the product; aim for first time to value.",
                "#06b6d4",
                "metric.events_7d >= 1",
                expected_days=30,
            ),
            StageSpec(
                "early_adoption",
                "Early adoption",
                "First time to value reached: the customer sees real value and churn risk is lower than before.",
                "#10b981",
                "metric.active_contacts_30d >= 3 and metric.events_30d >= 50",
                expected_days=90,
            ),
            StageSpec(
                "mature_adoption",
                "Mature adoption",
                "Proficient users realising the product's full value, with a low risk of churn.",
                "#16a34a",
                "metric.days_since_signup >= 180 and metric.active_contacts_30d >= 10 and metric.events_90d >= 1000",
            ),
            CHURNED,
        ],
    ),
    StageTemplate(
        key="renewal_cycle",
        name="Customer lifecycle as a cycle",
        description="Awareness to renewal; a renewed customer re-enters the cycle at ongoing engagement instead "
        "of starting again. Customers who leave the cycle are marked churned.",
        stages=[
            StageSpec(
                "awareness",
                "Awareness and education",
                "A potential customer searches for a solution; marketing content positions the product.",
                "#94a3b8",
            ),
            StageSpec(
                "conversion",
                "Conversion",
                "The prospect engages (trial, webinar, download); targeted messages lead to the first purchase.",
                "#a855f7",
                "metric.events_30d >= 1",
                expected_days=30,
            ),
            StageSpec(
                "activation",
                "Purchase and activation",
                "A new customer: the sales-to-success handover and onboarding, matching what was promised.",
                "#3b82f6",
                "metric.days_since_signup >= 0 and metric.active_contacts_7d >= 1",
                expected_days=30,
            ),
            StageSpec(
                "engagement",
                "Ongoing engagement and support",
                "The product is in daily use; keep up outreach and education and watch health to prevent churn.",
                "#10b981",
                "metric.active_contacts_30d >= 3 and metric.events_30d >= 100",
            ),
            StageSpec(
                "renewal",
                "Renewal and advocacy",
                "Renewal is near: show how the customer grew, present the return on investment. Once renewed, "
                "the customer goes back to ongoing engagement.",
                "#f59e0b",
                "metric.days_to_renewal <= 60",
                expected_days=60,
                entered_from_any_earlier=True,
                cycle_to="engagement",
            ),
            CHURNED,
        ],
    ),
    StageTemplate(
        key="eight_stages",
        name="Eight stages from outreach to expansion",
        description="The full life cycle across marketing, sales and customer success.",
        stages=[
            StageSpec(
                "outreach",
                "Outreach",
                "A potential customer identifies a need and compares solutions; marketing shares educational "
                "content and success stories.",
                "#94a3b8",
            ),
            StageSpec(
                "connection",
                "Connection",
                "A confirmed connection with a potential buyer: a newsletter sign-up, a downloaded ebook.",
                "#a855f7",
                "metric.active_contacts_30d >= 1",
                expected_days=60,
            ),
            StageSpec(
                "conversion",
                "Conversion",
                "The prospect becomes a customer; sales hands over why they bought so onboarding builds on it.",
                "#6366f1",
                "metric.days_since_signup >= 0",
                expected_days=7,
            ),
            StageSpec(
                "onboarding",
                "Onboarding",
                "A consistent, high-quality onboarding program tailored to the customer's needs.",
                "#3b82f6",
                "metric.days_since_signup >= 1",
                expected_days=30,
            ),
            StageSpec(
                "experience",
                "Experience",
                "Customers use the product for what they bought it for; nudge and support them to adopt new "
                "ways of working.",
                "#06b6d4",
                "metric.days_since_signup >= 30 and metric.active_contacts_30d >= 3",
                expected_days=60,
            ),
            StageSpec(
                "value",
                "Value",
                "Help the customer recognise the value they receive; monitor health and act on downward trends.",
                "#10b981",
                "metric.active_contacts_30d >= 5 and metric.events_30d >= 300",
                expected_days=90,
            ),
            StageSpec(
                "retention",
                "Retention",
                "Show the value consistently and talk about the coming renewal in good time.",
                "#f59e0b",
                "metric.days_to_renewal <= 90",
                expected_days=90,
            ),
            StageSpec(
                "expansion",
                "Expansion",
                "Room for growth, such as nearing the plan's usage limit: start the qualified-lead process with sales.",
                "#ec4899",
                "metric.active_contacts_30d >= 10 and metric.events_30d >= 1000",
            ),
            CHURNED,
        ],
    ),
]

TEMPLATES_BY_KEY = {template.key: template for template in TEMPLATES}
