"""Attachments the agent can open, public and private repositories alike."""

from __future__ import annotations

import base64
import os
import re
import stat
from urllib.parse import urlsplit

import pytest

from tests import payloads
from tests.conftest import Harness

PUBLIC_URL = "https://bridge.example.com"
UUID_A = "8f0b1e4a-1111-4c3d-9e2f-aaaaaaaaaaaa"
UUID_B = "2c7d9f10-2222-4b8e-8a1c-bbbbbbbbbbbb"
PNG = b"\x89PNG\r\n\x1a\n" + b"a" * 200
JPEG = b"\xff\xd8\xff\xe0" + b"b" * 300


def signed(uuid: str, jwt: str = "eyJfresh") -> str:
    return f"https://private-user-images.githubusercontent.com/5000/398765432-{uuid}.png?jwt={jwt}"


def storage_key(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{parts.path}"


def rendered(*urls: str) -> str:
    return "".join(
        f'<p><a target="_blank" href="{u.replace("&", "&amp;")}"><img src="{u.replace("&", "&amp;")}" alt="x"></a></p>'
        for u in urls
    )


async def private_issue(harness: Harness, body: str, **fields) -> None:  # type: ignore[no-untyped-def]
    answer = await harness.deliver(
        "issues", payloads.issues_labeled("twill", private=True, body=body, **fields)
    )
    assert answer.status_code == 202
    await harness.drain()


@pytest.fixture
async def private(make_harness) -> Harness:  # type: ignore[no-untyped-def]
    harness: Harness = await make_harness(public_url=PUBLIC_URL)
    return harness


async def test_public_repositories_pass_urls_as_found_without_downloading(
    bridge: Harness,
) -> None:
    body = f"![shot](https://github.com/user-attachments/assets/{UUID_A})\n[log](https://github.com/user-attachments/files/123/build.log)"
    await bridge.deliver("issues", payloads.issues_labeled("twill", body=body))
    await bridge.drain()
    assert bridge.twill.requests[0]["files"] == [
        {
            "filename": "shot.png",
            "mediaType": "image/png",
            "url": f"https://github.com/user-attachments/assets/{UUID_A}",
        },
        {
            "filename": "build.log",
            "mediaType": "text/plain",
            "url": "https://github.com/user-attachments/files/123/build.log",
        },
    ]
    assert bridge.assets.requests == []


async def test_private_images_are_downloaded_and_served_by_the_bridge(
    private: Harness,
) -> None:
    private.github.rendered[(payloads.REPO, 12)] = rendered(signed(UUID_A))
    private.assets.objects[storage_key(signed(UUID_A))] = (PNG, "image/png")
    await private_issue(
        private,
        f"Broken: ![screen](https://github.com/user-attachments/assets/{UUID_A})",
    )

    [part] = private.twill.requests[0]["files"]
    assert part["filename"] == "screen.png" and part["mediaType"] == "image/png"
    assert part["url"].startswith(f"{PUBLIC_URL}/files/")
    served = await private.client.get(part["url"].removeprefix(PUBLIC_URL))
    assert served.status_code == 200 and served.content == PNG
    assert served.headers["content-type"] == "image/png"
    assert served.headers["content-disposition"].startswith(
        'inline; filename="screen.png"'
    )
    assert served.headers["x-content-type-options"] == "nosniff"
    # The storage host never sees a token.
    assert all("authorization" not in headers for _, headers in private.assets.requests)


async def test_served_links_need_their_signature_and_expire(private: Harness) -> None:
    private.github.rendered[(payloads.REPO, 12)] = rendered(signed(UUID_A))
    private.assets.objects[storage_key(signed(UUID_A))] = (PNG, "image/png")
    await private_issue(
        private, f"![a](https://github.com/user-attachments/assets/{UUID_A})"
    )
    url = private.twill.requests[0]["files"][0]["url"].removeprefix(PUBLIC_URL)
    forged = re.sub(r"sig=[0-9a-f]+", "sig=" + "0" * 64, url)
    assert (await private.client.get(forged)).status_code == 403
    stale = re.sub(r"exp=\d+", "exp=1000", url)
    assert (await private.client.get(stale)).status_code == 403
    other = re.sub(r"/files/[0-9a-f]+/", "/files/" + "f" * 32 + "/", url)
    assert (await private.client.get(other)).status_code == 403


async def test_retention_removes_the_bytes(private: Harness) -> None:
    from sqlalchemy import update

    from bridge.models import StoredFile, utcnow

    private.github.rendered[(payloads.REPO, 12)] = rendered(signed(UUID_A))
    private.assets.objects[storage_key(signed(UUID_A))] = (PNG, "image/png")
    await private_issue(
        private, f"![a](https://github.com/user-attachments/assets/{UUID_A})"
    )
    async with private.sessions() as session:
        await session.execute(update(StoredFile).values(expires_at=utcnow()))
        await session.commit()
    assert await private.worker.sweep_files() == 1
    url = private.twill.requests[0]["files"][0]["url"].removeprefix(PUBLIC_URL)
    assert (await private.client.get(url)).status_code == 404


async def test_signed_urls_are_paired_by_asset_id_not_position(
    private: Harness,
) -> None:
    # GitHub's rendering lists them in the other order.
    private.github.rendered[(payloads.REPO, 12)] = rendered(
        signed(UUID_B), signed(UUID_A)
    )
    private.assets.objects[storage_key(signed(UUID_A))] = (PNG, "image/png")
    private.assets.objects[storage_key(signed(UUID_B))] = (JPEG, "image/jpeg")
    body = f"![first](https://github.com/user-attachments/assets/{UUID_A}) ![second](https://github.com/user-attachments/assets/{UUID_B})"
    await private_issue(private, body)
    parts = private.twill.requests[0]["files"]
    assert [p["filename"] for p in parts] == ["first.png", "second.png"]
    contents = [
        (await private.client.get(p["url"].removeprefix(PUBLIC_URL))).content
        for p in parts
    ]
    assert contents == [PNG, JPEG]


async def test_the_triggering_comments_attachments_come_from_its_own_rendering(
    private: Harness,
) -> None:
    private.github.rendered[(payloads.REPO, 12)] = ""
    private.github.rendered[(payloads.REPO, 555)] = rendered(signed(UUID_B))
    private.assets.objects[storage_key(signed(UUID_B))] = (JPEG, "image/jpeg")
    payload = payloads.comment_created(
        f"/twill look ![err](https://github.com/user-attachments/assets/{UUID_B})"
    )
    payload["repository"]["private"] = True
    await private.deliver("issue_comment", payload)
    await private.drain()
    [part] = private.twill.requests[0]["files"]
    assert part["filename"] == "err.png" and part["mediaType"] == "image/jpeg"


async def test_what_cannot_be_passed_on_is_listed_and_the_task_still_goes(
    private: Harness,
) -> None:
    private.github.rendered[(payloads.REPO, 12)] = rendered(
        signed(UUID_A, jwt="eyJold")
    )
    private.assets.expired_jwts.add("eyJold")
    body = (
        "[trace.log](https://github.com/user-attachments/files/777/trace.log)\n"
        f"![gone](https://github.com/user-attachments/assets/{UUID_A})\n"
        f"![never-rendered](https://github.com/user-attachments/assets/{UUID_B})"
    )
    await private_issue(private, body)
    [request] = private.twill.requests
    assert "files" not in request
    command = request["command"]
    assert "could not be passed on" in command
    assert (
        "trace.log (https://github.com/user-attachments/files/777/trace.log): GitHub gives Apps no way"
        in command
    )
    assert "gone.png" in command and "the link may have expired" in command
    assert "never-rendered.png" in command and "no signed link" in command


async def test_caps_on_size_count_and_type(make_harness) -> None:  # type: ignore[no-untyped-def]
    harness: Harness = await make_harness(
        public_url=PUBLIC_URL,
        files_max_bytes=1000,
        files_max_count=2,
        files_types=("image/png",),
    )
    uuids = [f"00000000-0000-4000-8000-00000000000{n}" for n in range(4)]
    harness.github.rendered[(payloads.REPO, 12)] = rendered(*[signed(u) for u in uuids])
    harness.assets.objects[storage_key(signed(uuids[0]))] = (
        b"x" * 5000,
        "image/png",
    )  # too big
    harness.assets.objects[storage_key(signed(uuids[1]))] = (PNG, "image/png")
    body = "\n".join(
        f"![img{n}](https://github.com/user-attachments/assets/{u})"
        for n, u in enumerate(uuids)
    )
    await private_issue(harness, body)
    [request] = harness.twill.requests
    assert [p["filename"] for p in request["files"]] == ["img1.png"]
    command = request["command"]
    assert "img0.png" in command and "over the 1,000-byte limit" in command
    assert command.count("over the limit of 2 files") == 2


async def test_types_outside_the_allow_list_are_listed_not_passed(
    bridge: Harness,
) -> None:
    body = "[tool.exe](https://github.com/user-attachments/files/9/tool.exe) [notes.md](https://github.com/user-attachments/files/10/notes.md)"
    await bridge.deliver("issues", payloads.issues_labeled("twill", body=body))
    await bridge.drain()
    [request] = bridge.twill.requests
    assert [p["filename"] for p in request["files"]] == ["notes.md"]
    assert (
        "tool.exe" in request["command"]
        and "files are not passed on" in request["command"]
    )


async def test_data_mode_hands_over_rfc_2397_urls(make_harness) -> None:  # type: ignore[no-untyped-def]
    harness: Harness = await make_harness(files_mode="data")
    harness.github.rendered[(payloads.REPO, 12)] = rendered(signed(UUID_A))
    harness.assets.objects[storage_key(signed(UUID_A))] = (PNG, "image/png")
    await private_issue(
        harness, f"![a](https://github.com/user-attachments/assets/{UUID_A})"
    )
    [part] = harness.twill.requests[0]["files"]
    assert part["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()


async def test_without_a_public_url_private_files_are_listed_missing(
    bridge: Harness,
) -> None:
    bridge.github.rendered[(payloads.REPO, 12)] = rendered(signed(UUID_A))
    bridge.assets.objects[storage_key(signed(UUID_A))] = (PNG, "image/png")
    await private_issue(
        bridge, f"![a](https://github.com/user-attachments/assets/{UUID_A})"
    )
    assert "BRIDGE_PUBLIC_URL is not set" in bridge.twill.requests[0]["command"]


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://127.0.0.1:8080/secret", "only https links are fetched"),
        ("https://169.254.169.254/latest/meta-data/", "is not one of GitHub's hosts"),
        ("https://evil.example.com/x.png", "is not one of GitHub's hosts"),
        (
            "https://internal.githubusercontent.com/x.png",
            "resolves to a private or local address",
        ),
        ("https://gone.githubusercontent.com/x.png", "could not be resolved"),
    ],
    ids=[
        "loopback-http",
        "metadata-ip",
        "foreign-host",
        "private-address",
        "unresolvable",
    ],
)
async def test_redirects_never_lead_off_githubs_public_storage(
    private: Harness, location: str, reason: str
) -> None:
    private.github.rendered[(payloads.REPO, 12)] = rendered(signed(UUID_A))
    private.assets.redirects[storage_key(signed(UUID_A))] = location
    private.assets.addresses["internal.githubusercontent.com"] = ["10.0.0.5"]
    await private_issue(
        private, f"![a](https://github.com/user-attachments/assets/{UUID_A})"
    )
    assert reason in private.twill.requests[0]["command"]
    assert [url for url, _ in private.assets.requests] == [
        signed(UUID_A)
    ]  # the bad hop was never fetched


