# The ApiKey model moved to the accounts app; its table (registry_apikey) stays as it is.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("registry", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="ApiKey")], database_operations=[]),
    ]
