"""Batch jobs: chunks done once however often they run, a killed job resumed to the
same end as one clean run, progress on the job record."""

import datetime as dt
import threading

import pytest
from django.db import connection, transaction

from jobs import services as jobs
from jobs.models import Job, JobChunk
from membership.models import GiftIssue, Member, TierHistory
from segments.models import MemberSegment, TierSnapshot
from tests.test_recompute import random_members

TAIPEI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=TAIPEI)

pytestmark = pytest.mark.usefixtures("frozen_clock")


def outcome() -> dict:
    """Everything a recompute writes, without ids that differ between runs."""
    return {
        "members": sorted(
            Member.objects.values_list(
                "pk", "group_id", "earned_tier_id", "tier_id", "next_review_on"
            )
        ),
        "history": sorted(
            TierHistory.objects.values_list(
                "member_id", "from_group_id", "from_tier_id", "to_group_id", "to_tier_id", "cause"
            )
        ),
        "gifts": sorted(GiftIssue.objects.values_list("member_id", "tier_id", "gift")),
    }


def test_a_recompute_job_places_every_member_in_chunks_and_shows_its_progress(programme):
    # given: 30 members, chunks of 10 ids
    random_members(programme, 30)

    # when
    job = jobs.run(kind="recompute", chunk=10)

    # then: three range chunks, the sharers' step and the summaries owed, all done, the
    # counts added up
    assert (job.status, job.chunks_done, job.chunks_total) == ("done", 5, 5)
    assert job.result["changed"] == 30
    assert job.result["history_rows"] == TierHistory.objects.count() == 30
    assert not Member.objects.filter(group__isnull=True).exists()
    assert job.finished_at >= job.started_at


def test_a_chunk_run_twice_changes_nothing_more(programme):
    # given: a job whose first chunk has run
    random_members(programme, 20)
    job = jobs.start(kind="recompute", chunk=10)
    first = job.chunks.order_by("id_from").first()
    assert jobs.run_chunk(first.pk) is True
    after_once = outcome()

    # when: the same chunk is delivered again, and its work is done again regardless
    again = jobs.run_chunk(first.pk)
    from membership.jobs import RECOMPUTE

    redone = RECOMPUTE.steps[0].run(params=job.params, id_from=first.id_from, id_to=first.id_to)

    # then
    assert again is False
    assert (redone["changed"], redone["history_rows"], redone["gifts"]) == (0, 0, 0)
    assert outcome() == after_once
    assert Job.objects.get(pk=job.pk).chunks_done == 1


def test_a_job_killed_half_way_and_started_again_ends_as_one_clean_run(programme, monkeypatch):
    # given: 40 members; what one clean run of the job writes (then undone)
    random_members(programme, 40)
    with transaction.atomic():
        jobs.run(kind="recompute", chunk=10)
        clean = outcome()
        transaction.set_rollback(True)
    assert not Job.objects.exists()

    # when: the run dies in its third chunk (its work rolled back) …
    from membership import jobs as membership_jobs

    real = membership_jobs.bulk.recompute_range
    calls = []

    def dies_in_third_chunk(**kwargs):
        calls.append(kwargs["id_from"])
        if len(calls) == 3:
            raise SystemError("worker killed")
        return real(**kwargs)

    monkeypatch.setattr(membership_jobs.bulk, "recompute_range", dies_in_third_chunk)
    with pytest.raises(SystemError):
        jobs.run(kind="recompute", chunk=10)
    killed = Job.objects.get()
    half_way = (killed.status, killed.chunks_done)
    monkeypatch.setattr(membership_jobs.bulk, "recompute_range", real)

    # … and is started again
    resumed = jobs.run(kind="recompute", chunk=10)

    # then: the same job finished, the unfinished chunks run once, the same writes
    assert half_way == ("running", 2)
    assert (resumed.pk, resumed.status, resumed.chunks_done) == (killed.pk, "done", 6)
    assert JobChunk.objects.get(job=killed, error__startswith="SystemError").attempts == 2
    assert outcome() == clean
    assert resumed.result["changed"] == 40


def test_starting_a_kind_that_is_running_resumes_it_and_fresh_supersedes_it(programme):
    # given: a recompute started and not yet run
    random_members(programme, 5)
    running = jobs.start(kind="recompute")

    # when
    resumed = jobs.start(kind="recompute")
    fresh = jobs.start(kind="recompute", fresh=True)

    # then
    running.refresh_from_db()
    assert resumed.pk == running.pk
    assert (running.status, running.error) == ("failed", jobs.SUPERSEDED)
    assert (fresh.pk != running.pk, fresh.status) == (True, "running")


