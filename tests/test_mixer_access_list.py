"""AccessList semantics (mixer/access_list.py) and entries files re-read when they change (mixer/entries_files.py)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from mixer.access_list import AccessListCheck, Denial, FixedEntries, compile_entries, entry_error
from mixer.entries_files import EntriesFiles, read_entries
from mixer.evaluation import CompiledExpression, evaluation_text
from pilot.config.types import AccessList, AccessListEntryType, AccessListMode, ConfigMeta

MakeMeta = Callable[..., ConfigMeta]


def attributes(*, user: str | None = None, ip: str = "127.0.0.11", path: str = "/") -> dict[str, Any]:
    headers = {} if user is None else {"x-user": user}
    return {
        "source": {"ip": ip, "principal": "cluster.local/ns/default/sa/productpage", "labels": {"app": "productpage"}},
        "destination": {"ip": "127.0.0.21", "port": 9080},
        "request": {"path": path, "headers": headers},
        "connection": {"mtls": True},
    }


@pytest.fixture
def access_list(make_meta: MakeMeta) -> Callable[..., AccessListCheck]:
    """``access_list(entries, mode=..., entry_type=..., value=...)``: AccessList default/users compiled with inline
    entries."""

    def make(
        entries: tuple[str, ...],
        *,
        mode: AccessListMode = "deny",
        entry_type: AccessListEntryType = "STRINGS",
        value: str = 'request.headers["x-user"]',
    ) -> AccessListCheck:
        policy = AccessList(
            meta=make_meta("AccessList", "users"), value=value, entries=entries, entry_type=entry_type, mode=mode
        )
        return AccessListCheck(policy, FixedEntries(compile_entries(entries, entry_type)))

    return make


def test_deny_mode_denies_listed_values(access_list: Callable[..., AccessListCheck]) -> None:
    check = access_list(("jason", "bob"), mode="deny")
    assert check.check(attributes(user="alice")) is None
    denial = check.check(attributes(user="jason"))
    assert denial == Denial(
        result="denied",
        status=403,
        reason='AccessList default/users: request.headers["x-user"] "jason" is listed (mode deny)',
        value="jason",
    )


def test_allow_mode_denies_values_not_listed(access_list: Callable[..., AccessListCheck]) -> None:
    check = access_list(("jason",), mode="allow")
    assert check.check(attributes(user="jason")) is None
    assert check.check(attributes(user="mallory")) == Denial(
        result="denied",
        status=403,
        reason='AccessList default/users: request.headers["x-user"] "mallory" is not listed (mode allow)',
        value="mallory",
    )


def test_strings_are_case_sensitive(access_list: Callable[..., AccessListCheck]) -> None:
    check = access_list(("Jason",), mode="deny")
    assert check.check(attributes(user="jason")) is None
    assert check.check(attributes(user="Jason")) is not None


def test_case_insensitive_strings(access_list: Callable[..., AccessListCheck]) -> None:
    check = access_list(("Jason", "STRASSE"), mode="deny", entry_type="CASE_INSENSITIVE_STRINGS")
    assert check.check(attributes(user="JASON")) is not None
    assert check.check(attributes(user="straße")) is not None  # casefold, not lower
    assert check.check(attributes(user="jasonx")) is None


def test_regex_entries_must_match_the_whole_value(access_list: Callable[..., AccessListCheck]) -> None:
    check = access_list(("/admin(/.*)?", "/internal/[0-9]+"), mode="deny", entry_type="REGEX", value="request.path")
    assert check.check(attributes(path="/admin")) is not None
    assert check.check(attributes(path="/admin/users")) is not None
    assert check.check(attributes(path="/internal/42")) is not None
    assert check.check(attributes(path="/public/admin")) is None  # a substring match is not enough
    assert check.check(attributes(path="/internal/42x")) is None
    assert check.check(attributes(path="/administrator")) is None


def test_empty_regex_list_lists_nothing(access_list: Callable[..., AccessListCheck]) -> None:
    assert access_list((), mode="deny", entry_type="REGEX", value="request.path").check(attributes()) is None
    assert access_list((), mode="allow", entry_type="REGEX", value="request.path").check(attributes()) is not None


def test_ip_addresses_and_cidr_ranges(access_list: Callable[..., AccessListCheck]) -> None:
    check = access_list(
        ("10.0.0.0/8", "127.0.0.11", "fd00::/16"), mode="deny", entry_type="IP_ADDRESSES", value="source.ip"
    )
    assert check.check(attributes(ip="10.1.2.3")) is not None
    assert check.check(attributes(ip="127.0.0.11")) is not None
    assert check.check(attributes(ip="fd00::1")) is not None
    assert check.check(attributes(ip="127.0.0.12")) is None
    assert check.check(attributes(ip="11.0.0.1")) is None


def test_ip_list_with_a_value_that_is_no_address_is_an_error(access_list: Callable[..., AccessListCheck]) -> None:
    check = access_list(("10.0.0.0/8",), mode="deny", entry_type="IP_ADDRESSES", value="source.ip")
    assert check.check(attributes(ip="not-an-ip")) == Denial(
        result="error",
        status=403,
        reason='AccessList default/users: source.ip: "not-an-ip" is not an IP address; denied',
        value="not-an-ip",
    )


_HEADER = 'request.headers["x-user"]'
_ABSENT = 'has no value (no such key "x-user"), not listed (mode allow)'


@pytest.mark.parametrize(
    ("mode", "value", "user", "result", "reason"),
    [
        ("deny", _HEADER, None, None, ""),
        ("allow", _HEADER, None, "denied", f"{_HEADER} {_ABSENT}"),
        ("deny", "request.headers.x_user", None, None, ""),
        (
            "allow",
            "request.headers.x_user",
            None,
            "denied",
            'request.headers.x_user has no value (no such key "x_user")',
        ),
        (
            "allow",
            'source.labels["team"]',
            "jason",
            "denied",
            'source.labels["team"] has no value (no such key "team")',
        ),
        ("deny", f'{_HEADER} + "@" + source.principal', None, None, ""),
        ("deny", f'!({_HEADER} == "bob")', None, None, ""),
        ("deny", f'{_HEADER} == "x" || true', None, "denied", f'{_HEADER} == "x" || true "true" is listed (mode deny)'),
        ("allow", f'"x-user" in request.headers ? {_HEADER} : "jason"', None, None, ""),
        ("deny", _HEADER, "jason", "denied", f'{_HEADER} "jason" is listed (mode deny)'),
        ("deny", "request.path + 1", None, "error", "expression request.path + 1 failed: TypeError Unsupported"),
        ("allow", "request.path + 1", "jason", "error", "expression request.path + 1 failed: TypeError Unsupported"),
        ("deny", f"int({_HEADER})", "jason", "error", f"expression int({_HEADER}) failed: RuntimeError Function 'int'"),
        ("deny", "[request.path][1]", None, "error", "expression [request.path][1] failed: IndexError"),
    ],
    ids=[
        "deny-absent-header-passes",
        "allow-absent-header-denied-saying-it-is-absent",
        "deny-absent-field-select-passes",
        "allow-absent-field-select-denied",
        "allow-absent-label-denied",
        "deny-absent-inside-a-concatenation-passes",
        "deny-negated-condition-on-absent-passes",
        "deny-absent-absorbed-by-or-true",
        "allow-guarded-default",
        "deny-present-and-listed",
        "deny-type-error-denies",
        "allow-type-error-denies",
        "bad-function-call-denies",
        "index-out-of-range-denies",
    ],
)
def test_absent_values_are_never_listed_and_errors_deny(
    access_list: Callable[..., AccessListCheck],
    mode: AccessListMode,
    value: str,
    user: str | None,
    result: str | None,
    reason: str,
) -> None:
    denial = access_list(("jason", "true"), mode=mode, value=value).check(attributes(user=user))
    if result is None:
        assert denial is None
        return
    assert denial is not None
    assert (denial.result, denial.status) == (result, 403)
    assert denial.reason.startswith(f"AccessList default/users: {reason}"), denial.reason
    assert denial.reason.endswith("; denied" if result == "error" else f"(mode {mode})"), denial.reason


def test_absent_value_in_allow_mode_is_denied_saying_so(access_list: Callable[..., AccessListCheck]) -> None:
    assert access_list(("jason",), mode="allow").check(attributes(user=None)) == Denial(
        result="denied", status=403, reason=f"AccessList default/users: {_HEADER} {_ABSENT}"
    )


def test_guarded_expression_does_not_fail(access_list: Callable[..., AccessListCheck]) -> None:
    value = '"x-user" in request.headers ? request.headers["x-user"] : "anonymous"'
    check = access_list(("anonymous",), mode="deny", value=value)
    assert check.check(attributes(user=None)) is not None
    assert check.check(attributes(user="jason")) is None


def test_non_string_values_compare_as_text(access_list: Callable[..., AccessListCheck]) -> None:
    assert access_list(("9080",), value="destination.port").check(attributes()) is not None
    assert access_list(("true",), value="connection.mtls").check(attributes()) is not None
    denial = access_list(("x",), value="request.headers").check(attributes(user="x"))
    assert denial is not None and denial.result == "error" and "expected a string" in denial.reason


def test_evaluation_text() -> None:
    assert evaluation_text("a") == "a"
    assert evaluation_text(7) == "7"
    assert evaluation_text(False) == "false"
    with pytest.raises(TypeError):
        evaluation_text(["a"])


def test_entry_errors_and_skipped_entries() -> None:
    assert entry_error("10.0.0.0/8", "IP_ADDRESSES") is None
    assert entry_error("10.0.0.300", "IP_ADDRESSES") == "'10.0.0.300' is not an IP address or CIDR range"
    assert entry_error("a(", "REGEX") is not None
    assert entry_error("a(", "STRINGS") is None
    entries = compile_entries(["1.2.3.4", "nope"], "IP_ADDRESSES")
    assert entries.count == 1
    assert entries.skipped == ("'nope' is not an IP address or CIDR range",)
    assert entries.contains("1.2.3.4")


def test_long_values_are_cut_in_reasons(access_list: Callable[..., AccessListCheck]) -> None:
    denial = access_list(("a" * 300,), mode="deny").check(attributes(user="a" * 300))
    assert denial is not None
    assert '"' + "a" * 128 + '..."' in denial.reason
    assert denial.value == "a" * 300


# ---------------------------------------------------------------------------------------------------------------
# entries files
# ---------------------------------------------------------------------------------------------------------------


def test_read_entries_skips_blanks_and_comments() -> None:
    assert read_entries("# users\n jason \n\n#bob\nalice\r\n  # indented comment\n") == ("jason", "alice")


@pytest.fixture
async def files() -> AsyncIterator[EntriesFiles]:
    watcher = EntriesFiles(poll_interval=0.05)
    await watcher.start()
    try:
        yield watcher
    finally:
        await watcher.stop()


def file_list(make_meta: MakeMeta, path: Path, files: EntriesFiles, mode: AccessListMode = "deny") -> AccessListCheck:
    policy = AccessList(
        meta=make_meta("AccessList", "users"), value='request.headers["x-user"]', entries_file=str(path), mode=mode
    )
    return AccessListCheck(policy, files.use(str(path), "STRINGS"))


async def eventually(condition: Callable[[], bool], timeout: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met within 1 s"
        await asyncio.sleep(0.01)


async def test_edited_file_takes_effect_within_a_second(
    make_meta: MakeMeta, tmp_path: Path, files: EntriesFiles
) -> None:
    path = tmp_path / "users.txt"
    path.write_text("# blocked users\njason\n")
    check = file_list(make_meta, path, files)
    assert check.check(attributes(user="jason")) is not None  # read when first used
    assert check.check(attributes(user="bob")) is None
    path.write_text("bob\n")
    await eventually(lambda: check.check(attributes(user="bob")) is not None)
    assert check.check(attributes(user="jason")) is None


async def test_replaced_file_with_same_size_and_mtime_is_seen_by_inode(
    make_meta: MakeMeta, tmp_path: Path, files: EntriesFiles
) -> None:
    path = tmp_path / "users.txt"
    path.write_text("aaaa\n")
    check = file_list(make_meta, path, files)
    stat = path.stat()
    replacement = tmp_path / "new.txt"
    replacement.write_text("bbbb\n")
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, path)
    await eventually(lambda: check.check(attributes(user="bbbb")) is not None)


async def test_unreadable_file_keeps_the_last_good_entries(
    make_meta: MakeMeta, tmp_path: Path, files: EntriesFiles
) -> None:
    path = tmp_path / "users.txt"
    path.write_text("jason\n")
    check = file_list(make_meta, path, files)
    path.unlink()
    await asyncio.sleep(0.2)
    assert check.check(attributes(user="jason")) is not None
    assert check.check(attributes(user="bob")) is None
    path.write_text("bob\n")
    await eventually(lambda: check.check(attributes(user="bob")) is not None)


async def test_file_never_read_denies_as_an_evaluation_error(
    make_meta: MakeMeta, tmp_path: Path, files: EntriesFiles
) -> None:
    path = tmp_path / "missing.txt"
    for mode in ("deny", "allow"):
        denial = file_list(make_meta, path, files, mode=mode).check(attributes(user="bob"))
        assert denial is not None
        assert denial.result == "error"
        assert denial.reason.startswith(f"AccessList default/users: entries file {path} unreadable: ")
    assert file_list(make_meta, path, files).check(attributes(user=None)) is None  # an absent value is never listed
    path.write_text("jason\n")
    check = file_list(make_meta, path, files)
    await eventually(lambda: check.check(attributes(user="bob")) is None)
    assert check.check(attributes(user="jason")) is not None


async def test_one_file_serves_several_entry_types(make_meta: MakeMeta, tmp_path: Path) -> None:
    path = tmp_path / "entries.txt"
    path.write_text("Jason\n10.0.0.0/8\n")
    files = EntriesFiles()
    strings = files.use(str(path), "STRINGS")
    folded = files.use(str(path), "CASE_INSENSITIVE_STRINGS")
    addresses = files.use(str(path), "IP_ADDRESSES")
    assert files.use(str(path), "STRINGS") is strings
    assert strings.entries is not None and not strings.entries.contains("jason")
    assert folded.entries is not None and folded.entries.contains("jason")
    assert addresses.entries is not None and addresses.entries.contains("10.2.3.4") and addresses.entries.count == 1
    path.write_text("Bob\n")
    await files.poll_once()
    assert folded.entries is not None and folded.entries.contains("bob") and not folded.entries.contains("jason")
    files.retain([(str(path), "STRINGS")])
    assert files.paths == (str(path),)
    files.retain([])
    assert not files.paths


def test_expressions_are_given_only_the_roots_they_read() -> None:
    expression = CompiledExpression(
        '"x-user" in request.headers && source.ip != "" && request.headers.exists(h, h == "x-user")'
    )
    assert expression.roots == ("request", "source")
    assert expression.evaluate({"request": {"headers": {"x-user": "a"}}, "source": {"ip": "1.2.3.4"}}) is True
    assert CompiledExpression('"constant"').roots == ()