async def test_a_redirect_to_githubs_s3_storage_is_followed(private: Harness) -> None:
    s3 = "https://github-production-user-asset-6210df.s3.amazonaws.com/5000/abc.png"
    private.github.rendered[(payloads.REPO, 12)] = rendered(signed(UUID_A))
    private.assets.redirects[storage_key(signed(UUID_A))] = s3 + "?X-Amz-Signature=1"
    private.assets.objects[s3] = (PNG, "image/png")
    await private_issue(
        private, f"![a](https://github.com/user-attachments/assets/{UUID_A})"
    )
    assert len(private.twill.requests[0]["files"]) == 1


async def test_links_in_code_and_other_hosts_are_not_attachments(
    bridge: Harness,
) -> None:
    body = (
        "```\n![x](https://github.com/user-attachments/assets/11111111-1111-4111-8111-111111111111)\n```\n"
        "`https://github.com/user-attachments/files/1/a.log`\n"
        "![elsewhere](https://example.com/a.png)\n"
        "![dup](https://github.com/user-attachments/assets/22222222-2222-4222-8222-222222222222)\n"
        '<img width="300" alt="dup again" src="https://github.com/user-attachments/assets/22222222-2222-4222-8222-222222222222">'
    )
    await bridge.deliver("issues", payloads.issues_labeled("twill", body=body))
    await bridge.drain()
    [part] = bridge.twill.requests[0]["files"]
    assert part["url"].endswith("22222222-2222-4222-8222-222222222222")