def test_the_review_nudges_and_segments_jobs_run_to_the_end(programme):
    random_members(programme, 12)
    jobs.run(kind="recompute", chunk=5)

    finished = [jobs.run(kind=kind, chunk=5) for kind in ("review", "nudges", "segments")]

    assert [(j.kind, j.status, j.chunks_done == j.chunks_total) for j in finished] == [
        ("review", "done", True),
        ("nudges", "done", True),
        ("segments", "done", True),
    ]
    assert TierSnapshot.objects.exists()
    assert (
        MemberSegment.objects.count()
        == Member.objects.filter(orders__isnull=False).distinct().count()
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_running_the_same_chunk_at_once_do_it_once(programme):
    # given: a job with one chunk of 30 members
    random_members(programme, 30)
    job = jobs.start(kind="recompute", chunk=1000)
    chunk = job.chunks.get(step=0)
    done, barrier = [], threading.Barrier(2)

    def worker():
        try:
            barrier.wait()
            done.append(jobs.run_chunk(chunk.pk))
        finally:
            connection.close()

    # when: two threads, each with its own connection, take it together
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    # then: one did the work, the other waited and found it done
    assert sorted(done) == [False, True]
    assert TierHistory.objects.count() == 30
    assert Job.objects.get(pk=job.pk).chunks_done == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_chunks_of_one_job_run_side_by_side_without_waiting_for_each_other(
    programme, monkeypatch
):
    from membership import jobs as membership_jobs

    # given: a job of two chunks whose work pauses until both chunks are inside it
    random_members(programme, 20)
    job = jobs.start(kind="recompute", chunk=10)
    first, second = job.chunks.filter(step=0).order_by("id_from")
    real = membership_jobs.bulk.recompute_range
    both_inside = threading.Barrier(2, timeout=20)

    def meets_the_other_chunk(**kwargs):
        both_inside.wait()  # broken (BrokenBarrierError) if one chunk waits for the other
        return real(**kwargs)

    monkeypatch.setattr(membership_jobs.bulk, "recompute_range", meets_the_other_chunk)
    done, errors = [], []

    def worker(chunk):
        try:
            done.append(jobs.run_chunk(chunk.pk))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    # when: two workers take one chunk each at the same moment
    threads = [threading.Thread(target=worker, args=(c,)) for c in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    # then: both were inside their work together, and the progress counts both
    assert (errors, done) == ([], [True, True])
    assert Job.objects.get(pk=job.pk).chunks_done == 2


def test_a_failing_chunk_counts_its_attempt_and_its_last_failure_fails_the_job(
    programme, monkeypatch
):
    from membership import jobs as membership_jobs

    # given: a job whose recompute chunk fails
    random_members(programme, 5)
    job = jobs.start(kind="recompute")
    chunk = job.chunks.get(step=0)

    def broken(**kwargs):
        raise ConnectionError("database went away")

    monkeypatch.setattr(membership_jobs.bulk, "recompute_range", broken)

    # when: it fails twice (the task retries it), then gives up after its last retry
    for _ in range(2):
        with pytest.raises(ConnectionError):
            jobs.run_chunk(chunk.pk)
    still_running = Job.objects.get(pk=job.pk).status
    jobs.fail(chunk.pk, "ConnectionError: database went away")

    # then
    chunk.refresh_from_db()
    job.refresh_from_db()
    assert (chunk.attempts, chunk.done_at, still_running) == (2, None, "running")
    assert (job.status, job.error) == ("failed", "ConnectionError: database went away")
    assert jobs.unfinished("recompute") is None


def test_the_segments_job_in_chunks_writes_what_the_nightly_run_in_one_go_does(programme):
    from membership.models import MemberTag
    from segments.services import compute_segments

    def segments_and_tags() -> dict:
        return {
            "rows": sorted(
                MemberSegment.objects.values_list(
                    "member_id", "rfm_cell", "lifecycle", "recency", "frequency", "monetary"
                )
            ),
            "tags": sorted(MemberTag.objects.values_list("member_id", "tag__name")),
        }

    # given: 40 members placed; what the nightly run in one go writes (then undone)
    random_members(programme, 40)
    jobs.run(kind="recompute")
    with transaction.atomic():
        compute_segments()
        whole = segments_and_tags()
        transaction.set_rollback(True)

    # when: the job runs it in chunks of 7 members
    job = jobs.run(kind="segments", chunk=7)

    # then
    assert job.status == "done"
    assert segments_and_tags() == whole
