"""Every model change has its migration (a changed help text included: the admin reads it)."""

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_model_change_lacks_a_migration(capsys):
    try:
        call_command("makemigrations", "--check", "--dry-run")
    except SystemExit as exit_:
        pytest.fail(f"makemigrations found changes without a migration:\n{capsys.readouterr().out}"
                    f" (exit {exit_.code})")