async def test_a_streamed_download_is_cut_off_at_the_cap(make_harness) -> None:  # type: ignore[no-untyped-def]
    harness: Harness = await make_harness(public_url=PUBLIC_URL, files_max_bytes=4096)
    harness.github.rendered[(payloads.REPO, 12)] = rendered(signed(UUID_A))
    harness.assets.objects[storage_key(signed(UUID_A))] = (b"z" * 100_000, "image/png")
    harness.assets.streamed.add(storage_key(signed(UUID_A)))
    await private_issue(
        harness, f"![big](https://github.com/user-attachments/assets/{UUID_A})"
    )
    assert "over the 4,096-byte limit" in harness.twill.requests[0]["command"]


async def test_enterprise_hosts_are_recognised(make_harness) -> None:  # type: ignore[no-untyped-def]
    harness: Harness = await make_harness(github_web_url="https://ghe.example.com")
    body = f"![s](https://ghe.example.com/user-attachments/assets/{UUID_A}) ![no](https://github.com/user-attachments/assets/{UUID_B})"
    await harness.deliver("issues", payloads.issues_labeled("twill", body=body))
    await harness.drain()
    assert [p["url"] for p in harness.twill.requests[0]["files"]] == [
        f"https://ghe.example.com/user-attachments/assets/{UUID_A}"
    ]


