"""Batch folders and links (issue 26, item 9), and names escaped in the batch path's own messages
(item 10's rest: ``app/run``, ``outputs.check_writable``).

A link inside an input folder that leads out of it (to a file or a folder, absolute or relative,
directly or through another link) is skipped with a line, unless ``--follow-symlinks``; links to
files and folders inside it work as before; a loop of links is skipped, never followed. Both
executors collect through ``app/run/inputs.py``; the Ray side is checked by the slow CLI test in
``tests/test_ray_hygiene.py``.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest
from helpers import one_error, rand_image
from PIL import Image
from typer.testing import CliRunner

from stillguard import cli
from stillguard.app.run import collect, read_manifest
from stillguard.errors import InputError

runner = CliRunner()
FAST = ["--model", "tiny", "--steps", "1"]
OUTSIDE = "a link to outside the folder (use --follow-symlinks to follow it)"


def run(*args):
    return runner.invoke(cli.app, [str(a) for a in args], catch_exceptions=False)


def img(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rand_image(32, 40, seed=seed)).save(path)
    return path


def tree(tmp_path: Path) -> tuple[Path, Path]:
    """``in/`` with two photos, links inside it (kept) and out of it (skipped); ``outside/``."""
    outside, src = tmp_path / "outside", tmp_path / "in"
    secret = img(outside / "secret.png", seed=9)
    img(src / "a.png", seed=1)
    img(src / "sub" / "b.png", seed=2)
    (src / "to-secret.png").symlink_to(secret)  # a file outside, absolute
    (src / "relative.png").symlink_to(Path("..") / "outside" / "secret.png")
    (src / "sub" / "deep.png").symlink_to(Path("..") / ".." / "outside" / "secret.png")
    (src / "to-outside").symlink_to(outside, target_is_directory=True)  # a folder outside
    (src / "hop.png").symlink_to(src / "to-secret.png")  # inside, then out
    (src / "to-a.png").symlink_to(src / "a.png")  # a file inside: the same photo, once
    (src / "to-sub").symlink_to(src / "sub", target_is_directory=True)  # a folder inside
    (src / "loop1.png").symlink_to(src / "loop2.png")
    (src / "loop2.png").symlink_to(src / "loop1.png")
    (src / "dir-loop").symlink_to(src / "dir-loop", target_is_directory=True)
    return src, secret


OUT_LINKS = ["hop.png", "relative.png", "sub/deep.png", "to-outside", "to-secret.png"]
LOOPS = ["dir-loop", "loop1.png", "loop2.png"]


def test_links_out_of_the_folder_are_skipped_with_their_reason(tmp_path):
    src, secret = tree(tmp_path)
    links: list = []
    items = collect([src], tmp_path / "out", links=links)
    assert [i.input.relative_to(src).as_posix() for i in items] == ["a.png", "sub/b.png"]
    why = {p.relative_to(src).as_posix(): reason for p, reason in links}
    assert sorted(why) == sorted(OUT_LINKS + LOOPS), why
    assert {why[k] for k in OUT_LINKS} == {"a link to outside the folder"}
    assert {why[k] for k in LOOPS} == {"a loop of links"}


def test_follow_symlinks_takes_what_they_lead_to_once(tmp_path):
    src, secret = tree(tmp_path)
    links: list = []
    items = collect([src], tmp_path / "out", links=links, follow_symlinks=True)
    real = sorted(os.path.realpath(i.input) for i in items)
    assert real == sorted(os.path.realpath(p) for p in (src / "a.png", src / "sub/b.png", secret))
    assert sorted(p.relative_to(src).as_posix() for p, _ in links) == LOOPS  # loops still skipped


def test_a_link_named_on_the_command_line_is_taken(tmp_path):
    src, secret = tree(tmp_path)
    items = collect([src / "to-secret.png"], tmp_path / "out", links=[])
    assert [os.path.realpath(i.input) for i in items] == [os.path.realpath(secret)]


def test_cli_says_which_links_it_skipped_and_protects_the_rest(tmp_path):
    src, secret = tree(tmp_path)
    out = tmp_path / "out"
    res = run("protect", src, "-o", out, *FAST)
    assert res.exit_code == 0, res.output
    for rel in OUT_LINKS:
        assert f"skipped {src / rel}: {OUTSIDE}" in res.stderr.splitlines(), res.stderr
    assert f"skipped {src / 'loop1.png'}: a loop of links" in res.stderr.splitlines()
    done = {r["input"] for r in read_manifest(out / "manifest.jsonl")}
    assert done == {str(src / "a.png"), str(src / "sub" / "b.png")}
    assert sorted(p.name for p in out.rglob("*.png")) == ["a.protected.png", "b.protected.png"]
    data = json.loads(run("protect", src, "-o", tmp_path / "o2", *FAST, "--json").stdout)
    assert sorted(s["reason"] for s in data["skipped_links"]) == sorted(
        ["a link to outside the folder"] * len(OUT_LINKS) + ["a loop of links"] * len(LOOPS)
    )
    followed = run("protect", src, "-o", tmp_path / "o3", *FAST, "--follow-symlinks")
    assert followed.exit_code == 0 and OUTSIDE not in followed.stderr, followed.output
    inputs = {os.path.realpath(r["input"]) for r in read_manifest(tmp_path / "o3/manifest.jsonl")}
    assert os.path.realpath(secret) in inputs and len(inputs) == 3


def test_a_folder_of_only_links_out_says_so(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "passwd.png").symlink_to(img(tmp_path / "elsewhere" / "x.png"))
    line = one_error(run("protect", src, "-o", tmp_path / "out", *FAST))
    assert "no input images found" in line and "--follow-symlinks" in line, line
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- item 10's rest
ODD = "o\nd\x1bd"


def _escaped(msg: str, path: Path) -> None:
    assert "\n" not in msg and "\x1b" not in msg, msg
    assert repr(str(path)) in msg or repr(path.name) in msg, msg


def test_names_escaped_in_the_batch_paths_errors(tmp_path):
    src = img(tmp_path / ODD / "a.png").parent
    # inputs.py: the output folder is a file
    (tmp_path / f"f{ODD}").write_text("x")
    with pytest.raises(InputError) as e:
        collect([src], tmp_path / f"f{ODD}")
    _escaped(str(e.value), tmp_path / f"f{ODD}")
    # inputs.py: a folder without photos names one of the other files
    notes = tmp_path / "notes"
    (notes).mkdir()
    (notes / f"n{ODD}.txt").write_text("x")
    with pytest.raises(InputError) as e:
        collect([notes], tmp_path / "o")
    _escaped(str(e.value), notes / f"n{ODD}.txt")
    # names.py: an output would be an input
    img(src / "a.protected.png")
    with pytest.raises(InputError) as e:
        collect([src / "a.png", src / "a.protected.png"], src)
    _escaped(str(e.value), src / "a.protected.png")


def test_names_escaped_in_cli_errors_of_the_batch_path(tmp_path):
    src = img(tmp_path / "in" / "a.png").parent
    # outputs.check_writable: a file blocks the output folder
    (tmp_path / f"f{ODD}").write_text("x")
    _escaped(one_error(run("protect", src, "-o", tmp_path / f"f{ODD}" / "sub", *FAST)),
             tmp_path / f"f{ODD}")  # fmt: skip
    # manifest.py: another run holds the folder
    out = tmp_path / f"out{ODD}"
    out.mkdir()
    with open(out / "manifest.jsonl", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        _escaped(one_error(run("protect", src, "-o", out, *FAST)), out)


def test_names_escaped_in_an_unreadable_folder_warning(tmp_path, monkeypatch, caplog):
    from stillguard.app.run import inputs

    src = img(tmp_path / "in" / "a.png").parent
    (src / ODD).mkdir()
    real = os.scandir

    def scandir(p):
        if Path(p).name == ODD:
            raise PermissionError(13, "Permission denied")
        return real(p)

    monkeypatch.setattr(inputs.os, "scandir", scandir)
    with caplog.at_level("WARNING", logger="stillguard"):
        collect([src], tmp_path / "out")
    (msg,) = [r.getMessage() for r in caplog.records if "skipping folder" in r.getMessage()]
    _escaped(msg, src / ODD)


def test_names_escaped_in_the_ray_executors_own_messages(tmp_path):
    from stillguard.app.config import build_config
    from stillguard.app.run import BatchItem, run_ray_batch
    from stillguard.app.run.cluster import _failed

    with pytest.raises(InputError) as e:
        run_ray_batch([f"s3://bucket/{ODD}"], tmp_path / "out", build_config("debug"))
    assert "\n" not in str(e.value) and repr(f"s3://bucket/{ODD}") in str(e.value)
    item = BatchItem(tmp_path / f"{ODD}.png", tmp_path / "o.png", tmp_path / "o.json")
    ((_, res),) = list(_failed([0], [item], "the Ray worker died"))
    _escaped(res.error, item.input)
