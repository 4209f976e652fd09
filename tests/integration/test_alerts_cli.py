"""`stadspuls alerts`: YAML import (all or nothing), list, export, dry run, delete."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from stadspuls.cli import app
from tests.integration.test_alerts import write_pm25

pytestmark = pytest.mark.integration

RULES_YAML = """
rules:
  - id: pm25-high
    name: PM2.5 above 25
    kind: threshold
    scope: {entity_type: AirQualityObserved}
    attribute: pm25
    operator: above
    level: 25
    clear_level: 20
    severity: medium
    category: environment
    sub_category: airPollution
"""


def run(database_url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"STADSPULS_DATABASE_URL": database_url})
    return result.exit_code, result.output


def test_import_list_dry_run_and_delete(api_database: str, tenant: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_YAML)
    code, output = run(api_database, "alerts", "import", str(rules), "--tenant", tenant)
    assert code == 0, output
    assert "imported 1 rules" in output
    code, output = run(api_database, "alerts", "list", "--tenant", tenant)
    assert "pm25-high" in output
    write_pm25(api_database, tenant, [10, 30, 10])
    code, output = run(
        api_database, "alerts", "dry-run", "pm25-high", "--tenant", tenant,
        "--from", "2026-11-02T00:00:00+00:00", "--to", "2026-11-03T00:00:00+00:00", "--json",
    )  # fmt: skip
    assert code == 0, output
    assert orjson.loads(output)["timesFired"] == 1
    code, output = run(api_database, "alerts", "export", "--tenant", tenant)
    assert "id: pm25-high" in output
    assert run(api_database, "alerts", "delete", "pm25-high", "--tenant", tenant)[0] == 0
    assert run(api_database, "alerts", "delete", "pm25-high", "--tenant", tenant)[0] == 1


def test_a_file_with_a_bad_rule_imports_nothing(
    api_database: str, tenant: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        RULES_YAML + RULES_YAML.replace("rules:\n", "").replace("level: 25", "level: x")
    )
    code, output = run(api_database, "alerts", "import", str(rules), "--tenant", tenant)
    assert code == 1
    assert "rule 1" in output
    assert "pm25-high" not in run(api_database, "alerts", "list", "--tenant", tenant)[1]