async def test_bytes_can_live_in_a_folder_and_leave_with_retention(
    make_harness, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    from bridge.models import StoredFile, utcnow

    folder = tmp_path / "files"
    harness: Harness = await make_harness(public_url=PUBLIC_URL, files_dir=folder)
    harness.github.rendered[(payloads.REPO, 12)] = rendered(signed(UUID_A))
    harness.assets.objects[storage_key(signed(UUID_A))] = (PNG, "image/png")
    umask = os.umask(0o022)  # the usual one, which makes files 0644, folders 0755
    try:
        await private_issue(
            harness, f"![a](https://github.com/user-attachments/assets/{UUID_A})"
        )
    finally:
        os.umask(umask)
    [stored] = list(folder.iterdir())
    assert stored.read_bytes() == PNG
    # Attachments of a private repository: owner-only, the folder made so too.
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    url = harness.twill.requests[0]["files"][0]["url"].removeprefix(PUBLIC_URL)
    assert (await harness.client.get(url)).content == PNG
    async with harness.sessions() as session:
        await session.execute(update(StoredFile).values(expires_at=utcnow()))
        await session.commit()
    assert await harness.worker.sweep_files() == 1
    assert list(folder.iterdir()) == []


async def test_a_download_that_times_out_is_listed_and_the_task_goes(
    private: Harness,
) -> None:
    private.github.rendered[(payloads.REPO, 12)] = rendered(signed(UUID_A))
    private.assets.objects[storage_key(signed(UUID_A))] = (PNG, "image/png")
    private.assets_transport.fail_next("read_timeout")
    await private_issue(
        private, f"![slow](https://github.com/user-attachments/assets/{UUID_A})"
    )
    [request] = private.twill.requests
    assert (
        "slow.png" in request["command"]
        and "the download failed (ReadTimeout)" in request["command"]
    )


@pytest.mark.parametrize(
    "bad",
    [
        f"https://private-user-images.githubusercontent.com:abc/5000/398765432-{UUID_A}.png?jwt=x",
        f"https://private-user-images.githubusercontent.com:99999/5000/398765432-{UUID_A}.png?jwt=x",
        f"https://private-user-images.githubusercontent.com/5000/398765432-{UUID_A}.png\x07?jwt=x",
    ],
    ids=["port-not-a-number", "port-out-of-range", "control-character"],
)
async def test_a_malformed_signed_link_is_listed_and_the_task_goes(
    private: Harness, bad: str
) -> None:
    private.github.rendered[(payloads.REPO, 12)] = f'<img src="{bad}">'
    await private_issue(
        private, f"![a](https://github.com/user-attachments/assets/{UUID_A})"
    )
    [request] = private.twill.requests
    assert (
        "a.png" in request["command"] and "could not be passed on" in request["command"]
    )


async def test_a_redirect_to_a_broken_idna_host_is_refused(private: Harness) -> None:
    private.github.rendered[(payloads.REPO, 12)] = rendered(signed(UUID_A))
    private.assets.redirects[storage_key(signed(UUID_A))] = (
        "https://xn--zz.githubusercontent.com/x.png"
    )
    await private_issue(
        private, f"![a](https://github.com/user-attachments/assets/{UUID_A})"
    )
    assert len(private.twill.requests) == 1


async def test_a_short_or_look_alike_asset_id_borrows_no_other_image(
    private: Harness,
) -> None:
    look_alike = f"https://private-user-images.githubusercontent.com/666/x/other-{UUID_A}.png?jwt=attacker"
    private.github.rendered[(payloads.REPO, 12)] = rendered(look_alike, signed(UUID_A))
    private.assets.objects[storage_key(signed(UUID_A))] = (PNG, "image/png")
    private.assets.objects[storage_key(look_alike)] = (JPEG, "image/jpeg")
    body = f"![real](https://github.com/user-attachments/assets/{UUID_A}) ![five](https://github.com/o/r/assets/1/5)"
    await private_issue(private, body)
    [part] = private.twill.requests[0]["files"]
    assert (
        await private.client.get(part["url"].removeprefix(PUBLIC_URL))
    ).content == PNG


@pytest.mark.parametrize(
    "exp", ["²", "9" * 5000, "-1", ""], ids=["superscript", "huge", "negative", "empty"]
)
async def test_odd_expiry_values_are_403(private: Harness, exp: str) -> None:
    answer = await private.client.get(
        f"/files/{'a' * 32}/x.png", params={"exp": exp, "sig": "0" * 64}
    )
    assert answer.status_code == 403
