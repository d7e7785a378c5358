"""Templates are held to the bounds of httptask.limits: each bomb is refused before it allocates, fast, with
a sentence that says which bound; ordinary templates stay unaffected."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from httptask.errors import TemplateError
from httptask.items import LazySequence
from httptask.limits import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    LimitExceeded,
    check_depth,
    check_time,
    read_capped,
    size,
    time_limit,
)
from httptask.templating import base_context, render_value

TOO_BIG = (
    "would make a value of more than 2,000,000 characters or items, the limit for a value made in a template"
)
TOO_LONG = "would have more than 4,000 digits, the limit for a number in a template"
SLOW = "the template ran longer than its limit of 1 s and was stopped"


def problem(source: str) -> str:
    """Why `source` is refused. Its time limit counts this thread's CPU time, as a run's outputs do: under a
    wall-clock limit a machine too busy to run the test stops a bomb by time before its own bound is
    reached (the wall-clock limit has tests of its own below)."""
    context = base_context(inputs={"items": [1, 2, 3], "text": "abc"})
    with pytest.raises(TemplateError) as caught:
        render_value(source, context, task_id="t", field_path="request.body.memo", cpu_seconds=True)
    return caught.value.problem


BOMBS = [
    ("{{ 3 ** 400000000 }}", f"the power {TOO_LONG}"),
    ("{{ 10 ** 5000 }}", f"the power {TOO_LONG}"),
    ("{{ 10**3999 * 10**3999 }}", f"the product {TOO_LONG}"),
    ("{{ 'a' * 10**9 }}", f"repeating a value 1,000,000,000 times {TOO_BIG}"),
    ("{{ [0] * 10**9 }}", f"repeating a value 1,000,000,000 times {TOO_BIG}"),
    ("{{ [10**3999] * 2000 }}", f"repeating a value 2,000 times {TOO_BIG}"),
    ("{{ 'x' * 1000000 + 'y' * 1000001 }}", f"adding the two values {TOO_BIG}"),
    ("{{ 'a'.ljust(10**9) }}", f"ljust(1000000000) {TOO_BIG}"),
    ("{{ 'a'.zfill(10**9) }}", f"zfill(1000000000) {TOO_BIG}"),
    ("{{ 'a' | center(10**9) }}", f"center(1000000000) {TOO_BIG}"),
    ("{{ 'a' | indent(10**9) }}", f"indent(1000000000) {TOO_BIG}"),
    ("{{ ('a\n' * 100000) | indent(100) }}", f"indent(100) {TOO_BIG}"),
    ("{{ range(10) | batch(10**9, 'x') | list }}", f"batch(1000000000) {TOO_BIG}"),
    ("{{ range(10) | slice(10**7) | list }}", f"slice(10000000) {TOO_BIG}"),
    ("{{ ('\t' * 1000).expandtabs(10**6) }}", f"expandtabs(1000000) {TOO_BIG}"),
    ("{{ ('a' * 1000) | replace('a', 'b' * 10000) }}", f"the replacement {TOO_BIG}"),
    ("{{ ('a' * 1000).replace('a', 'b' * 10000) }}", f"the replacement {TOO_BIG}"),
    ("{% set a = ['x' * 1000] * 1000 %}{{ a | join('y' * 10000) }}", f"joining the items {TOO_BIG}"),
    ("{{ ('y' * 10000).join(['x'] * 1000) }}", f"joining the items {TOO_BIG}"),
    ("{{ '%0999999999d' % 1 }}", f"a format width of 999999999 {TOO_BIG}"),
    ("{{ '%.999999999f' | format(1) }}", f"a format width of 999999999 {TOO_BIG}"),
    ("{{ '{:>999999999}'.format(1) }}", f"a format width of 999999999 {TOO_BIG}"),
    (
        "{{ '{:>{}}'.format(1, 10**9) }}",
        "a format width taken from another {} field is not allowed in templates",
    ),
    ("{{ '%*d' % (10**9, 1) }}", "a format width given as '*' is not allowed in templates"),
    ("{{ input.items | tojson(indent=10**8) }}", f"tojson(indent=100000000) {TOO_BIG}"),
    ("{{ [[1] * 1000] * 1000 | sum(start=[]) }}", "sum adds numbers; give it a number to start from"),
    ("{{ dict.fromkeys(range(100000), 'x' * 100) }}", f"the call {TOO_BIG}"),
    (
        "{% set a = ['x' * 100000] %}{{ [a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a] }}",
        f"the value built {TOO_BIG}",
    ),
    ("{% set a = 'x' * 1000000 %}{{ a ~ a ~ a }}", f"the value built {TOO_BIG}"),
    (
        "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}",
        "the rendered text would be longer than 2,000,000 characters, the limit for a template",
    ),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", SLOW),
    ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "the template calls itself or nests too deeply"),
    (
        "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
        "the template is nested too deeply to read; write it more simply",
    ),
    (
        "{{ " + "9" * 5000 + " }}",
        "the template holds a number that cannot be read (Exceeds the limit (4300 digits) for integer string "
        "conversion: value has 5000 digits)",
    ),
    ("{{ lipsum(10**9) }}", "'lipsum' is undefined"),
    ("{{ namespace(x=1) }}", "'namespace' is undefined"),
    ("x" * 50_001 + "{{ 1 }}", "the template is 50,008 characters long; the limit is 50,000"),
    # One field written many times repeats its value: each of these made 1 GB before it was refused.
    ("{{ ('{0}' * 100000).format('x' * 10000) }}", f"formatting the text {TOO_BIG}"),
    ("{{ ('{a}' * 100000).format(a='x' * 10000) }}", f"formatting the text {TOO_BIG}"),
    ("{{ ('{a[0]}' * 100000).format_map({'a': ['x' * 10000]}) }}", f"formatting the text {TOO_BIG}"),
    ("{{ ('%(a)s' * 100000) % {'a': 'x' * 10000} }}", f"formatting the text {TOO_BIG}"),
    ("{{ ('%(a)s' * 100000) | format(a='x' * 10000) }}", f"formatting the text {TOO_BIG}"),
    ("{{ ('x' * 1000000).translate({120: 'y' * 1000}) }}", f"the translation {TOO_BIG}"),
    (
        "{{ ('a ' * 99999) | wordwrap(1, wrapstring='y' * 10000) }}",
        f"wrapping the text in lines of 1 {TOO_BIG}",
    ),
    ("{{ ('http://a.com ' * 10000) | urlize(rel='x' * 100000) }}", f"the links {TOO_BIG}"),
]


@pytest.mark.parametrize(("source", "message"), BOMBS, ids=[source[:40] for source, _ in BOMBS])
def test_bombs_are_refused_fast_and_small(source: str, message: str) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.thread_time()
    assert problem(source) == message
    # Processor time, which a busy machine does not stretch: the endless loop is stopped at its 1 s limit,
    # every other bomb by its bound, long before.
    assert time.thread_time() - started < 1.8
    # ru_maxrss is in KiB: no bomb may raise this process's peak by 100 MB.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ 2 ** 10000 > 0 }}", True),
        ("{{ ('ab' * 1000) | length }}", 2000),
        ("{{ (input.items | sum) * 100 }}", 600),
        ("{{ '%.2f' | format(12.5) }}", "12.50"),
        ("{{ '{:>6}'.format('x') }}", "     x"),
        ("{{ 'a-b' | replace('-', '--') }}", "a--b"),
        ("{{ input.items | join(',') }}", "1,2,3"),
        ("{{ input.items | map('string') | join('-') }}", "1-2-3"),
        ("{{ [1, 2] + [3] }}", [1, 2, 3]),
        ("{{ {'a': input.items} }}", {"a": [1, 2, 3]}),
        ("{{ input.text | center(7) }}", "  abc  "),
        ("{{ '{0}-{1}-{a}-{0}'.format(1, 'b', a=3) }}", "1-b-3-1"),
        ("{{ '%(a)s %%(b)s %(a)s' % {'a': 1} }}", "1 %(b)s 1"),
        ("{{ 'abc'.translate({97: 'zz'}) }}", "zzbc"),
        ("{{ 'a b c d' | wordwrap(3, wrapstring='<br>') }}", "a b<br>c d"),
        (
            "{{ 'see http://a.com' | urlize(target='_blank') }}",
            'see <a href="http://a.com" rel="noopener" target="_blank">http://a.com</a>',
        ),
    ],
)
def test_ordinary_templates_are_unaffected(source: str, expected: object) -> None:
    context = base_context(inputs={"items": [1, 2, 3], "text": "abc"})
    assert render_value(source, context, task_id="t", field_path="request.body.memo") == expected


def test_size_counts_shared_parts_each_time_and_stops_at_the_limit() -> None:
    part = ["x" * 10] * 10
    assert size(part) == 10 + 100
    assert size([part, part]) == 2 + 2 * 110
    assert size(10**30) == 100 // 3 + 1
    nested: list[object] = ["x" * 1000]
    for _ in range(40):
        nested = [nested, nested]
    assert size(nested, limit=5000) <= 5000 + 1000


@pytest.mark.parametrize(
    "value",
    ["", "x", "x" * 3_000_000, 0, -1, 7, 10**30, -(2**4000), True, False, None, 0.0, float("nan"), 1e308],
)
@pytest.mark.parametrize("limit", [0, 5, 2_000_000])
def test_a_single_value_is_sized_as_the_walk_sizes_it_inside_a_list(value: object, limit: int) -> None:
    """A str, int, float, bool or None is sized without the walk: what the walk counts for it in a list."""
    assert size(value, limit) == size([value]) - 1


def test_depth_is_checked_without_recursion() -> None:
    deep: list[object] = []
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(LimitExceeded) as caught:
        check_depth(deep, "--input")
    assert str(caught.value) == f"--input is nested more than {MAX_DEPTH} levels deep; flatten it"
    check_depth({"a": [{"b": 1}]}, "--input")


class _Results(LazySequence[dict[str, Any]]):
    """A forEach's results as the engine gives them, read from the journal as they are asked for: a million
    of them, counting how many were read."""

    def __init__(self) -> None:
        self.read = 0

    def __len__(self) -> int:
        return 1_000_000

    def _at(self, index: int) -> dict[str, Any]:
        self.read += 1
        return {"item": {"invoice": f"inv_{index}"}, "response": {"status": 200, "body": {"note": "x" * 100}}}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self._at(index) for index in range(len(self)))


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("{{ tasks.refund }}", "reading the whole list"),
        ("{{ tasks.refund | list }}", "the filter list"),
        ("{{ tasks.refund | sort(attribute='item.invoice') | first }}", "the filter sort"),
        ("{{ tasks.refund | groupby('response.status') }}", "the filter groupby"),
        ("{{ tasks.refund | tojson }}", "the filter tojson"),
        ("{{ tasks.refund | selectattr('response') | list }}", "the items"),
        ("{{ tasks.refund | join(',') }}", "joining the items"),
    ],
)
def test_a_forEachs_results_are_read_no_further_than_the_size_limit(source: str, what: str) -> None:
    # A run's outputs over a million results: each of these read all of them (8 KB each) before refusing.
    results = _Results()
    context = base_context(inputs={}, tasks={"refund": results})
    with pytest.raises(TemplateError) as caught:
        render_value(source, context, task_id="outputs", field_path="all", seconds=60.0)
    assert caught.value.problem == f"{what} {TOO_BIG}"
    assert results.read < 50_000


def test_what_fits_of_a_forEachs_results_is_read_whole() -> None:
    context = base_context(inputs={}, tasks={"refund": _Results()})
    source = "{{ tasks.refund | map(attribute='response.status') | unique | list }}"
    assert render_value(source, context, task_id="outputs", field_path="statuses", seconds=60.0) == [200]


def test_library_iteration_checks_the_time_limit_too() -> None:
    # map() runs a filter per item inside Jinja's library code, where no template line is executed.
    context = base_context(inputs={})
    with time_limit(0.05), pytest.raises(TemplateError) as caught:
        render_value(
            "{{ range(100000) | map('string') | list | length }}", context, task_id="t", field_path="x"
        )
    assert caught.value.problem == "the template ran longer than its limit of 0.05 s and was stopped"


def test_a_cpu_time_limit_counts_the_templates_cpu_time_not_the_wall_clock() -> None:
    """On a loaded machine a template gets less CPU than wall time: under a CPU-time limit (a run's outputs),
    what it did not get is not held against it. Work past its CPU time is still stopped."""
    with time_limit(0.05, cpu=True):
        time.sleep(0.2)  # the wall clock passes the limit; the thread used no CPU
        check_time()
        started = time.thread_time()
        with pytest.raises(LimitExceeded, match=r"ran longer than its limit of 0\.05 s"):
            while True:
                check_time()
    assert 0.03 < time.thread_time() - started < 0.5


def test_a_wall_clock_limit_stops_at_the_wall_clock() -> None:
    with time_limit(0.05), pytest.raises(LimitExceeded):
        time.sleep(0.06)
        check_time()


def test_a_file_is_read_up_to_its_cap(tmp_path: Path) -> None:
    file = tmp_path / "x.yaml"
    file.write_text("a: é\n", encoding="utf-8")
    assert read_capped(file, 6) == "a: é\n"
    with pytest.raises(LimitExceeded) as caught:
        read_capped(file, 5)
    assert str(caught.value) == (
        "is larger than 5 bytes, the most httptask reads from one file; split it, or check that it is the "
        "file you meant"
    )
    with pytest.raises(LimitExceeded):
        read_capped(Path("/dev/zero"), 1000)


@pytest.mark.parametrize(
    "argv",
    [
        ["test-request", "/dev/zero"],
        ["test-request", "TASK", "--input", "@/dev/zero"],
        ["run", "/dev/zero"],
        ["validate", "/dev/zero"],
    ],
)
def test_a_file_that_never_ends_is_refused_not_read_into_memory(tmp_path: Path, argv: list[str]) -> None:
    # `httptask run /dev/zero` held 15 GB before it was killed; `test-request /dev/zero` 22 GB.
    task = tmp_path / "task.yaml"
    task.write_text("id: ping\nhttpRequest: {url: 'http://127.0.0.1:9/'}\n", encoding="utf-8")
    argv = [str(task) if arg == "TASK" else arg for arg in argv]
    env = {**os.environ, "HTTPTASK_JOURNAL": str(tmp_path / "journal.db")}
    done = subprocess.run(
        [sys.executable, "-m", "httptask", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"error: '/dev/zero' is larger than {MAX_FILE_BYTES:,} bytes, the most httptask reads from one file; "
        "split it, or check that it is the file you meant.\n"
    )
