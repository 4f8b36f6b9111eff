from django.db import migrations

from csplatform.tenancy.rls import dangerously_bypass_rls


def forget_the_repeated_reason(apps, schema_editor):
    StageTransition = apps.get_model("lifecycle", "StageTransition")
    # Every tenant's moves at once.
    with dangerously_bypass_rls():
        StageTransition.objects.filter(kind="automatic", reason="Entry criteria met.").update(reason="")


class Migration(migrations.Migration):
    """Automatic moves said "Entry criteria met." as their reason beside their kind, which says the same."""

    dependencies = [
        ("lifecycle", "0003_stage_entered_from_any_earlier"),
    ]

    operations = [
        migrations.RunPython(forget_the_repeated_reason, migrations.RunPython.noop),
    ]
