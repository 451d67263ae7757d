"""Our selector parser accepts exactly what the API server accepts.

A selector we accept and the server refuses makes the namespace watch retry a 400 forever; one we
refuse and the server accepts stops a scheduler that would have worked. So every row is sent to a
real API server (a namespace list with that ``labelSelector``, where 400 means invalid), and the
row's expectation pins the server's answer too, so a Kubernetes upgrade that changes the grammar
fails here instead of in production.
"""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from airflow_provider_nsdiscovery.discovery.selector import SelectorError, parse_selector

_PREFIX_253 = ".".join(["p" * 63] * 3) + "." + "q" * 61

VALID = [
    "airflow-enabled=true",
    "team in ()",  # the empty value, not an empty set
    "team notin ()",
    "a!=",
    "a=",
    "a==",
    "!a",
    "a",
    "a in (x,,y)",
    "a in (x,)",
    "a in (,)",
    "a in (,x)",
    "a in (x,,)",  # any run of commas is one empty value (older apimachinery refused this)
    "a in (,,)",
    "a in (x,,,y)",
    "a==b",
    "a notin (x)",
    "a>1",
    "a<10",
    "a>007",
    "a>9223372036854775807",
    "example.com/team=a",
    "k8s.io/Team_1.x-y=A.b_c-9",
    f"{_PREFIX_253}/a=b",
    "n" * 63 + "=" + "v" * 63,
    " a = b , ! c ",
    "a\tin\t(x)",
    "a in(x)",
    "a=b\r\n",
    "a in ( x , y )",
    "a,b,!c",
    "in in (in,notin)",
    "a=b,a=c",
    "a=b \0 anything after a NUL is ignored",
    "a=in",
    "notin",
    "a..b=c",
    "A=B",
    "a in (x),b",
    "a\t=\tb\t",
    "a>09223372036854775807",
]

INVALID = [
    "a,",
    ",a",
    "a=b,,c",
    "a in x",
    "a in (x",
    "a in (x y)",
    "a in (=)",
    "a in (x)(y)",
    "a in",
    "!a=b",
    "!a in (x)",
    "!!a",
    "a b",
    "a!",
    "(a)",
    "a=b=c",
    "a=b c",
    "a=(",
    "a>=1",
    "Example.com/a=b",
    "example..com/a=b",
    "/a",
    "a/",
    "a/b/c",
    f"{_PREFIX_253}x/a=b",
    "n" * 64,
    "a=" + "v" * 64,
    "-a=b",
    "a_=b",
    "a=-b",
    "a=b_",
    "a in (x,y_)",
    "a>x",
    "a>-1",
    "a>+1",
    "a>",
    "a>1.5",
    "a>9223372036854775808",
    "a<\u0663",  # an Arabic-Indic digit is not a digit to the server
    "a=b\f",  # only space, tab, CR and LF separate tokens
    "a\u00a0=b",
    "a=\u00e9",
    "a=b\0c",  # a NUL inside a value ends the word, and 'c' then follows it
    "a=b,!",
    "a!==b",
    "\u00e9",
]


def server_accepts(admin: client.CoreV1Api, selector: str) -> bool:
    try:
        admin.list_namespace(label_selector=selector, limit=1)
    except ApiException as err:
        if err.status == 400:
            return False
        raise
    return True


def parser_accepts(selector: str) -> bool:
    try:
        parse_selector(selector)
    except SelectorError:
        return False
    return True


@pytest.mark.parametrize(
    ("selector", "valid"),
    [(s, True) for s in VALID] + [(s, False) for s in INVALID],
    ids=repr,
)
def test_parser_accepts_a_selector_exactly_when_the_api_server_does(
    admin: client.CoreV1Api, selector: str, valid: bool
) -> None:
    assert server_accepts(admin, selector) is valid, "the API server changed its selector grammar"
    assert parser_accepts(selector) is valid


@pytest.mark.parametrize("selector", ["", "   ", "\0a=b"])
def test_empty_selector_is_refused_although_the_api_server_reads_it_as_everything(
    admin: client.CoreV1Api, selector: str
) -> None:
    assert server_accepts(admin, selector)
    with pytest.raises(SelectorError, match="would select every namespace"):
        parse_selector(selector)
