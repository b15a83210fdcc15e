"""fsacd.pop.contacts on a real Redis: CSV import, re-import, switchboards, lookup, CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fsacd.cli.main import main
from fsacd.core import numbers
from fsacd.pop.contacts import (
    Contacts,
    ImportFileError,
    canonical_name,
    import_csv,
    parse_csv,
)
from fsacd.state.keys import Keys

MIXED = """\
ID,Name,Company,Status,Language,Tier,Notes,Tickets,Phone,Mobile,Phone2,Account Manager
c1,Anna Schmidt,Schmidt GmbH,existing,de,gold,"VIP, mornings",2,030 1234567,0171 2345678,,Bob
c2,John Doe,Acme Inc,new,en,silver,,0,+1 (212) 555-0123,001 415 555 0134,,
c3,Jane Smith,UK Ltd,existing,en,bronze,,,+44 20 7946 0958,,0044 20 7946 0000,Carol
c4,Reception,Schmidt GmbH,existing,de,,,,+49 (0)30 123 45 67,,,
"""


@pytest.fixture
def contacts(r):
    return Contacts(r, Keys())


def num(raw: str, region: str = "DE") -> numbers.Number:
    return numbers.normalise(raw, region)


def test_import_mixed_national_formats(contacts):
    report = import_csv(contacts, MIXED, "DE")
    assert (report.rows, report.created, report.updated, report.errors) == (4, 4, 0, [])
    assert report.warnings == []
    c1 = contacts.get("c1")
    assert c1["name"] == "Anna Schmidt" and c1["company"] == "Schmidt GmbH"
    assert (c1["status"], c1["language"], c1["tier"], c1["tickets"]) == (
        "existing",
        "de",
        "gold",
        "2",
    )
    assert c1["notes"] == "VIP, mornings"
    assert c1["account_manager"] == "Bob"  # unknown column kept as a free-form field
    assert c1["numbers"] == [
        {"label": "phone", "number": "+49301234567"},
        {"label": "mobile", "number": "+491712345678"},
    ]
    assert [n["number"] for n in contacts.get("c2")["numbers"]] == ["+12125550123", "+14155550134"]
    assert [n["number"] for n in contacts.get("c3")["numbers"]] == [
        "+442079460958",
        "+442079460000",
    ]
    assert contacts.get("c3")["numbers"][1]["label"] == "phone2"
    assert contacts.count() == 4


def test_import_in_another_region(contacts):
    text = "id,name,phone\nu1,Ann,(212) 555-0123\nu2,Ben,011 49 30 1234567\n"
    assert import_csv(contacts, text, "US").errors == []
    assert contacts.get("u1")["numbers"][0]["number"] == "+12125550123"
    assert contacts.get("u2")["numbers"][0]["number"] == "+49301234567"


def test_bad_rows_are_reported_with_line_numbers(contacts):
    text = (
        "id,name,phone,mobile\n"  # 1
        "ok1,Good,030 1234567,\n"  # 2
        ",No Id,030 1234568,\n"  # 3
        "bad id!,Bad Id,030 1234569,\n"  # 4
        "x5,Too,Many,Fields,Here\n"  # 5
        "ok1,Duplicate,030 1234570,\n"  # 6
        "ok7,Bad Number,12345,0171 2345678\n"  # 7
        'ok8,"Two\nLines",030 1234571,\n'  # 8-9
        "\n"  # 10 (blank: skipped)
        ",After Multiline,,\n"  # 11
        "ok12,No Number,,\n"  # 12
    )
    report = import_csv(contacts, text, "DE")
    assert [(p.line, p.column, p.message) for p in report.errors] == [
        (3, "id", "no id"),
        (4, "id", "the id must be 1 to 64 of A-Z a-z 0-9 _ . @ -"),
        (5, None, "has 5 fields but the header names 4"),
        (6, "id", "id 'ok1' is already used on line 2"),
        (11, "id", "no id"),
    ]
    assert [(p.line, p.column) for p in report.warnings] == [(7, "phone"), (12, None)]
    assert "not imported" in report.warnings[0].message
    assert "never popped" in report.warnings[1].message
    assert (report.rows, report.failed, report.created) == (9, 5, 4)
    assert sorted(c["id"] for c in report.contacts) == ["ok1", "ok12", "ok7", "ok8"]
    assert contacts.get("ok1")["name"] == "Good"  # the duplicate did not overwrite it
    assert contacts.get("ok7")["numbers"] == [{"label": "mobile", "number": "+491712345678"}]
    assert contacts.get("ok8")["name"] == "Two\nLines"
    assert contacts.get("ok12")["numbers"] == []
    assert str(report.errors[0]) == "line 3, column id: no id"


def test_unclosed_quote_is_reported(contacts):
    text = 'id,name,phone\na1,Ann,030 1234567\na2,"Unclosed,030 1234568\na3,Cid,030 1234569\n'
    report = import_csv(contacts, text, "DE")
    assert [p.line for p in report.errors] == [3]
    assert "never closed" in report.errors[0].message
    assert contacts.get("a1") is not None and contacts.get("a3") is None


def test_reimport_updates_never_duplicates(contacts):
    import_csv(contacts, MIXED, "DE")
    changed = (
        "id,name,company,phone\n"
        "c1,Anna Schmidt-Meyer,Schmidt GmbH,0171 9999999\n"  # number and name changed
        "c5,New Person,,030 5555555\n"
    )
    report = import_csv(contacts, changed, "DE")
    assert (report.created, report.updated) == (1, 1)
    assert contacts.count() == 5
    c1 = contacts.get("c1")
    assert c1["name"] == "Anna Schmidt-Meyer"
    assert "tier" not in c1 and "account_manager" not in c1  # a row replaces the contact
    assert c1["numbers"] == [{"label": "phone", "number": "+491719999999"}]
    # the old numbers no longer find c1, the new one does
    assert contacts.ids_for("+491712345678") == []
    assert contacts.ids_for("+49301234567") == ["c4"]
    assert contacts.ids_for("+491719999999") == ["c1"]
    # importing the same file again changes nothing
    again = import_csv(contacts, changed, "DE")
    assert (again.created, again.updated) == (0, 2) and contacts.count() == 5


def test_switchboard_number_lists_every_contact(contacts):
    text = (
        "id,name,company,phone,direct\n"
        "s1,Zoe Zimmer,Big Corp,030 1234567,030 1234501\n"
        "s2,adam Apfel,Big Corp,030 1234567,030 1234502\n"
        "s3,Berta Brot,Big Corp,+49 30 1234567,\n"
    )
    assert import_csv(contacts, text, "DE").errors == []
    found, total = contacts.lookup(num("030 1234567"))
    assert total == 3
    assert [c["id"] for c in found] == ["s2", "s3", "s1"]  # by name, case-insensitive
    found, total = contacts.lookup(num("030 1234502"))
    assert [c["id"] for c in found] == ["s2"] and total == 1


@pytest.mark.parametrize(
    "raw,region",
    [
        ("+49 30 1234567", "DE"),
        ("030 1234567", "DE"),
        ("0049301234567", "DE"),
        ("+49 (0)30 123 45 67", "DE"),
        ("0049 30 1234567", "GB"),
        ("011 49 30 1234567", "US"),
        ("tel:+49-30-1234567", "US"),
        ("sip:+49301234567@pbx.example;user=phone", "FR"),
    ],
)
def test_lookup_by_other_formats(contacts, raw, region):
    import_csv(contacts, MIXED, "DE")
    found, _ = contacts.lookup(num(raw, region))
    assert [c["id"] for c in found] == ["c1", "c4"]


def test_lookup_nothing_for_hidden_invalid_or_unknown(contacts):
    import_csv(contacts, MIXED, "DE")
    assert contacts.lookup(num("030 1234567"), hidden=True) == ([], 0)
    assert contacts.lookup(num("anonymous")) == ([], 0)
    assert contacts.lookup(num("12345")) == ([], 0)
    assert contacts.lookup(num("030 7654321")) == ([], 0)


def test_header_mapping():
    assert canonical_name(" Phone 2 ") == "phone_2"
    assert canonical_name("E-Mail") == "e_mail"
    assert canonical_name("Straße") == "strasse"
    text = (
        "\ufeffCONTACT_ID;Full Name;Customer Status;Lang;Value Tier;Open Tickets;Work Phone;"
        "Cell;E-Mail\n"
        "k1;Kim;new;fr;gold;3;030 1234567 | 030 7654321;0171 2345678;kim@example.org\n"
    )
    report = parse_csv(text, "DE")
    assert report.errors == [] and report.warnings == []
    (c,) = report.contacts
    assert c == {
        "id": "k1",
        "name": "Kim",
        "status": "new",
        "language": "fr",
        "tier": "gold",
        "tickets": "3",
        "e_mail": "kim@example.org",
        "numbers": [
            {"label": "work_phone", "number": "+49301234567"},
            {"label": "work_phone", "number": "+49307654321"},
            {"label": "cell", "number": "+491712345678"},
        ],
    }


def test_id_column_option_and_extra_number_columns():
    text = "Kundennummer,Name,Zentrale\nK-1,Ann,030 1234567\n"
    report = parse_csv(text, "DE", id_column="Kundennummer", number_columns=["Zentrale"])
    assert report.errors == []
    assert report.contacts[0]["id"] == "K-1"
    assert report.contacts[0]["numbers"] == [{"label": "zentrale", "number": "+49301234567"}]


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "header"),
        ("id,phone,Phone\n", "columns 2 and 3 are both 'phone'"),
        ("id,name,,phone\n", "column 3 has no name"),
        ("id,numbers\n", "can't be used as a field name"),
        ("id,contact_id\n", "the id column is 'id'"),
    ],
)
def test_file_errors(text, message):
    with pytest.raises(ImportFileError, match=message):
        parse_csv(text, "DE")


def test_put_and_remove_keep_the_index_right(contacts, r):
    contacts.put({"id": "a", "name": "A", "numbers": [{"number": "+49301234567"}]})
    contacts.put({"id": "b", "name": "B", "numbers": [{"number": "+49301234567"}]})
    assert contacts.ids_for("+49301234567") == ["a", "b"]
    assert contacts.remove("a") is True
    assert contacts.remove("a") is False
    assert contacts.ids_for("+49301234567") == ["b"]
    assert contacts.remove("b") is True
    assert r.keys("*") == []
    with pytest.raises(ValueError):
        contacts.put({"id": "bad id"})
    with pytest.raises(ValueError):
        contacts.put({"id": "x", "numbers": [{"number": "030 123"}]})


def test_large_import_in_chunks(contacts):
    rows = "".join(f"p{i},Person {i},+4930{1000000 + i}\n" for i in range(450))
    report = import_csv(contacts, "id,name,phone\n" + rows, "DE")
    assert (report.created, report.errors) == (450, [])
    assert contacts.count() == 450
    assert contacts.ids_for("+49301000449") == ["p449"]


def test_dry_run_changes_nothing(contacts, r):
    report = import_csv(contacts, MIXED, "DE", dry_run=True)
    assert (report.created, report.updated, report.dry_run) == (4, 0, True)
    assert r.keys("*") == []


# --- CLI --------------------------------------------------------------------------------------


@pytest.fixture
def run(redis_url, tmp_path):
    cfg = tmp_path / "fsacd.toml"
    cfg.write_text('[freeswitch]\ndefault_region = "DE"\n[queues.support]\n')
    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(
            main, ["--config", str(cfg), *args], env={"REDIS_URL": redis_url}, input=input
        )

    return invoke


def test_cli_import_show_find_remove(run, tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_text(MIXED + ",Nobody,,,,,,,030 1111111,,,\n", encoding="utf-8")
    res = run("contacts", "import", str(path))
    assert res.exit_code == 1
    assert f"{path}: line 6, column id: no id (row not imported)" in res.stderr
    assert "imported 4 of 5 rows: 4 new, 0 updated; 1 failed, 0 warnings" in res.stdout

    res = run("contacts", "import", str(path), "--json")
    data = json.loads(res.stdout)
    assert (data["created"], data["updated"], data["failed"], data["ok"]) == (0, 4, 1, False)
    assert data["errors"] == [{"line": 6, "column": "id", "message": "no id"}]

    res = run("contacts", "show", "c1")
    assert res.exit_code == 0 and "Anna Schmidt" in res.stdout and "+491712345678" in res.stdout
    shown = json.loads(run("contacts", "show", "c1", "--json").stdout)
    assert shown["account_manager"] == "Bob"

    res = run("contacts", "find", "+49 30 123 45 67")
    assert res.exit_code == 0
    assert "+49301234567: 2 contacts" in res.stdout and "Reception" in res.stdout
    found = json.loads(run("contacts", "find", "0049301234567", "--json").stdout)
    assert found["total"] == 2 and [c["id"] for c in found["contacts"]] == ["c1", "c4"]
    res = run("contacts", "find", "(212) 555-0123", "--region", "US", "--json")
    assert json.loads(res.stdout)["contacts"][0]["id"] == "c2"
    res = run("contacts", "find", "030 7777777")
    assert res.exit_code == 0 and "no contact" in res.stdout
    res = run("contacts", "find", "hello")
    assert res.exit_code == 1 and "not a usable number" in res.stderr

    res = run("contacts", "remove", "c4")  # asks first: no answer, nothing removed
    assert res.exit_code == 1 and "remove contact c4" in res.stdout
    assert run("contacts", "show", "c4").exit_code == 0
    assert json.loads(run("contacts", "remove", "c4", "--yes", "--json").stdout) == {
        "ok": True,
        "removed": "c4",
    }
    res = run("contacts", "remove", "c4")
    assert res.exit_code == 1 and "unknown contact 'c4'" in res.stderr
    res = run("contacts", "show", "c4")
    assert res.exit_code == 1


def test_cli_import_stdin_region_and_dry_run(run):
    csv_text = "id;name;phone\nu1;Ann;(212) 555-0123\n"
    res = run("contacts", "import", "-", "--region", "US", "--dry-run", input=csv_text)
    assert res.exit_code == 0 and "would import 1 of 1 rows: 1 new" in res.stdout
    assert run("contacts", "show", "u1").exit_code == 1
    res = run("contacts", "import", "-", "--region", "us", input=csv_text)
    assert res.exit_code == 0
    assert run("contacts", "show", "u1", "--json").exit_code == 0
    res = run("contacts", "import", "-", "--region", "XX", input=csv_text)
    assert res.exit_code == 1 and "--region" in res.stderr


def test_cli_import_file_problems(run):
    res = run("contacts", "import", "-", "--id-column", "Kdnr", input="name,phone\nAnn,030 1\n")
    assert res.exit_code == 1 and "no 'kdnr' column" in res.stderr
    res = run("contacts", "import", "-", input=b"id,name\n1,M\xfcller\n")
    assert res.exit_code == 1 and "not UTF-8" in res.stderr


def test_rows_without_an_id_column_get_a_stable_derived_id():
    text = "Name,Phone,Mobile\nAnn Smith,030 1234567,0171 1234567\nBob,030 7654321\n"
    first = parse_csv(text, "DE")
    assert first.errors == []
    ids = [c["id"] for c in first.contacts]
    assert all(i.startswith("h-") for i in ids) and len(set(ids)) == 2
    # the same person written differently (case, spaces, number format, column order) keeps it
    again = parse_csv("mobile,name,phone\n+49 171 1234567,ann  SMITH,+49 30 1234567\n", "DE")
    assert again.contacts[0]["id"] == ids[0]
    # a row with neither a name nor a valid number cannot have one
    bad = parse_csv("name,phone\n,not a number\n", "DE")
    assert bad.contacts == [] and "derive an id" in bad.errors[0].message


def test_cli_reimport_without_id_column_updates(run):
    text = "name,phone,notes\nAnn,030 1234567,first\nBob,030 7654321,\n"
    res = run("contacts", "import", "-", "--region", "DE", input=text)
    assert res.exit_code == 0 and "2 new, 0 updated" in res.stdout, res.output
    text2 = "name,phone,notes\nAnn,030 1234567,second\nBob,030 7654321,\n"
    res = run("contacts", "import", "-", "--region", "DE", input=text2)
    assert res.exit_code == 0 and "0 new, 2 updated" in res.stdout, res.output
    found = json.loads(run("contacts", "find", "+49301234567", "--json").stdout)
    assert found["total"] == 1 and found["contacts"][0]["notes"] == "second"
