import datetime as dt

import django.utils.timezone
from django.db import migrations, models

# Marks set before this field existed may hold changes of any age: they say nothing newer than the epoch.
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class Migration(migrations.Migration):

    dependencies = [
        ("customers", "0010_tenant_indexed_by_its_keys"),
    ]

    operations = [
        migrations.AddField(
            model_name="dirtyaccount",
            name="waiting_since",
            field=models.DateTimeField(default=EPOCH),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="dirtyaccount",
            name="waiting_since",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
    ]
