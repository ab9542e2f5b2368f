"""FhirClient against a real FHIR test server on 127.0.0.1 (see fhir_server.py and conftest.py).

``sleep`` is injected to record the delays the client asks for instead of waiting them out; every
request still goes over TCP to the uvicorn server.
"""

from __future__ import annotations

import email.utils
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from tests.ingest.fhir_server import (
    PHI_MARKER,
    TRANSACTION_TIME,
    RunningFhirServer,
    Truncation,
    cut_point,
)

from bedside.errors import (
    AuthenticationFailed,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    StoreError,
    StoreUnavailable,
)
from bedside.ingest.fhir import ExportProgress, FhirClient
from bedside.ingest.fhir._http import parse_retry_after
from bedside.ingest.fhir.state import STATE_FILE

TOKEN = "s3cret-token"


class Sleeps(list[float]):
    """A ``sleep`` that records the requested delays and returns at once."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


ClientFactory = Callable[..., tuple[FhirClient, Sleeps]]


@pytest.fixture
def client_for() -> Iterator[ClientFactory]:
    """Return a factory of clients (with a recording ``sleep``) that are closed after the test."""
    made: list[FhirClient] = []

    def make(server: RunningFhirServer, **kwargs: object) -> tuple[FhirClient, Sleeps]:
        sleeps = Sleeps()
        options: dict[str, object] = {"sleep": sleeps, "timeout": 5.0}
        options.update(kwargs)
        client = FhirClient(server.base_url, **options)  # type: ignore[arg-type]
        made.append(client)
        return client, sleeps

    yield make
    for client in made:
        client.close()


def served_files(server: RunningFhirServer, job_id: str = "job-1") -> dict[str, bytes]:
    job = server.state.created_jobs[job_id]
    return {name: content for name, (_, content, _) in job.files.items()}


# -- search ---------------------------------------------------------------------------------------


def test_search_follows_next_links_across_pages(
    client_for: ClientFactory, fhir_server: RunningFhirServer
) -> None:
    client, _ = client_for(fhir_server)
    patients = list(client.search("Patient"))
    assert [p["id"] for p in patients] == [f"pat-{i}" for i in range(1, 8)]
    pages = fhir_server.state.requests("GET", "/fhir/Patient")
    assert len(pages) == 3  # 7 patients, 3 per page
    assert [r.query for r in pages] == ["", "_offset=3", "_offset=6"]


def test_search_passes_params_and_pages_them(
    client_for: ClientFactory, fhir_server: RunningFhirServer
) -> None:
    client, _ = client_for(fhir_server)
    found = list(client.search("Observation", {"subject": "Patient/pat-2", "_count": 2}))
    assert [o["id"] for o in found] == ["obs-pat-2-1", "obs-pat-2-2", "obs-pat-2-3"]
    queries = [r.query for r in fhir_server.state.requests("GET", "/fhir/Observation")]
    assert len(queries) == 2
    assert all("subject=Patient%2Fpat-2" in q and "_count=2" in q for q in queries)


def test_search_sends_the_bearer_token(
    client_for: ClientFactory, fhir_server: RunningFhirServer
) -> None:
    fhir_server.state.config.token = TOKEN
    client, _ = client_for(fhir_server, token=TOKEN)
    assert len(list(client.search("Patient"))) == 7
    assert {r.authorization for r in fhir_server.state.log} == {f"Bearer {TOKEN}"}


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_search_401_is_a_clear_authentication_error(
    client_for: ClientFactory, fhir_server: RunningFhirServer, token: str | None
) -> None:
    fhir_server.state.config.token = TOKEN
    client, sleeps = client_for(fhir_server, token=token)
    with pytest.raises(AuthenticationFailed) as caught:
        list(client.search("Patient", {"identifier": "MRN1234567"}))
    message = str(caught.value)
    assert "401" in message and "GET /fhir/Patient" in message and "token" in message
    assert "MRN1234567" not in message and PHI_MARKER not in message
    assert caught.value.details["issue_codes"] == ["login"]
    assert sleeps == []  # 401 is not retried
    assert len(fhir_server.state.log) == 1


def test_error_messages_never_echo_query_or_response_body(
    client_for: ClientFactory,
    fhir_server: RunningFhirServer,
) -> None:
    fhir_server.state.config.fail["search"] = [400]
    client, _ = client_for(fhir_server)
    with pytest.raises(InvalidInput) as caught:
        list(client.search("Patient", {"identifier": "MRN1234567", "name": "Jane"}))
    text = f"{caught.value} {caught.value.details}"
    assert "400" in text and "/fhir/Patient" in text and "processing" in text
    assert "MRN1234567" not in text and "Jane" not in text and PHI_MARKER not in text


def test_search_retries_honouring_retry_after_seconds(
    client_for: ClientFactory, fhir_server: RunningFhirServer
) -> None:
    fhir_server.state.config.fail["search"] = [429, 503]
    fhir_server.state.config.retry_after = "7"
    client, sleeps = client_for(fhir_server)
    assert len(list(client.search("Patient"))) == 7
    assert sleeps == [7.0, 7.0]
    assert len(fhir_server.state.requests("GET", "/fhir/Patient")) == 5  # 2 refused + 3 pages


def test_retry_after_http_date_is_honoured(
    client_for: ClientFactory, fhir_server: RunningFhirServer
) -> None:
    fhir_server.state.config.fail["search"] = [429]
    fhir_server.state.config.retry_after = "date:3"
    client, sleeps = client_for(fhir_server)
    assert len(list(client.search("Patient"))) == 7
    assert len(sleeps) == 1
    # An HTTP-date has whole-second resolution: now+3 s truncated is 2-3 s away.
    assert 1.5 < sleeps[0] <= 3.0


def test_429_storm_eventually_succeeds(
    client_for: ClientFactory, fhir_server: RunningFhirServer
) -> None:
    fhir_server.state.config.fail["search"] = [429] * 5
    client, sleeps = client_for(fhir_server, max_retries=5)
    assert len(list(client.search("Patient"))) == 7
    assert sleeps == [1.0] * 5


def test_429_storm_gives_up_after_max_retries(
    client_for: ClientFactory, fhir_server: RunningFhirServer
) -> None:
    fhir_server.state.config.fail["search"] = [429] * 20
    client, sleeps = client_for(fhir_server, max_retries=3)
    with pytest.raises(StoreUnavailable) as caught:
        list(client.search("Patient", {"identifier": "MRN1234567"}))
    message = str(caught.value)
    assert "429" in message and "4 attempt(s)" in message and "GET /fhir/Patient" in message
    assert "MRN1234567" not in message and PHI_MARKER not in message
    assert len(sleeps) == 3
    assert len(fhir_server.state.log) == 4


def test_backoff_without_retry_after_doubles_with_jitter(
    client_for: ClientFactory, fhir_server: RunningFhirServer
) -> None:
    fhir_server.state.config.fail["search"] = [500, 502, 500, 500]
    fhir_server.state.config.retry_after = None
    client, sleeps = client_for(fhir_server, backoff=1.0, max_backoff=3.0)
    assert len(list(client.search("Patient"))) == 7
    ceilings = [1.0, 2.0, 3.0, 3.0]  # 1, 2, 4 -> capped at 3
    assert len(sleeps) == 4
    for delay, ceiling in zip(sleeps, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling


def test_paging_loop_is_an_error(client_for: ClientFactory, fhir_server: RunningFhirServer) -> None:
    fhir_server.state.config.paging_loop = True
    client, _ = client_for(fhir_server)
    with pytest.raises(StoreError, match="Paging loop"):
        list(client.search("Patient"))
    assert len(fhir_server.state.log) == 2  # page 2 links back to page 1: not fetched again


def test_timeout_gives_a_clear_error(
    client_for: ClientFactory, fhir_server: RunningFhirServer
) -> None:
    fhir_server.state.config.slow_seconds = 1.0
    client, sleeps = client_for(fhir_server, timeout=0.2, max_retries=1)
    with pytest.raises(StoreUnavailable, match=r"GET /fhir/Patient timed out after 0.2 s, 2 time"):
        list(client.search("Patient"))
    assert len(sleeps) == 1
    assert len(fhir_server.state.log) == 2


def test_unreachable_server_gives_a_clear_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on once this closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = Sleeps()
    with (
        FhirClient(f"http://127.0.0.1:{port}/fhir", max_retries=2, sleep=sleeps) as client,
        pytest.raises(StoreUnavailable, match="Could not reach the FHIR server") as caught,
    ):
        list(client.search("Patient"))
    assert "3 attempt(s)" in str(caught.value)
    assert len(sleeps) == 2


# -- bulk export ----------------------------------------------------------------------------------


def test_system_export_downloads_every_file(
    client_for: ClientFactory, fhir_server: RunningFhirServer, tmp_path: Path
) -> None:
    events: list[ExportProgress] = []
    client, sleeps = client_for(fhir_server)
    result = client.export(tmp_path / "out", on_progress=events.append)

    assert result.transaction_time == TRANSACTION_TIME
    assert result.request.endswith("/fhir/$export")
    assert result.counts == {"Patient": 7, "Observation": 21}
    assert [p.name for p in result.files["Observation"]] == [
        "Observation.001.ndjson",
        "Observation.002.ndjson",
    ]
    content = served_files(fhir_server)
    assert result.files["Patient"][0].read_bytes() == content["Patient.1.ndjson"]
    assert result.files["Observation"][0].read_bytes() == content["Observation.1.ndjson"]
    assert result.files["Observation"][1].read_bytes() == content["Observation.2.ndjson"]
    assert result.bytes_downloaded == sum(len(c) for c in content.values())
    assert result.errors == () and result.files_skipped == 0

    assert sleeps == [1.0, 1.0]  # two 202 polls, each with Retry-After: 1
    waiting = [e for e in events if e.phase == "waiting"]
    assert [e.server_progress for e in waiting] == ["33% complete", "66% complete"]
    assert events[-1].phase == "done"
    assert events[-1].files_done == events[-1].files_total == 3
    assert events[-1].bytes_done == result.bytes_downloaded

    # the job is cleaned up on the server once the files are safe
    assert fhir_server.state.deleted_jobs == ["job-1"]
    state = orjson.loads((tmp_path / "out" / STATE_FILE).read_bytes())
    assert state["cleaned_up"] is True
    assert sorted(state["files"]) == [
        "Observation.001.ndjson",
        "Observation.002.ndjson",
        "Patient.001.ndjson",
    ]
    assert not list((tmp_path / "out").glob("*.part"))


def test_export_kick_off_headers_and_parameters(
    client_for: ClientFactory, fhir_server: RunningFhirServer, tmp_path: Path
) -> None:
    client, _ = client_for(fhir_server)
    result = client.export(
        tmp_path,
        "patient",
        types=["Patient", "Observation"],
        since=datetime(2025, 3, 1, tzinfo=UTC),
        output_format="application/fhir+ndjson",
    )
    (kick,) = fhir_server.state.requests("GET", "$export")
    assert kick.path == "/fhir/Patient/$export"
    assert kick.prefer == "respond-async"
    assert kick.accept == "application/fhir+json"
    assert kick.query == (
        "_type=Patient%2CObservation&_since=2025-03-01T00%3A00%3A00%2B00%3A00"
        "&_outputFormat=application%2Ffhir%2Bndjson"
    )
    polls = fhir_server.state.requests("GET", "/jobs/")
    assert {p.accept for p in polls} == {"application/json"}
    # _since keeps resources updated after 1 March: months 3-6 -> patients 3, 4, 5, 6
    assert result.counts == {"Patient": 4, "Observation": 12}


def test_group_export(
    client_for: ClientFactory, fhir_server: RunningFhirServer, tmp_path: Path
) -> None:
    client, _ = client_for(fhir_server)
    result = client.export(tmp_path, "group", group_id="grp-1", types=["Patient"])
    assert fhir_server.state.requests("GET", "$export")[0].path == "/fhir/Group/grp-1/$export"
    assert result.counts == {"Patient": 4}
    with pytest.raises(NotFound, match="GET /fhir/Group/nope/\\$export"):
        client.start_export("group", group_id="nope")


def test_export_arguments_are_checked_before_any_request(
    client_for: ClientFactory, fhir_server: RunningFhirServer
) -> None:
    client, _ = client_for(fhir_server)
    with pytest.raises(InvalidInput, match="group_id is required"):
        client.start_export("group")
    with pytest.raises(InvalidInput, match="timezone-aware"):
        client.start_export(since=datetime(2025, 1, 1))
    with pytest.raises(InvalidInput, match="FHIR instant"):
        client.start_export(since="yesterday")
    with pytest.raises(InvalidInput, match="output_format"):
        client.start_export(output_format="text/csv")
    with pytest.raises(InvalidInput, match="resource type"):
        client.start_export(types=["patient; DROP"])
    with pytest.raises(InvalidInput, match=r"absolute http\(s\) URL"):
        FhirClient("ftp://example.org/fhir")
    assert fhir_server.state.log == []


def test_kick_off_429_concurrent_export_refusal_is_retried(
    client_for: ClientFactory,
    fhir_server: RunningFhirServer,
) -> None:
    fhir_server.state.config.fail["kickoff"] = [429, 429]
    fhir_server.state.config.retry_after = "30"
    client, sleeps = client_for(fhir_server)
    status_url = client.start_export()
    assert status_url == f"{fhir_server.base_url}/jobs/job-1"
    assert sleeps == [30.0, 30.0]


def test_501_not_implemented_is_not_retried(
    client_for: ClientFactory, fhir_server: RunningFhirServer
) -> None:
    fhir_server.state.config.fail["kickoff"] = [501]
    client, sleeps = client_for(fhir_server)
    with pytest.raises(InvalidInput, match=r"does not implement GET /fhir/\$export \(501"):
        client.start_export()
    assert sleeps == []


def test_500_mid_poll_recovers(
    client_for: ClientFactory, fhir_server: RunningFhirServer, tmp_path: Path
) -> None:
    fhir_server.state.config.fail["poll"] = [None, 500]
    fhir_server.state.config.retry_after = "2"
    client, sleeps = client_for(fhir_server, backoff=0.5, max_backoff=0.5)
    result = client.export(tmp_path)
    assert result.counts == {"Patient": 7, "Observation": 21}
    polls = fhir_server.state.requests("GET", "/jobs/")
    assert len(polls) == 4  # 202, 500, 202, 200
    assert sleeps[0] == 2.0 and sleeps[2] == 2.0  # the 202s' Retry-After
    assert 0.25 <= sleeps[1] <= 0.5  # the 500 (no Retry-After): backoff


def test_poll_429_storm_gives_up_with_a_clear_error(
    client_for: ClientFactory, fhir_server: RunningFhirServer
) -> None:
    fhir_server.state.config.fail["poll"] = [429] * 10
    client, sleeps = client_for(fhir_server, max_retries=2)
    status_url = client.start_export()
    with pytest.raises(StoreUnavailable, match=r"429 for GET /fhir/jobs/job-1.*3 attempt"):
        client.wait_for_export(status_url)
    assert sleeps == [1.0, 1.0]


def test_wait_for_export_respects_max_wait(
    client_for: ClientFactory, fhir_server: RunningFhirServer
) -> None:
    fhir_server.state.config.polls_before_ready = 10
    fhir_server.state.config.retry_after = "4"
    client, sleeps = client_for(fhir_server)
    status_url = client.start_export()
    with pytest.raises(StoreUnavailable, match="did not complete within 10 s"):
        client.wait_for_export(status_url, max_wait=10)
    assert sleeps == [4.0, 4.0]


@pytest.mark.parametrize("mode", ["close", "short_length", "cut"])
def test_truncated_file_is_detected_and_resumed_with_range(
    client_for: ClientFactory, fhir_server: RunningFhirServer, tmp_path: Path, mode: Truncation
) -> None:
    fhir_server.state.config.truncate["Observation.1.ndjson"] = [mode]
    client, _ = client_for(fhir_server)
    result = client.export(tmp_path)
    expected = served_files(fhir_server)["Observation.1.ndjson"]
    assert result.files["Observation"][0].read_bytes() == expected
    fetches = fhir_server.state.requests("GET", "Observation.1.ndjson")
    assert len(fetches) == 2
    assert fetches[0].range is None
    assert fetches[1].range == f"bytes={cut_point(expected)}-"  # resumed where the data stopped
    assert result.counts["Observation"] == 21


def test_file_without_final_newline_is_accepted_once_the_server_says_it_is_whole(
    client_for: ClientFactory, fhir_server: RunningFhirServer, tmp_path: Path
) -> None:
    fhir_server.state.config.final_newline = False
    client, _ = client_for(fhir_server)
    result = client.export(tmp_path, types=["Patient"])
    content = served_files(fhir_server)["Patient.1.ndjson"]
    assert not content.endswith(b"\n")
    assert result.files["Patient"][0].read_bytes() == content
    assert result.counts == {"Patient": 7}
    # The unterminated last line looks truncated; a Range request past the end answers 416
    # "bytes */<size>", which proves the client already holds the whole file.
    fetches = fhir_server.state.requests("GET", "Patient.1.ndjson")
    assert [f.range for f in fetches] == [None, f"bytes={len(content)}-"]


def test_truncated_file_is_downloaded_again_without_range_support(
    client_for: ClientFactory, fhir_server: RunningFhirServer, tmp_path: Path
) -> None:
    fhir_server.state.config.range_support = False
    fhir_server.state.config.truncate["Patient.1.ndjson"] = ["close"]
    client, _ = client_for(fhir_server)
    result = client.export(tmp_path)
    assert result.files["Patient"][0].read_bytes() == served_files(fhir_server)["Patient.1.ndjson"]
    assert len(fhir_server.state.requests("GET", "Patient.1.ndjson")) == 2


def test_a_file_that_is_not_ndjson_is_downloaded_again(
    client_for: ClientFactory, fhir_server: RunningFhirServer, tmp_path: Path
) -> None:
    fhir_server.state.config.truncate["Patient.1.ndjson"] = ["corrupt_first"]
    client, _ = client_for(fhir_server)
    result = client.export(tmp_path)
    assert result.files["Patient"][0].read_bytes() == served_files(fhir_server)["Patient.1.ndjson"]
    fetches = fhir_server.state.requests("GET", "Patient.1.ndjson")
    assert [f.range for f in fetches] == [None, None]  # bad bytes are not resumed from


def test_a_resume_that_splices_wrong_bytes_restarts_the_file(
    client_for: ClientFactory, fhir_server: RunningFhirServer, tmp_path: Path
) -> None:
    fhir_server.state.config.truncate["Observation.1.ndjson"] = ["close", "bad_resume"]
    client, _ = client_for(fhir_server)
    result = client.export(tmp_path)
    expected = served_files(fhir_server)["Observation.1.ndjson"]
    assert result.files["Observation"][0].read_bytes() == expected
    fetches = fhir_server.state.requests("GET", "Observation.1.ndjson")
    assert [f.range for f in fetches] == [None, f"bytes={cut_point(expected)}-", None]


def test_a_malformed_middle_line_is_left_for_the_ingest_quarantine(
    client_for: ClientFactory, fhir_server: RunningFhirServer, tmp_path: Path
) -> None:
    # The transfer is whole (length, last line, count); one bad resource is not the download's
    # business: the NDJSON ingest quarantines it with its line number.
    fhir_server.state.config.truncate["Observation.1.ndjson"] = ["corrupt_middle"] * 9
    client, _ = client_for(fhir_server)
    result = client.export(tmp_path)
    written = result.files["Observation"][0].read_bytes()
    assert b"{not json" in written
    assert written.count(b"\n") == served_files(fhir_server)["Observation.1.ndjson"].count(b"\n")
    assert result.counts["Observation"] == 21
    assert len(fhir_server.state.requests("GET", "Observation.1.ndjson")) == 1


def test_file_that_stays_truncated_is_an_error_never_accepted(
    client_for: ClientFactory, fhir_server: RunningFhirServer, tmp_path: Path
) -> None:
    fhir_server.state.config.range_support = False
    fhir_server.state.config.truncate["Observation.2.ndjson"] = ["cut"] * 99
    client, _ = client_for(fhir_server, max_retries=2)
    with pytest.raises(
        IntegrityError, match=r"002\.ndjson: the last line \(\d+\) is cut off.*3 att"
    ):
        client.export(tmp_path)
    assert not (tmp_path / "Observation.002.ndjson").exists()
    assert (tmp_path / "Observation.002.ndjson.part").exists()
    state = orjson.loads((tmp_path / STATE_FILE).read_bytes())
    assert "Observation.002.ndjson" not in state["files"]
    assert fhir_server.state.deleted_jobs == []  # the job is kept for a rerun


def test_missing_lines_are_caught_by_the_manifest_count(
    client_for: ClientFactory, fhir_server: RunningFhirServer, tmp_path: Path
) -> None:
    # A clean end on a line boundary: only the manifest's count can tell.
    fhir_server.state.config.truncate["Observation.2.ndjson"] = ["lines"]
    client, _ = client_for(fhir_server)
    result = client.export(tmp_path)
    assert result.counts["Observation"] == 21
    fetches = fhir_server.state.requests("GET", "Observation.2.ndjson")
    assert [f.range for f in fetches] == [None, None]  # counted short: downloaded again whole
    fhir_server.state.reset()
    fhir_server.state.config.truncate["Observation.2.ndjson"] = ["lines"] * 99
    with pytest.raises(IntegrityError, match=r"holds \d+ resources but the manifest announces 10"):
        client.export(tmp_path / "again")


def test_resume_after_interruption_skips_finished_and_resumes_partial_files(
    client_for: ClientFactory, fhir_server: RunningFhirServer, tmp_path: Path
) -> None:
    # First run: the connection drops in the middle of Observation.1 and retries are off.
    fhir_server.state.config.truncate["Observation.1.ndjson"] = ["close"]
    first, _ = client_for(fhir_server, max_retries=0)
    with pytest.raises(StoreUnavailable, match=r"Observation\.001\.ndjson"):
        first.export(tmp_path)
    part = tmp_path / "Observation.001.ndjson.part"
    partial_size = part.stat().st_size
    assert partial_size > 0
    assert (tmp_path / "Patient.001.ndjson").exists()
    requests_before = len(fhir_server.state.log)

    # Second run: same folder, same request.
    second, _ = client_for(fhir_server)
    result = second.export(tmp_path)
    rerun = fhir_server.state.log[requests_before:]
    assert [r.path.rsplit("/", 1)[1] for r in rerun if r.method == "GET"] == [
        "Observation.1.ndjson",
        "Observation.2.ndjson",
    ]  # no new kick-off, no polling, Patient.1 not fetched again
    assert rerun[0].range == f"bytes={partial_size}-"
    assert result.files_skipped == 1
    content = served_files(fhir_server)
    assert result.files["Observation"][0].read_bytes() == content["Observation.1.ndjson"]
    assert result.counts == {"Patient": 7, "Observation": 21}
    assert len(fhir_server.state.requests("GET", "$export")) == 1


class Stop(Exception):
    """Stands for the user pressing Ctrl-C in the middle of a download."""


def test_stop_inside_the_progress_callback_resumes_cleanly(
    client_for: ClientFactory, fhir_server: RunningFhirServer, tmp_path: Path
) -> None:
    def stop_in_observation_1(progress: ExportProgress) -> None:
        if progress.files_done == 1 and progress.file_bytes_total is not None:
            raise Stop  # the first chunk of Observation.1 has just been written

    client, _ = client_for(fhir_server)
    with pytest.raises(Stop):
        client.export(tmp_path, on_progress=stop_in_observation_1)
    kept = (tmp_path / "Observation.001.ndjson.part").stat().st_size
    assert kept > 0
    assert not (tmp_path / "Observation.001.ndjson").exists()

    result = client.export(tmp_path)
    fetches = fhir_server.state.requests("GET", "Observation.1.ndjson")
    assert [f.range for f in fetches] == [None, f"bytes={kept}-"]
    content = served_files(fhir_server)
    assert result.files["Observation"][0].read_bytes() == content["Observation.1.ndjson"]
    assert result.counts == {"Patient": 7, "Observation": 21}
    assert result.files_skipped == 1
    assert len(fhir_server.state.requests("GET", "Patient.1.ndjson")) == 1


def test_rerun_of_a_finished_export_makes_no_requests(
    client_for: ClientFactory, fhir_server: RunningFhirServer, tmp_path: Path
) -> None:
    client, _ = client_for(fhir_server)
    first = client.export(tmp_path)
    before = len(fhir_server.state.log)
    again = client.export(tmp_path)
    assert len(fhir_server.state.log) == before
    assert again.files_skipped == 3 and again.bytes_downloaded == 0
    assert again.counts == first.counts and again.files == first.files


def test_interrupted_wait_resumes_polling_the_same_job(
    client_for: ClientFactory, fhir_server: RunningFhirServer, tmp_path: Path
) -> None:
    fhir_server.state.config.polls_before_ready = 4
    client, _ = client_for(fhir_server)
    with pytest.raises(StoreUnavailable, match="did not complete"):
        client.export(tmp_path, max_wait=1.5)
    result = client.export(tmp_path)
    assert result.counts == {"Patient": 7, "Observation": 21}
    assert len(fhir_server.state.requests("GET", "$export")) == 1
    assert {r.path for r in fhir_server.state.requests("GET", "/jobs/")} == {"/fhir/jobs/job-1"}


def test_a_different_export_in_the_same_folder_is_refused(
    client_for: ClientFactory, fhir_server: RunningFhirServer, tmp_path: Path
) -> None:
    client, _ = client_for(fhir_server)
    client.export(tmp_path, types=["Patient"])
    with pytest.raises(Conflict, match="different export request"):
        client.export(tmp_path, types=["Observation"])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "Patient.ndjson").write_text("{}\n")
    with pytest.raises(Conflict, match=r"no bedside-export\.json"):
        client.export(tmp_path / "other")


def test_manifest_error_entries_are_downloaded_and_reported(
    client_for: ClientFactory, fhir_server: RunningFhirServer, tmp_path: Path
) -> None:
    fhir_server.state.config.with_errors = True
    client, _ = client_for(fhir_server)
    result = client.export(tmp_path)
    assert result.counts == {"Patient": 7, "Observation": 21}  # partial success is still success
    (errors,) = result.errors
    assert errors.path == tmp_path / "errors" / "OperationOutcome.001.ndjson"
    assert errors.count == 3 and result.error_count == 3
    assert errors.issue_codes == {"not-found": 2, "processing": 1}
    assert errors.path.read_bytes() == fhir_server.state.file_content("job-1", "errors.ndjson")
    assert PHI_MARKER not in repr(result)


@pytest.mark.parametrize("requires_token", [True, False])
def test_token_goes_to_files_only_when_the_manifest_requires_it(
    client_for: ClientFactory, fhir_server: RunningFhirServer, tmp_path: Path, requires_token: bool
) -> None:
    fhir_server.state.config.token = TOKEN
    fhir_server.state.config.requires_access_token = requires_token
    client, _ = client_for(fhir_server, token=TOKEN)
    client.export(tmp_path)
    file_auth = {r.authorization for r in fhir_server.state.requests("GET", "/files/")}
    assert file_auth == ({f"Bearer {TOKEN}"} if requires_token else {None})


def test_file_requiring_a_token_without_one_is_an_authentication_error(
    client_for: ClientFactory, fhir_server: RunningFhirServer, tmp_path: Path
) -> None:
    fhir_server.state.config.requires_access_token = True
    fhir_server.state.config.token = None  # the API is open, the files are not
    client, _ = client_for(fhir_server)
    manifest = client.wait_for_export(client.start_export())
    fhir_server.state.config.token = TOKEN
    with pytest.raises(AuthenticationFailed, match=r"GET /fhir/files/job-1/Patient\.1\.ndjson"):
        client.download_export(manifest, tmp_path)


def test_cancel_sends_delete_and_the_server_forgets_the_job(
    client_for: ClientFactory,
    fhir_server: RunningFhirServer,
) -> None:
    client, _ = client_for(fhir_server)
    status_url = client.start_export()
    client.cancel_export(status_url)
    (delete,) = fhir_server.state.requests("DELETE", "/jobs/job-1")
    assert delete.path == "/fhir/jobs/job-1"
    assert fhir_server.state.jobs == {}
    with pytest.raises(NotFound, match="404 for GET /fhir/jobs/job-1"):
        client.wait_for_export(status_url)
    with pytest.raises(NotFound):
        client.cancel_export(status_url)


# -- Retry-After parsing (pure) --------------------------------------------------------------------


def test_parse_retry_after_forms() -> None:
    now = time.time()
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 0 ", now=now) == 0.0
    date = email.utils.formatdate(now + 60, usegmt=True)
    assert 58.5 < (parse_retry_after(date, now=now) or 0.0) <= 60.0
    past = email.utils.formatdate(now - 60, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0
    assert parse_retry_after(None, now=now) is None
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("-5", now=now) is None
