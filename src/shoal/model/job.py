"""The Job and CronJob kinds, and the 5-field cron schedules CronJobs run on.

Job: run pods of a template until ``completions`` succeed, ``parallelism`` at a time, giving up
after ``backoffLimit`` failures or ``activeDeadlineSeconds``. CronJob: a ``jobTemplate`` stamped
into a Job on a ``schedule``. ``CronSchedule.parse`` turns "*/5 * * * *" into sets of allowed
values (errors name the field) and ``next_after`` finds the next minute it fires. Pure shapes and
parsing: no clock, no I/O; how Jobs run is the job controller's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import msgspec

from shoal.model.base import API_VERSION, Object, Spec
from shoal.model.errors import FieldError
from shoal.model.meta import Condition, LabelSelector, ObjectMeta, ObjectReference
from shoal.model.pod import PodTemplateSpec, RestartPolicy

LABEL_JOB_NAME = "shoal.io/job-name"
ANNOTATION_SCHEDULED_AT = "shoal.io/scheduled-at"


class JobConditionType(StrEnum):
    COMPLETE = "Complete"
    FAILED = "Failed"


class JobSpec(Spec, frozen=True, kw_only=True, omit_defaults=False):
    completions: int = 1
    parallelism: int = 1
    backoff_limit: int = 6
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None
    selector: LabelSelector | None = None
    template: PodTemplateSpec = msgspec.field(default_factory=PodTemplateSpec)


class JobStatus(Spec, frozen=True, kw_only=True, omit_defaults=False):
    active: int = 0
    ready: int = 0
    succeeded: int = 0
    failed: int = 0
    start_time: str = ""
    completion_time: str = ""
    conditions: list[Condition] = msgspec.field(default_factory=list)


class Job(Object, frozen=True, kw_only=True, tag="Job"):
    api_version: str = API_VERSION
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: JobSpec = msgspec.field(default_factory=JobSpec)
    status: JobStatus = msgspec.field(default_factory=JobStatus)


class ConcurrencyPolicy(StrEnum):
    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class JobTemplateSpec(Spec, frozen=True, kw_only=True):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: JobSpec = msgspec.field(default_factory=JobSpec)


class CronJobSpec(Spec, frozen=True, kw_only=True, omit_defaults=False):
    schedule: str = ""
    job_template: JobTemplateSpec = msgspec.field(default_factory=JobTemplateSpec)
    concurrency_policy: ConcurrencyPolicy = ConcurrencyPolicy.ALLOW
    starting_deadline_seconds: int | None = None
    suspend: bool = False
    successful_jobs_history_limit: int = 3
    failed_jobs_history_limit: int = 1


class CronJobStatus(Spec, frozen=True, kw_only=True, omit_defaults=False):
    active: list[ObjectReference] = msgspec.field(default_factory=list)
    last_schedule_time: str = ""
    last_successful_time: str = ""
    conditions: list[Condition] = msgspec.field(default_factory=list)


class CronJob(Object, frozen=True, kw_only=True, tag="CronJob"):
    api_version: str = API_VERSION
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: CronJobSpec = msgspec.field(default_factory=CronJobSpec)
    status: CronJobStatus = msgspec.field(default_factory=CronJobStatus)


# -- cron schedules ---------------------------------------------------------------------------

class CronError(ValueError):
    """A schedule that does not parse; the message names the field and the fix."""


_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_NAMES = {3: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
          4: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]}
_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
           "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_SEARCH_YEARS = 9  # "0 0 29 2 *" fires once in four (sometimes eight) years


def _value(text: str, index: int) -> int:
    name, low, high = _FIELDS[index]
    names = _NAMES.get(index, [])
    if text.lower() in names:
        return names.index(text.lower()) + (1 if index == 3 else 0)
    if not text.isdigit():
        hint = f" or a name ({', '.join(names[:3])}, ...)" if names else ""
        raise CronError(f'{name} field: "{text}" is not a number{hint}')
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{name} field: {value} is out of range {low}-{high}")
    return value


def _field(text: str, index: int) -> frozenset[int]:
    name, low, high = _FIELDS[index]
    out: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f'{name} field: empty list item in "{text}"')
        body, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f'{name} field: step "{step_text}" in "{part}" must be a positive number')
            step = int(step_text)
        if body == "*":
            first, last = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            first, last = _value(a, index), _value(b, index)
            if first > last:
                raise CronError(f'{name} field: range "{body}" runs backwards; write {b}-{a}')
        else:
            first = _value(body, index)
            last = high if slash else first
        out.update(range(first, last + 1, step))
    if index == 4 and 7 in out:  # 7 is Sunday too
        out = (out - {7}) | {0}
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, text: str) -> CronSchedule:
        """Parse "MIN HOUR DOM MON DOW" (numbers, names, ``*``, ranges, steps, lists) or a macro."""
        source = _MACROS.get(text.strip().lower(), text)
        parts = source.split()
        if len(parts) != 5:
            raise CronError(f'"{text}" has {len(parts)} fields; a schedule has 5: minute hour day-of-month month '
                            'day-of-week, e.g. "*/5 * * * *" (or @hourly, @daily, @weekly, @monthly, @yearly)')
        minutes, hours, days, months, weekdays = (_field(part, i) for i, part in enumerate(parts))
        return cls(minutes, hours, days, months, weekdays, days_restricted=not parts[2].startswith("*"),
                   weekdays_restricted=not parts[4].startswith("*"))

    def _day_matches(self, moment: datetime) -> bool:
        in_days = moment.day in self.days
        in_weekdays = (moment.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays  # as in Vixie cron: either one
        return in_days and in_weekdays

    def next_after(self, moment: datetime) -> datetime | None:
        """The first firing time strictly after ``moment`` (same tzinfo), or None within 9 years."""
        t = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = moment + timedelta(days=366 * _SEARCH_YEARS)
        while t <= limit:
            if t.month not in self.months:
                first = t.replace(day=1, hour=0, minute=0)
                t = first.replace(year=t.year + 1, month=1) if t.month == 12 else first.replace(month=t.month + 1)
            elif not self._day_matches(t):
                t = (t + timedelta(days=1)).replace(hour=0, minute=0)
            elif t.hour not in self.hours:
                t = (t + timedelta(hours=1)).replace(minute=0)
            elif t.minute not in self.minutes:
                t += timedelta(minutes=1)
            else:
                return t
        return None


def job_errors(job: Job | JobTemplateSpec, path: str = "spec") -> list[FieldError]:
    """Job-specific semantic problems (the pod template itself is checked by ``validation``)."""
    spec = job.spec
    errors: list[FieldError] = []
    for name, value in (("completions", spec.completions), ("parallelism", spec.parallelism),
                        ("backoffLimit", spec.backoff_limit), ("activeDeadlineSeconds", spec.active_deadline_seconds),
                        ("ttlSecondsAfterFinished", spec.ttl_seconds_after_finished)):
        if value is not None and value < 0:
            errors.append(FieldError(f"{path}.{name}", "must not be negative"))
    if spec.template.spec.restart_policy == RestartPolicy.ALWAYS:
        errors.append(FieldError(f"{path}.template.spec.restartPolicy",
                                 'a Job\'s pods must end: use "Never" or "OnFailure"'))
    return errors


def cronjob_errors(cron: CronJob) -> list[FieldError]:
    errors = job_errors(cron.spec.job_template, "spec.jobTemplate.spec")
    try:
        CronSchedule.parse(cron.spec.schedule)
    except CronError as exc:
        errors.append(FieldError("spec.schedule", str(exc)))
    for name, value in (("successfulJobsHistoryLimit", cron.spec.successful_jobs_history_limit),
                        ("failedJobsHistoryLimit", cron.spec.failed_jobs_history_limit)):
        if value < 0:
            errors.append(FieldError(f"spec.{name}", "must not be negative"))
    return errors
