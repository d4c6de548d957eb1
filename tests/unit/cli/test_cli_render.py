"""Pure pieces of the CLI: durations, pod status, tables, drain plans, the verb finder, lazy sub-apps."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from typer.testing import CliRunner

from shoal.cli import render
from shoal.cli.common import CliError, parse_refs, render_table
from shoal.cli.main import LAZY_APPS, build_app, command_word
from shoal.cli.node import plan_drain
from shoal.model import lookup


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (59, "59s"), (119, "119s"), (120, "2m"), (330, "5m30s"), (600, "10m"), (9000, "150m"),
    (3 * 3600 + 60, "3h1m"), (36 * 3600, "36h"), (4 * 86400 + 5 * 3600, "4d5h"), (120 * 86400, "120d"),
    (3 * 365 * 86400, "3y"), (-5, "0s"),
])
def test_human_duration_matches_kubectl(seconds: int, text: str) -> None:
    assert render.human_duration(seconds) == text


def test_age_of_bad_or_missing_timestamps() -> None:
    now = datetime(2026, 11, 23, 8, 0, 30, tzinfo=UTC)
    assert render.age("2026-11-23T08:00:00Z", now) == "30s"
    assert render.age("", now) == "<unknown>"
    assert render.age("yesterday", now) == "<unknown>"


def test_pod_status_prefers_terminating_then_container_reason() -> None:
    base: dict[str, Any] = {"metadata": {}, "status": {"phase": "Running", "containerStatuses": [
        {"name": "c", "state": "Waiting", "reason": "CrashLoopBackOff"}]}}
    assert render.pod_status(base) == "CrashLoopBackOff"
    assert render.pod_status({**base, "metadata": {"deletionTimestamp": "x"}}) == "Terminating"
    assert render.pod_status({"status": {"phase": "Succeeded"}}) == "Succeeded"
    assert render.pod_status({}) == "Pending"


def test_events_sort_oldest_first_with_object_column() -> None:
    events = [{"kind": "Event", "metadata": {"name": "2"}, "lastTimestamp": "2026-01-01T00:00:10Z", "reason": "B",
               "involvedObject": {"kind": "Pod", "name": "p"}, "message": "later"},
              {"kind": "Event", "metadata": {"name": "1"}, "lastTimestamp": "2026-01-01T00:00:00Z", "reason": "A",
               "involvedObject": {"kind": "Node", "name": "n"}, "message": "first one"}]
    now = datetime(2026, 1, 1, 0, 1, 0, tzinfo=UTC)
    rows = render.rows(lookup("events"), events, now)
    assert render.headers(lookup("ev")) == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert rows == [["60s", "Normal", "A", "node/n", "first one"], ["50s", "Normal", "B", "pod/p", "later"]]


def test_deployment_and_config_rows() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    deploy = {"metadata": {"name": "web"}, "spec": {"replicas": 3},
              "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    assert render.row(lookup("deploy"), deploy, now)[:4] == ["web", "2/3", "3", "2"]
    assert render.row(lookup("cm"), {"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}, now)[:2] == ["c", "2"]


def test_render_table_has_no_borders_or_trailing_spaces() -> None:
    text = render_table(["NAME", "STATUS"], [["a-long-name", "Running"], ["b", "Pending"]])
    assert text.splitlines() == ["NAME          STATUS", "a-long-name   Running", "b             Pending"]


def test_parse_refs_accepts_both_spellings_and_rejects_mixtures() -> None:
    assert parse_refs(["deploy", "a", "b"], verb="get") == [(lookup("Deployment"), "a"), (lookup("Deployment"), "b")]
    assert parse_refs(["po/a", "svc/b"], verb="get") == [(lookup("Pod"), "a"), (lookup("Service"), "b")]
    for bad in (["po/a", "b"], ["po/"], ["pod"], []):
        with pytest.raises(CliError) as err:
            parse_refs(bad, verb="delete")
        assert err.value.code == 2
    with pytest.raises(CliError) as unknown:
        parse_refs(["pdo", "a"], verb="get")
    assert unknown.value.code == 1


def _pod(name: str, owner_kind: str | None) -> dict[str, Any]:
    owners = [{"kind": owner_kind, "name": "x", "uid": "u", "controller": True}] if owner_kind else []
    return {"metadata": {"name": name, "namespace": "default", "ownerReferences": owners}}


def test_drain_plan() -> None:
    pods = [_pod("d", "Deployment"), _pod("ds", "DaemonSet"), _pod("bare", None)]
    plan = plan_drain(pods, force=False)
    assert [p["metadata"]["name"] for p in plan.delete] == ["d"]
    assert [p["metadata"]["name"] for p in plan.daemonset] == ["ds"]
    assert [p["metadata"]["name"] for p in plan.bare] == ["bare"]
    forced = plan_drain(pods, force=True)
    assert [p["metadata"]["name"] for p in forced.delete] == ["d", "bare"]
    assert forced.bare == []


def test_command_word_skips_global_options_and_their_values() -> None:
    assert command_word(["--config", "a.yaml", "-n", "x", "server", "--port", "1"]) == "server"
    assert command_word(["--config=a.yaml", "get", "pods"]) == "get"
    assert command_word(["--help"]) is None
    assert command_word([]) is None


def test_get_pods_does_not_import_server_side_packages() -> None:
    code = ("import sys; from shoal.cli.main import build_app; build_app(['get', 'pods']); "
            "print(sorted(m for m in sys.modules if m.split('.')[:2] in "
            "(['shoal','server'],['shoal','sim'],['shoal','agent'],['shoal','store'],['shoal','api'])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_every_command_help_has_an_example() -> None:
    runner = CliRunner()
    core = ["apply", "create", "get", "describe", "delete", "scale", "version",
            "node cordon", "node uncordon", "node drain"]
    for command in core:
        args = [*command.split(), "--help"]
        result = runner.invoke(build_app(args), args)
        assert result.exit_code == 0, command
        assert "$ shoal " in result.stdout, command
    top = runner.invoke(build_app(["--help"]), ["--help"])
    for _, name, _ in LAZY_APPS:
        assert name in top.stdout


def test_a_sub_app_missing_from_the_install_is_an_error_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from shoal.cli import main

    monkeypatch.setattr(main, "LAZY_APPS", (("shoal.nonexistent.cli", "ghost", "Nothing."),))
    listing = CliRunner().invoke(main.build_app(["--help"]), ["--help"])
    assert "ghost" in listing.stdout
    result = CliRunner().invoke(main.build_app(["ghost"]), ["ghost", "x"])
    assert result.exit_code == 3
    assert "`shoal ghost` is not available" in result.stderr


def test_endpoints_show_ready_addresses_like_kubectl() -> None:
    from shoal.cli.render import headers, rows
    from shoal.model import lookup

    info = lookup("ep")
    ep = {"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": f"10.77.0.{i}"} for i in range(2, 7)],
                                                  "ports": [{"port": 8080}]}]}
    assert headers(info) == ["NAME", "ENDPOINTS", "AGE"]
    [row] = rows(info, [ep])
    assert row[1] == "10.77.0.2:8080,10.77.0.3:8080,10.77.0.4:8080 + 2 more..."
    assert rows(info, [{"metadata": {"name": "idle"}}])[0][1] == "<none>"
