"""The pure parts of Bulk API 2.0 ingest: the job's CSV and each record's result."""

from __future__ import annotations

import csv
import io

from salesforce.ingest import NULL, failed_results, parse_error, results, to_csv
from salesforce.results import WriteResult


def test_the_csv_leaves_blank_what_a_record_does_not_change_and_nulls_what_it_clears():
    text = to_csv(
        [
            {"Task_Key__c": "a", "State__c": "Done", "Message__c": None},
            {"Task_Key__c": "b", "Attempts__c": 2, "Flag__c": True, "Message__c": 'say "hi", ok'},
        ],
        "Task_Key__c",
    )

    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["Task_Key__c", "Attempts__c", "Flag__c", "Message__c", "State__c"]
    assert rows[1] == ["a", "", "", NULL, "Done"]
    assert rows[2] == ["b", "2", "true", 'say "hi", ok', ""]


def test_an_error_is_read_as_its_code_and_message_without_the_fields():
    assert parse_error(
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST:bad value for restricted picklist field: "
        "Bogus:State__c --"
    ) == (
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "bad value for restricted picklist field: Bogus",
    )
    assert parse_error("UNABLE_TO_LOCK_ROW:unable to obtain exclusive access:--") == (
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access",
    )


def test_a_completed_jobs_records_are_written_unless_refused_or_unprocessed():
    failed = failed_results(
        'sf__Id,sf__Error,Task_Key__c,State__c\n,"UNABLE_TO_LOCK_ROW:locked:--",b,Done\n',
        "Task_Key__c",
    )

    known = results(["a", "b", "c"], "JobComplete", failed, {"c"})

    assert known["a"] == WriteResult("a", True)
    assert known["b"].code == "UNABLE_TO_LOCK_ROW" and known["b"].transient
    assert "c" not in known  # unprocessed: unknown, written again
    assert results(["a", "b"], "Failed", failed, set()) == {"b": failed["b"]}
