"""`shoal get` columns for the workload and discovery kinds: what kubectl shows for them."""

from __future__ import annotations

from datetime import UTC, datetime

from shoal.cli.render import headers, rows
from shoal.model.registry import KINDS

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BY_KIND = {info.kind: info for info in KINDS}


def test_jobs_show_status_completions_and_duration() -> None:
    running = {"metadata": {"name": "count", "creationTimestamp": "2026-11-23T11:59:00Z"}, "spec": {"completions": 9},
               "status": {"succeeded": 4, "startTime": "2026-11-23T11:59:00Z"}}
    done = {"metadata": {"name": "once"}, "spec": {"completions": 1},
            "status": {"succeeded": 1, "startTime": "2026-11-23T11:00:00Z", "completionTime": "2026-11-23T11:00:30Z",
                       "conditions": [{"type": "Complete", "status": "True"}]}}
    assert headers(BY_KIND["Job"]) == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert rows(BY_KIND["Job"], [running, done], NOW) == [["count", "Running", "4/9", "60s", "60s"],
                                                         ["once", "Complete", "1/1", "30s", "<unknown>"]]


def test_daemonsets_cronjobs_registrations_and_revisions_have_their_columns() -> None:
    ds = {"metadata": {"name": "sidecar"}, "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                                                      "numberReady": 2, "updatedNumberScheduled": 3,
                                                      "numberAvailable": 2}}
    assert rows(BY_KIND["DaemonSet"], [ds], NOW) == [["sidecar", "3", "3", "2", "3", "2", "<unknown>"]]
    cron = {"metadata": {"name": "nightly"}, "spec": {"schedule": "0 3 * * *"},
            "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": "2026-11-23T03:00:00Z"}}
    assert rows(BY_KIND["CronJob"], [cron], NOW) == [["nightly", "0 3 * * *", "False", "1", "9h", "<unknown>"]]
    reg = {"metadata": {"name": "plc-7"}, "spec": {"service": "plc", "address": "192.0.2.7", "port": 502,
                                                   "ttlSeconds": 30}}
    assert rows(BY_KIND["EndpointRegistration"], [reg], NOW) == [["plc-7", "plc", "192.0.2.7:502", "30s",
                                                                  "<unknown>"]]
    rev = {"metadata": {"name": "web-abc", "ownerReferences": [{"kind": "Deployment", "name": "web"}]},
           "revision": 2}
    assert rows(BY_KIND["DeploymentRevision"], [rev], NOW) == [["web-abc", "2", "web", "<unknown>"]]
