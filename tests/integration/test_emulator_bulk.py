"""The emulator's Bulk API 2.0 ingest refuses what its sObject Collections refuse, with the
same codes and messages, and counts each request as an API call; over real HTTPS through
the gateway."""

from __future__ import annotations

from typing import Any

import pytest

from salesforce.fields import TASK
from tests.integration.test_salesforce_support import bulk_context
from tests.integration.world import World

KEY = "Task_Key__c"


def _task(key: str, order: str, **fields: Any) -> dict[str, Any]:
    return {KEY: key, "Order__c": order, "State__c": "Pending", "Step__c": "A step", **fields}


@pytest.fixture
def gateway_and_order(world: World, monkeypatch):
    order = world.add_order("PLAT-PRO")
    return bulk_context(world, monkeypatch).gateway, order


def test_bulk_and_collections_refuse_the_same_records_with_the_same_codes(
    world: World, gateway_and_order
):
    gateway, order = gateway_and_order
    account = world.emu.records("Account")[0]["Id"]
    cases = {
        "picklist": {"State__c": "Bogus"},
        "too-long": {"Message__c": "m" * 300},
        "wrong-lookup": {"Order__c": account},
        "fine": {"Attempts__c": 2, "Message__c": "all good, with a comma"},
    }
    via_collections = gateway.upsert(
        TASK, KEY, [_task(f"c-{name}", order, **fields) for name, fields in cases.items()]
    )
    calls = world.emu.api_calls
    via_bulk = gateway.bulk_write(
        TASK, [_task(f"b-{name}", order, **fields) for name, fields in cases.items()], ext_field=KEY
    )

    assert world.emu.api_calls - calls == 5  # create, upload, close, info, failed results
    for name, collections in zip(cases, via_collections, strict=True):
        bulk = via_bulk[f"b-{name}"]
        assert (bulk.success, bulk.code, bulk.message) == (
            collections.success,
            collections.code,
            collections.message,
        ), name
    assert via_bulk["b-fine"].success
    shown = {r[KEY]: r for r in world.emu.records(TASK)}
    assert (shown["b-fine"]["Attempts__c"], shown["b-fine"]["Message__c"]) == (
        2,
        "all good, with a comma",
    )
    assert "b-picklist" not in shown


def test_an_update_leaves_blank_columns_alone_and_sets_na_to_null(world: World, gateway_and_order):
    gateway, order = gateway_and_order
    gateway.upsert(TASK, KEY, [_task("t1", order, Message__c="first"), _task("t2", order)])

    answers = gateway.bulk_write(
        TASK,
        [{KEY: "t1", "Message__c": None}, {KEY: "t2", "Message__c": "second", "Attempts__c": 3}],
        ext_field=KEY,
    )

    assert all(a.success for a in answers.values())
    shown = {r[KEY]: r for r in world.emu.records(TASK)}
    assert shown["t1"]["Message__c"] is None and shown["t1"]["State__c"] == "Pending"
    assert (shown["t2"]["Message__c"], shown["t2"]["Attempts__c"]) == ("second", 3)


def test_a_column_the_user_cannot_see_fails_the_job_and_no_record_is_known(
    world: World, gateway_and_order
):
    gateway, order = gateway_and_order

    answers = gateway.bulk_write(TASK, [_task("t1", order, Nope__c="x")], ext_field=KEY)

    assert answers == {}
    assert not world.emu.records(TASK)
