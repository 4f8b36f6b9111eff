import pytest

from lifecycle.services import stage_create


@pytest.fixture
def lifecycle_stages(tenant, alice):
    """trial -> paying (mrr > 0) -> growing (mrr >= 1000) -> lost (terminal) -> won_back (mrr >= 1)."""
    return {
        "trial": stage_create(tenant=tenant, actor=alice, key="trial", name="Trial", expected_days=14),
        "paying": stage_create(
            tenant=tenant,
            actor=alice,
            key="paying",
            name="Paying",
            entry_criteria_text="account.mrr > 0",
            expected_days=30,
        ),
        "growing": stage_create(
            tenant=tenant, actor=alice, key="growing", name="Growing", entry_criteria_text="account.mrr >= 1000"
        ),
        "lost": stage_create(tenant=tenant, actor=alice, key="lost", name="Lost", is_terminal=True, outcome="churned"),
        "won_back": stage_create(
            tenant=tenant, actor=alice, key="won_back", name="Won back", entry_criteria_text="account.mrr >= 1"
        ),
    }
