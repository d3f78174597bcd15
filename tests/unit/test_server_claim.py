"""The hub's signed claim for a server's secrets (moonhub_core.server_claim)."""

from __future__ import annotations

import pytest

from moonhub_core import server_claim as sc

KEY = sc.key_from_token("the-jobs-service-token")


def test_a_claim_names_its_user_until_it_expires() -> None:
    claim = sc.make(KEY, "ada@example.com", now=1000.0)
    assert sc.check(KEY, claim, now=1000.0) == "ada@example.com"
    assert sc.check(KEY, claim, now=1000.0 + sc.TTL) == "ada@example.com"
    with pytest.raises(sc.ClaimError, match="expired"):
        sc.check(KEY, claim, now=1000.0 + sc.TTL + 1)


def test_only_the_key_from_the_same_token_checks_it() -> None:
    assert sc.key_from_token("the-jobs-service-token") == KEY
    assert len(bytes.fromhex(KEY)) == 32 and KEY != "the-jobs-service-token"
    other = sc.key_from_token("another-token")
    with pytest.raises(sc.ClaimError, match="not signed"):
        sc.check(other, sc.make(KEY, "ada"))
    assert sc.key_from_token("") == ""
    with pytest.raises(sc.ClaimError, match="no key"):
        sc.check("", sc.make(KEY, "ada"))
    with pytest.raises(sc.ClaimError):
        sc.make("", "ada")


@pytest.mark.parametrize(
    "claim",
    [
        "",
        ".",
        "no-dot",
        "e30.",  # a payload without its signature
        f"{sc.make(KEY, 'ada').split('.')[0]}.{sc.make(KEY, 'bob').split('.')[1]}",  # another's signature
        f"{sc.make(KEY, 'ada').split('.')[0]}x.{sc.make(KEY, 'ada').split('.')[1]}",  # payload changed
    ],
    # ids that do not change with the clock (the claims carry their time): xdist's workers
    # must collect the same tests
    ids=["empty", "dot", "no-dot", "unsigned", "signature-of-another", "payload-changed"],
)
def test_a_changed_or_malformed_claim_is_refused(claim: str) -> None:
    with pytest.raises(sc.ClaimError):
        sc.check(KEY, claim)


def test_a_signed_payload_of_the_wrong_shape_is_refused() -> None:
    """Signed with the right key but not a claim (what a bug in the signer would make)."""
    for body in (b"[]", b'{"user": "", "exp": 9999999999}', b'{"user": "ada", "exp": "soon"}', b"not json"):
        payload = sc._b64(body)
        with pytest.raises(sc.ClaimError, match="malformed"):
            sc.check(KEY, f"{payload}.{sc._sign(KEY, payload)}")
